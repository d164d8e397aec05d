//! The `phyvae` command-line tool as a library: the command-line definitions,
//! the settings layer, and the commands themselves, shared by the `phyvae`
//! binary (a thin `main`) and the Python package (`crates/python`), so that
//! both run the same code for the same settings.
//!
//! Errors are `anyhow` chains; [`message`] writes one as the binary prints it
//! and [`exit_code`] says what kind of failure it is.

pub mod cli;
pub mod commands;
pub mod device;
pub mod input;
pub mod interrupt;
pub mod progress;
pub mod settings;

/// The error and its causes on one line, `a: b: c`, leaving out a cause whose
/// text the message already holds (typed errors print their I/O cause in their
/// own message and also expose it as their source).
#[must_use]
pub fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Exit codes: 3 = an input file (image, model, checkpoint) could not be read or is not usable;
/// 4 = a parameter or an input's content is invalid for the computation, or
/// training diverged;
/// 5 = an output could not be written; 130 = interrupted by Ctrl-C; 1 =
/// anything else. (2 is clap's code for a malformed command line.)
#[must_use]
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<phyvae_data::DataError>() {
            return data_error_code(e);
        }
        if cause
            .downcast_ref::<phyvae_imaging::ImagingError>()
            .is_some()
        {
            return 4;
        }
        if let Some(e) = cause.downcast_ref::<phyvae_report::ReportError>() {
            use phyvae_report::ReportError as R;
            return match e {
                R::Data(e) => data_error_code(e),
                R::RunFile { .. } => 3,
                R::Imaging(_) => 4,
                _ => 5,
            };
        }
        if cause
            .downcast_ref::<commands::output::OutputError>()
            .is_some()
        {
            return 5;
        }
        if let Some(e) = cause.downcast_ref::<phyvae_run::RunError>() {
            return run_error_code(e);
        }
        if let Some(e) = cause.downcast_ref::<phyvae_model::ModelError>() {
            use phyvae_model::ModelError as M;
            return match e {
                M::Settings(e) => run_error_code(e),
                M::Interrupted { .. } => interrupt::EXIT_CODE,
                M::InvalidParameter { .. }
                | M::ShapeMismatch { .. }
                | M::Diverged { .. }
                | M::RanAway { .. }
                | M::OutOfMemory { .. }
                | M::Imaging(_) => 4,
                M::Data(e) => data_error_code(e),
                M::BadFile { .. } => 3,
                M::Io { action, .. } if *action == "reading" => 3,
                M::Io { .. } => 5,
                _ => 1,
            };
        }
    }
    1
}

/// The exit code of a data error: 5 for a failed write, 4 for invalid
/// parameters or content, 3 for an input that cannot be read.
fn data_error_code(e: &phyvae_data::DataError) -> u8 {
    use phyvae_data::DataError;
    match e {
        DataError::InvalidParameter { .. }
        | DataError::ImageSmallerThanWindow { .. }
        | DataError::ConstantImage { .. }
        | DataError::NonFinitePixel { .. }
        | DataError::BeyondFloat32 { .. }
        | DataError::ShapeMismatch { .. } => 4,
        DataError::Write { .. } => 5,
        _ => 3,
    }
}

/// The exit code of a settings or run-file error.
fn run_error_code(e: &phyvae_run::RunError) -> u8 {
    use phyvae_run::RunError as R;
    match e {
        R::InvalidParameter { .. } | R::Imaging(_) | R::Occupied { .. } => 4,
        R::Read { .. } | R::BadFile { .. } => 3,
        R::Write(_) | R::Busy { .. } => 5,
        _ => 1,
    }
}
