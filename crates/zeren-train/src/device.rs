//! Choosing the device that runs training.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// A kind of device, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// burn's pure-Rust CPU backend (`flex`); always available.
    #[default]
    Cpu,
    /// An NVIDIA GPU through CUDA; needs the `cuda` cargo feature.
    Cuda,
    /// Any GPU through wgpu (Vulkan, Metal, DirectX); needs the `wgpu` cargo feature.
    Wgpu,
}

/// Returns burn's CPU device.
pub fn cpu() -> Device {
    Device::flex()
}

/// Returns the device of the given kind.
///
/// # Errors
///
/// Returns [`TrainError::Device`] when this build was compiled without the kind's feature.
pub fn select(kind: DeviceKind) -> Result<Device, TrainError> {
    match kind {
        DeviceKind::Cpu => Ok(cpu()),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => Ok(Device::cuda(0)),
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[allow(unreachable_patterns)]
        other => Err(TrainError::Device(format!(
            "device '{}' is not available in this build; rebuild with `cargo install --path crates/zeren-cli --features {}`",
            other.name(),
            other.name()
        ))),
    }
}

impl DeviceKind {
    /// Returns the name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
            DeviceKind::Wgpu => "wgpu",
        }
    }

    /// Checks whether training on this device is expected to be bit-for-bit reproducible.
    pub fn is_deterministic(self) -> bool {
        self == DeviceKind::Cpu
    }
}
