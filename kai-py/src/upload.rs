//! Images from Python as the catalog's uploads: encoded bytes named by their position in
//! the caller's list, which the core decodes before it writes anything.

use std::io::Cursor;

use kai_core::Error;
use kai_core::catalog::{MAX_IMAGES, UploadedImage};
use kai_core::image::{ImageLimits, RgbImage};
use pyo3::prelude::*;

use crate::convert::{ImageSource, name_image};

/// Reads the Python images of a create or replace while the GIL is held. Raises
/// `InvalidInputError` naming the first value that is not an image, and for more images
/// than a material may have, before any file is read.
pub fn extract_uploads(py: Python<'_>, images: &[Bound<'_, PyAny>]) -> PyResult<Vec<ImageSource>> {
    let result = if images.len() > MAX_IMAGES {
        Err(Error::invalid(
            "images",
            format!(
                "{} images given, over the limit of {MAX_IMAGES} per material",
                images.len()
            ),
        ))
    } else {
        images
            .iter()
            .enumerate()
            .map(|(index, image)| ImageSource::read(image).map_err(|err| name_image(err, index)))
            .collect()
    };
    crate::errors::raise(py, result)
}

/// Turns the sources into uploads; call it with the GIL released.
///
/// Paths are read as they are, and bytes pass through, so the store keeps the caller's
/// file. Pixels (numpy arrays, PIL images) are encoded as PNG, which is lossless, after
/// the alpha channel is composited over white as decoding would do.
pub fn to_uploads(
    sources: Vec<ImageSource>,
    limits: &ImageLimits,
) -> kai_core::Result<Vec<UploadedImage>> {
    sources
        .into_iter()
        .enumerate()
        .map(|(index, source)| to_upload(index, source, limits))
        .collect()
}

fn to_upload(
    index: usize,
    source: ImageSource,
    limits: &ImageLimits,
) -> kai_core::Result<UploadedImage> {
    let label = format!("images[{index}]");
    match source {
        ImageSource::Path(path) => Ok(UploadedImage {
            bytes: kai_core::image::read_file(&path, limits)
                .map_err(|err| name_image(err, index))?,
            name: format!("{label} ({})", path.display()),
        }),
        ImageSource::Bytes(bytes) => Ok(UploadedImage { name: label, bytes }),
        pixels @ ImageSource::Pixels { .. } => {
            let image = pixels.load(limits).map_err(|err| name_image(err, index))?;
            Ok(UploadedImage {
                bytes: encode_png(&image)?,
                name: label,
            })
        }
    }
}

fn encode_png(image: &RgbImage) -> kai_core::Result<Vec<u8>> {
    let mut bytes = Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|err| {
            Error::Internal(format!(
                "cannot encode a {}x{} image as PNG: {err}",
                image.width(),
                image.height()
            ))
        })?;
    Ok(bytes.into_inner())
}
