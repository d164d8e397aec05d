//! `--device`: which compute device a run uses.

use anyhow::{Context, Result, bail};
use phyvae_model::Device;

/// The candle device of `--device`: `cpu`, `cuda` (= `cuda:0`), `cuda:N`, or
/// `auto` (CUDA device 0 when this build has CUDA and a device is present,
/// else the CPU).
pub fn pick_device(spec: &str) -> Result<Device> {
    let cuda = |ordinal: usize| {
        Device::new_cuda(ordinal).with_context(|| {
            format!(
                "--device {spec}: no CUDA device {ordinal} (CUDA needs a build with \
                 --features phyvae-model/cuda and an NVIDIA GPU)"
            )
        })
    };
    match spec {
        "auto" => Device::cuda_if_available(0).context("--device auto"),
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => cuda(n),
            _ => bail!("--device {other}: expected auto, cpu, cuda or cuda:N"),
        },
    }
}

/// `cpu`, `cuda` or `metal` for metrics.json.
#[must_use]
pub fn device_name(device: &Device) -> &'static str {
    if device.is_cuda() {
        "cuda"
    } else if device.is_metal() {
        "metal"
    } else {
        "cpu"
    }
}
