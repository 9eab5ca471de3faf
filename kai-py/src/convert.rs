//! Conversions shared by the bindings: images from Python values, vectors to numpy, and
//! structured results as JSON text that the Python layer turns into dataclasses.

use std::path::PathBuf;

use kai_core::Embeddings;
use kai_core::image::{ImageLimits, RgbImage};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::raise;

/// Returns embeddings as a float32 array of shape (rows, dimension), moving the buffer
/// into numpy without a copy.
pub fn matrix<'py>(py: Python<'py>, vectors: Embeddings) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let rows = vectors.len();
    let dimension = vectors.dimension();
    let flat: Bound<'py, PyArray1<f32>> = vectors.into_vec().into_pyarray(py);
    flat.reshape([rows, dimension])
}

/// Serialises a result for the Python layer, which builds its dataclass from the JSON.
pub fn json<T: serde::Serialize>(py: Python<'_>, value: &T) -> PyResult<String> {
    raise(
        py,
        serde_json::to_string(value).map_err(|err| {
            kai_core::Error::Internal(format!("cannot encode a result as JSON: {err}"))
        }),
    )
}

/// Parses JSON text from the Python layer into `T`, naming `what` in the error.
pub fn from_json<T: serde::de::DeserializeOwned>(
    py: Python<'_>,
    what: &str,
    text: &str,
) -> PyResult<T> {
    raise(
        py,
        serde_json::from_str(text).map_err(|err| kai_core::Error::invalid(what, err.to_string())),
    )
}

/// An image as Python passes it, before decoding: the Python layer has already turned
/// PIL images into arrays and `PathLike` objects into strings.
pub enum ImageSource {
    /// A file to open.
    Path(PathBuf),
    /// Encoded bytes (JPEG, PNG, …).
    Bytes(Vec<u8>),
    /// Decoded pixels, row-major, with 1 (grey), 3 (RGB) or 4 (RGBA) channels.
    Pixels {
        width: u32,
        height: u32,
        channels: usize,
        data: Vec<u8>,
    },
}

impl ImageSource {
    /// Reads a `str` path, `bytes`, or a uint8 numpy array of shape (H, W), (H, W, 3) or
    /// (H, W, 4) (alpha composited over white, as decoding does).
    pub fn extract(value: &Bound<'_, PyAny>) -> PyResult<Self> {
        raise(value.py(), Self::read(value))
    }

    /// Reads an image as [`ImageSource::extract`] does, returning the core error (named
    /// `image`) so that a caller can say which of several images it is about.
    pub fn read(value: &Bound<'_, PyAny>) -> kai_core::Result<Self> {
        if let Ok(path) = value.extract::<PathBuf>()
            && !value.is_instance_of::<PyBytes>()
        {
            return Ok(ImageSource::Path(path));
        }
        if let Ok(bytes) = value.cast::<PyBytes>() {
            return Ok(ImageSource::Bytes(bytes.as_bytes().to_vec()));
        }
        let Ok(array) = value.extract::<PyReadonlyArrayDyn<'_, u8>>() else {
            let kind = match value.getattr("dtype") {
                Ok(dtype) => format!("an array of dtype {dtype}"),
                Err(_) => format!(
                    "a value of type {}",
                    value
                        .get_type()
                        .name()
                        .map_or_else(|_| "unknown".to_owned(), |n| n.to_string())
                ),
            };
            return Err(kai_core::Error::invalid(
                "image",
                format!(
                    "{kind} is not an image; pass a path, bytes, a PIL image or a uint8 \
                         numpy array of shape (H, W), (H, W, 3) or (H, W, 4)"
                ),
            ));
        };
        let shape = array.shape().to_vec();
        let (height, width, channels) = match shape.as_slice() {
            [h, w] => (*h, *w, 1),
            [h, w, c] if [1, 3, 4].contains(c) => (*h, *w, *c),
            _ => {
                return Err(kai_core::Error::invalid(
                    "image",
                    format!(
                        "an array of shape {shape:?} is not an image; expected (H, W), \
                             (H, W, 3) or (H, W, 4)"
                    ),
                ));
            }
        };
        if height == 0 || width == 0 {
            return Err(kai_core::Error::invalid(
                "image",
                format!("an array of shape {shape:?} has no pixels"),
            ));
        }
        // The size is checked from the shape, before any copy: a broadcast view can
        // describe far more pixels than memory holds.
        let limits = kai_core::image::ImageLimits::from_env().unwrap_or_default();
        let pixels = (width as u64).saturating_mul(height as u64);
        if pixels > limits.max_pixels || u32::try_from(width.max(height)).is_err() {
            return Err(kai_core::Error::invalid(
                "image",
                format!(
                    "an array of shape {shape:?} has {pixels} pixels, more than the limit \
                         of {} (KAI_MAX_IMAGE_PIXELS)",
                    limits.max_pixels
                ),
            ));
        }
        // One copy into a contiguous buffer while the GIL is held; the conversion to RGB
        // happens in `load`, with the GIL released.
        let data = array
            .as_array()
            .as_standard_layout()
            .into_owned()
            .into_raw_vec_and_offset()
            .0;
        Ok(ImageSource::Pixels {
            width: width as u32,
            height: height as u32,
            channels,
            data,
        })
    }

    /// Decodes the image within `limits`; call it with the GIL released.
    pub fn load(self, limits: &ImageLimits) -> kai_core::Result<RgbImage> {
        match self {
            ImageSource::Path(path) => kai_core::image::open(&path, limits),
            ImageSource::Bytes(bytes) => kai_core::image::decode(&bytes, limits),
            ImageSource::Pixels {
                width,
                height,
                channels,
                data,
            } => {
                let pixels = u64::from(width) * u64::from(height);
                if pixels > limits.max_pixels {
                    return Err(kai_core::Error::invalid(
                        "image",
                        format!(
                            "{width}x{height} is {pixels} pixels, more than the limit of {} \
                             (KAI_MAX_IMAGE_PIXELS)",
                            limits.max_pixels
                        ),
                    ));
                }
                let rgb = to_rgb(&data, channels);
                RgbImage::from_raw(width, height, rgb).ok_or_else(|| {
                    kai_core::Error::Internal("pixel buffer does not match its size".into())
                })
            }
        }
    }
}

