//! Choice of the compute device (CPU or a CUDA GPU) and of the dtype models run in.
//!
//! Operators choose with `KAI_DEVICE=auto|cpu|cuda:N`; `GPU_ENABLED=false` forces the CPU.
//! CUDA needs the `cuda` cargo feature; the default build runs on the CPU only.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};

use crate::error::{Error, Result};

/// The device a caller asks for, before it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceRequest {
    /// The first CUDA GPU when the build and the machine have one, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The CUDA GPU with this ordinal.
    Cuda(usize),
}

impl FromStr for DeviceRequest {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self> {
        let trimmed = value.trim().to_ascii_lowercase();
        match trimmed.as_str() {
            "" | "auto" => return Ok(DeviceRequest::Auto),
            "cpu" => return Ok(DeviceRequest::Cpu),
            "cuda" | "gpu" => return Ok(DeviceRequest::Cuda(0)),
            _ => {}
        }
        let ordinal = trimmed
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok());
        match ordinal {
            Some(n) => Ok(DeviceRequest::Cuda(n)),
            None => Err(Error::invalid(
                "device",
                format!(
                    "`{value}` is not one of auto, cpu, cuda or cuda:N (N a GPU ordinal); \
                     check KAI_DEVICE or the device option"
                ),
            )),
        }
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceRequest::Auto => f.write_str("auto"),
            DeviceRequest::Cpu => f.write_str("cpu"),
            DeviceRequest::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceRequest {
    /// Reads `KAI_DEVICE` and `GPU_ENABLED` from the process environment.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] for an unknown value or when `GPU_ENABLED=false`
    /// contradicts an explicit `cuda:N`.
    pub fn from_env() -> Result<Self> {
        let device = std::env::var("KAI_DEVICE").ok();
        let gpu_enabled = std::env::var("GPU_ENABLED").ok();
        Self::from_settings(device.as_deref(), gpu_enabled.as_deref())
    }

    /// Combines the values of `KAI_DEVICE` and `GPU_ENABLED`; `None` means unset.
    ///
    /// # Errors
    ///
    /// As [`DeviceRequest::from_env`].
    pub fn from_settings(device: Option<&str>, gpu_enabled: Option<&str>) -> Result<Self> {
        let request = device.map(str::parse).transpose()?.unwrap_or_default();
        // An empty variable counts as unset, as it does for KAI_DEVICE and MODEL_DIR.
        let Some(gpu_enabled) = gpu_enabled.filter(|v| !v.trim().is_empty()) else {
            return Ok(request);
        };
        let enabled = parse_bool("GPU_ENABLED", gpu_enabled)?;
        match (enabled, request) {
            (false, DeviceRequest::Cuda(n)) => Err(Error::invalid(
                "KAI_DEVICE",
                format!("`cuda:{n}` contradicts GPU_ENABLED=false; unset one of the two"),
            )),
            (false, _) => Ok(DeviceRequest::Cpu),
            (true, request) => Ok(request),
        }
    }

    /// Opens the device.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotSupported`] for `cuda:N` in a build without the `cuda` feature,
    /// and the driver's error when the GPU cannot be opened.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceRequest::Cpu => Ok(Device::Cpu),
            DeviceRequest::Auto => Ok(open_auto()),
            DeviceRequest::Cuda(ordinal) => open_cuda(ordinal),
        }
    }
}

/// Returns the dtype models run in on `device`.
///
/// Both the CPU and CUDA use f32: it is what the reference outputs were computed in, so
/// results agree across devices within float rounding.
pub fn model_dtype(_device: &Device) -> DType {
    DType::F32
}

/// Returns a short name of an opened device, such as `cpu` or `cuda:0`.
pub fn describe(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_owned(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(feature = "cuda")]
fn open_auto() -> Device {
    match Device::new_cuda(0) {
        Ok(device) => device,
        Err(err) => {
            tracing::info!(error = %err, "no usable CUDA device, running on the CPU");
            Device::Cpu
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn open_auto() -> Device {
    Device::Cpu
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<Device> {
    Ok(Device::new_cuda(ordinal)?)
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize) -> Result<Device> {
    Err(Error::NotSupported(format!(
        "device cuda:{ordinal} needs a build with the `cuda` cargo feature; \
         this build runs on the CPU only (set KAI_DEVICE=cpu or auto)"
    )))
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::invalid(
            name,
            format!("`{value}` is not a boolean (true or false)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            "auto".parse::<DeviceRequest>().unwrap(),
            DeviceRequest::Auto
        );
        assert_eq!(
            " CPU ".parse::<DeviceRequest>().unwrap(),
            DeviceRequest::Cpu
        );
        assert_eq!(
            "cuda".parse::<DeviceRequest>().unwrap(),
            DeviceRequest::Cuda(0)
        );
        assert_eq!(
            "cuda:3".parse::<DeviceRequest>().unwrap(),
            DeviceRequest::Cuda(3)
        );
    }

    #[test]
    fn rejects_unknown_device_naming_value() {
        for bad in ["tpu", "cuda:", "cuda:-1", "cuda:x"] {
            let err = bad.parse::<DeviceRequest>().unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(bad), "{err}");
            assert!(err.to_string().contains("KAI_DEVICE"), "{err}");
        }
    }

    #[test]
    fn gpu_disabled_forces_cpu() {
        let request = DeviceRequest::from_settings(Some("auto"), Some("false")).unwrap();
        assert_eq!(request, DeviceRequest::Cpu);
        let request = DeviceRequest::from_settings(None, Some("0")).unwrap();
        assert_eq!(request, DeviceRequest::Cpu);
    }

    #[test]
    fn gpu_disabled_contradicts_explicit_cuda() {
        let err = DeviceRequest::from_settings(Some("cuda:1"), Some("false")).unwrap_err();
        assert!(err.to_string().contains("GPU_ENABLED"), "{err}");
    }

    #[test]
    fn empty_gpu_enabled_is_unset() {
        let request = DeviceRequest::from_settings(Some("auto"), Some("")).unwrap();
        assert_eq!(request, DeviceRequest::Auto);
    }

    #[test]
    fn gpu_enabled_must_be_boolean() {
        let err = DeviceRequest::from_settings(None, Some("maybe")).unwrap_err();
        assert!(err.to_string().contains("GPU_ENABLED"), "{err}");
        assert!(err.to_string().contains("maybe"), "{err}");
    }

    #[test]
    fn cpu_and_auto_open_without_gpu() {
        assert!(DeviceRequest::Cpu.open().unwrap().is_cpu());
        let auto = DeviceRequest::Auto.open().unwrap();
        assert!(auto.is_cpu() || auto.is_cuda());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_is_not_supported() {
        let err = DeviceRequest::Cuda(0).open().unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::NotSupported);
        assert!(err.to_string().contains("cuda"), "{err}");
    }
}
