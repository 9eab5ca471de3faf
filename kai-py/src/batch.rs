//! Recognition of a list of photos from Python, with one result or one error per photo.
//! A photo that is not an image or does not decode gets its error in its place, as a photo
//! below the minimum resolution does in the core, and the other photos are recognized.

use kai_core::catalog::Catalog;
use kai_core::recognize::{Recognition, RecognizeOptions};
use pyo3::prelude::*;

use crate::convert::{ImageSource, name_image};

/// Photos decoded and recognized per core call. The core splits each call into forward
/// passes of the image model's batch size, so results do not depend on this number. It
/// only bounds how many decoded photos of a long list are in memory at once.
const PHOTOS_PER_CALL: usize = 64;

/// Reads the Python photos while the GIL is held, keeping each one's error in its place.
pub fn extract_photos(images: &[Bound<'_, PyAny>]) -> Vec<kai_core::Result<ImageSource>> {
    images
        .iter()
        .enumerate()
        .map(|(index, image)| ImageSource::read(image).map_err(|err| name_image(err, index)))
        .collect()
}

/// Decodes and recognizes the photos in order; call it with the GIL released.
///
/// # Errors
///
/// Fails as a whole for what fails [`Catalog::recognize_batch`] as a whole: invalid
/// options, a catalog without images, a missing model or a storage failure. An empty list
/// still checks the options and loads the models.
pub fn recognize_each(
    catalog: &Catalog,
    sources: Vec<kai_core::Result<ImageSource>>,
    options: &RecognizeOptions,
) -> kai_core::Result<Vec<kai_core::Result<Recognition>>> {
    let mut results = Vec::with_capacity(sources.len());
    let mut sources = sources.into_iter().enumerate().peekable();
    loop {
        let chunk: Vec<_> = sources.by_ref().take(PHOTOS_PER_CALL).collect();
        recognize_chunk(catalog, chunk, options, &mut results)?;
        if sources.peek().is_none() {
            return Ok(results);
        }
    }
}

/// Recognizes the photos of `chunk` (each with its index in the caller's list) in one
/// core call and appends one result per photo to `results`.
fn recognize_chunk(
    catalog: &Catalog,
    chunk: Vec<(usize, kai_core::Result<ImageSource>)>,
    options: &RecognizeOptions,
    results: &mut Vec<kai_core::Result<Recognition>>,
) -> kai_core::Result<()> {
    let mut photos = Vec::with_capacity(chunk.len());
    // Per photo of the chunk: its index when it decoded, else its error.
    let mut decoded = Vec::with_capacity(chunk.len());
    for (index, source) in chunk {
        match source.and_then(|source| source.load(catalog.limits())) {
            Ok(photo) => {
                photos.push(photo);
                decoded.push(Ok(index));
            }
            Err(err) => decoded.push(Err(name_image(err, index))),
        }
    }
    let mut recognized = catalog.recognize_batch(&photos, options)?.into_iter();
    for entry in decoded {
        let result = match entry {
            Ok(index) => recognized
                .next()
                .unwrap_or_else(|| {
                    Err(kai_core::Error::Internal(
                        "the batch recognition returned fewer results than photos".into(),
                    ))
                })
                .map_err(|err| name_image(err, index)),
            Err(err) => Err(err),
        };
        results.push(result);
    }
    Ok(())
}