/// Expands grey to RGB and composites RGBA over white, the same rule as decoding files.
fn to_rgb(data: &[u8], channels: usize) -> Vec<u8> {
    if channels == 3 {
        return data.to_vec();
    }
    let mut rgb = Vec::with_capacity(data.len() / channels * 3);
    for pixel in data.chunks_exact(channels) {
        if channels == 1 {
            rgb.extend_from_slice(&[pixel[0]; 3]);
        } else {
            let alpha = u16::from(pixel[3]);
            for &c in &pixel[..3] {
                let over = (u16::from(c) * alpha + 255 * (255 - alpha) + 127) / 255;
                rgb.push(over as u8);
            }
        }
    }
    rgb
}

/// Reads one image or a list of images from Python.
pub fn extract_images(value: &Bound<'_, PyAny>) -> PyResult<Vec<ImageSource>> {
    if let Ok(list) = value.cast::<pyo3::types::PyList>() {
        return list
            .iter()
            .map(|item| ImageSource::extract(&item))
            .collect();
    }
    if let Ok(tuple) = value.cast::<pyo3::types::PyTuple>() {
        return tuple
            .iter()
            .map(|item| ImageSource::extract(&item))
            .collect();
    }
    Ok(vec![ImageSource::extract(value)?])
}

/// Converts a Python int argument to an unsigned count, raising `InvalidInputError`
/// naming `name` for a negative or too large value (pyo3 alone would raise a bare
/// `OverflowError`).
pub fn count<T: TryFrom<i64>>(py: Python<'_>, name: &str, value: i64) -> PyResult<T> {
    T::try_from(value).map_err(|_| {
        crate::errors::to_py_error(
            py,
            &kai_core::Error::invalid(
                name,
                format!("must be a whole number of 0 or more, got {value}"),
            ),
        )
    })
}

/// Names the image of an [`kai_core::Error::InvalidInput`] about `image` (or `image PATH`)
/// by its position in the caller's list, as `images[INDEX]`, so that the message of one
/// image among many names the one that failed. Other errors already name their file or are
/// not about one image, so they pass through.
pub fn name_image(err: kai_core::Error, index: usize) -> kai_core::Error {
    match err {
        kai_core::Error::InvalidInput { name, reason } => match name.strip_prefix("image") {
            Some(rest) if rest.is_empty() || rest.starts_with(' ') => {
                kai_core::Error::invalid(format!("images[{index}]{rest}"), reason)
            }
            _ => kai_core::Error::InvalidInput { name, reason },
        },
        other => other,
    }
}
