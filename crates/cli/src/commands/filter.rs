//! `phyvae filter bilateral|scharr`.

use crate::cli::{BilateralArgs, BilateralModeArg, FilterCommand, InOut};
use crate::input::{self, Pixels};
use anyhow::{Context, Result};
use phyvae_data::io;
use phyvae_imaging::filters::{self, BilateralMode, BilateralParams, SigmaColor};

/// Runs a filter command.
pub fn run(cmd: FilterCommand) -> Result<()> {
    match cmd {
        FilterCommand::Bilateral(a) => bilateral(&a),
        FilterCommand::Scharr(a) => scharr(&a),
    }
}

fn bilateral(a: &BilateralArgs) -> Result<()> {
    let sigma_color = if a.sigma_color.eq_ignore_ascii_case("std") {
        SigmaColor::ImageStd
    } else {
        let v: f64 = a.sigma_color.parse().with_context(|| {
            format!(
                "--sigma-color must be a number or `std`, got `{}`",
                a.sigma_color
            )
        })?;
        SigmaColor::Value(v)
    };
    let mode = match a.mode {
        BilateralModeArg::Skimage => BilateralMode::Skimage,
        BilateralModeArg::Gaussian => BilateralMode::Gaussian,
    };
    let params = BilateralParams::new()
        .sigma_color(sigma_color)
        .sigma_spatial(a.sigma_spatial)
        .mode(mode)
        .build()?;
    match input::pixels(&a.input)? {
        Pixels::F32(x) => io::write_npy_f32(
            &a.output,
            filters::denoise_bilateral(x.view(), &params)?.view(),
        )?,
        Pixels::F64(x) => io::write_npy_f64(
            &a.output,
            filters::denoise_bilateral(x.view(), &params)?.view(),
        )?,
    }
    Ok(())
}

fn scharr(a: &InOut) -> Result<()> {
    match input::pixels(&a.input)? {
        Pixels::F32(x) => io::write_npy_f32(&a.output, filters::scharr(x.view())?.view())?,
        Pixels::F64(x) => io::write_npy_f64(&a.output, filters::scharr(x.view())?.view())?,
    }
    Ok(())
}
