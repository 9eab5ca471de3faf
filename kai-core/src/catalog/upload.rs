//! Writing one material whose images arrive as bytes, as a network API receives them,
//! instead of as files in a catalog folder.

use super::images::LoadedImage;
use super::record::{MAX_IMAGES, Material, MaterialInput};
use super::storage::ExpectedVersion;
use super::store::{Catalog, ImportReport, content_hash};
use crate::error::{Error, Result};

/// An image received as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedImage {
    /// The name that errors report the image by, such as the upload's file name.
    pub name: String,
    /// The encoded image.
    pub bytes: Vec<u8>,
}

/// Whether a write creates a material or replaces a stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    /// The material must not exist yet.
    Create,
    /// The material must exist, at this version when one is given.
    Replace {
        expected_version: Option<u32>,
        /// Whether an empty `record.images` without uploads removes every stored image
        /// instead of keeping them all.
        images_listed: bool,
    },
}

impl Catalog {
    /// Creates one material from `record` and the images in `uploads`, in that order.
    ///
    /// `record.images` must be empty, because an upload brings no catalog folder to
    /// read files from. Every image is decoded and the id checked before anything is
    /// written, so a failed create leaves the catalog unchanged.
    ///
    /// # Errors
    ///
    /// Returns the validation errors of [`MaterialInput::normalized`],
    /// [`Error::InvalidInput`] naming an image that is corrupt or over the limits, and
    /// [`Error::Conflict`] when a material with the id exists.
    pub fn create_uploaded(
        &mut self,
        record: &MaterialInput,
        uploads: &[UploadedImage],
    ) -> Result<Material> {
        let uploads = self.decode_uploads(uploads)?;
        self.with_write(|catalog| catalog.put_uploaded(record, uploads, Intent::Create))
    }

    /// Replaces the fields of a stored material and, optionally, its images.
    ///
    /// `record.images` lists the stored images to keep, by the paths the material's
    /// [`super::ImageRef::path`] gives, in the requested order, and `uploads` follow them. When
    /// both are empty, the material keeps all its images. When only `uploads` are given,
    /// they replace the stored images.
    ///
    /// With `expected_version`, the write fails unless the material is at that version.
    /// Without one, it expects the version read at its start, so a concurrent change is
    /// never overwritten. A failed replace leaves the material unchanged.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] for an unknown id, [`Error::Conflict`] for another
    /// version, [`Error::InvalidInput`] for a path that is not one of the material's
    /// images, and the errors of [`Catalog::create_uploaded`].
    pub fn replace_uploaded(
        &mut self,
        record: &MaterialInput,
        uploads: &[UploadedImage],
        expected_version: Option<u32>,
    ) -> Result<Material> {
        let intent = Intent::Replace {
            expected_version,
            images_listed: false,
        };
        let uploads = self.decode_uploads(uploads)?;
        self.with_write(|catalog| catalog.put_uploaded(record, uploads, intent))
    }

    /// Replaces a stored material as [`Catalog::replace_uploaded`] does, except that
    /// `record.images` is always the complete list of stored images to keep, so an empty
    /// list without uploads removes every image. Clients that tell an absent list from an
    /// empty one, such as a JSON API, call this when the list is present.
    ///
    /// # Errors
    ///
    /// As [`Catalog::replace_uploaded`].
    pub fn replace_uploaded_listed(
        &mut self,
        record: &MaterialInput,
        uploads: &[UploadedImage],
        expected_version: Option<u32>,
    ) -> Result<Material> {
        let intent = Intent::Replace {
            expected_version,
            images_listed: true,
        };
        let uploads = self.decode_uploads(uploads)?;
        self.with_write(|catalog| catalog.put_uploaded(record, uploads, intent))
    }

    /// Decodes and hashes uploads outside the write lock, because decoding is the slow
    /// part and needs no stored state.
    fn decode_uploads(&self, uploads: &[UploadedImage]) -> Result<Vec<LoadedImage>> {
        if uploads.len() > MAX_IMAGES {
            return Err(Error::invalid(
                "images",
                format!(
                    "{} images uploaded, over the limit of {MAX_IMAGES}",
                    uploads.len()
                ),
            ));
        }
        uploads
            .iter()
            .map(|upload| {
                LoadedImage::from_bytes(upload.bytes.clone(), &self.options.limits, &upload.name)
            })
            .collect()
    }

    fn put_uploaded(
        &mut self,
        record: &MaterialInput,
        uploads: Vec<LoadedImage>,
        intent: Intent,
    ) -> Result<Material> {
        let mut record = record.normalized()?;
        let current = self.storage().get(&record.id)?;
        let expected = match (intent, &current) {
            (Intent::Create, _) => ExpectedVersion::Absent,
            (Intent::Replace { .. }, None) => {
                return Err(Error::NotFound {
                    what: "material",
                    name: record.id.clone(),
                    hint: " (create it first)".to_owned(),
                });
            }
            (
                Intent::Replace {
                    expected_version: Some(version),
                    ..
                },
                Some(_),
            ) => ExpectedVersion::Exactly(version),
            (Intent::Replace { .. }, Some(stored)) => ExpectedVersion::Exactly(stored.version),
        };
        let images_listed = matches!(
            intent,
            Intent::Replace {
                images_listed: true,
                ..
            }
        );
        // Checked before any image is copied, so a stale write leaves no files behind.
        // The storage checks again in the write's transaction.
        expected.check(&record.id, current.as_ref().map(|m| m.version))?;

        let stored_images = current.as_ref().map_or(&[][..], |m| m.images.as_slice());
        let keep_all = !images_listed && record.images.is_empty() && uploads.is_empty();
        let kept_paths: Vec<String> = if keep_all {
            stored_images.iter().map(|i| i.path.clone()).collect()
        } else {
            record.images.clone()
        };
        let mut images = Vec::with_capacity(kept_paths.len() + uploads.len());
        for path in &kept_paths {
            if !stored_images.iter().any(|image| image.path == *path) {
                return Err(Error::invalid(
                    format!("material {}: images", record.id),
                    format!(
                        "`{path}` is not a stored image of this material; list only paths \
                         from its `images` and send new images as uploads"
                    ),
                ));
            }
            images.push(self.images.load(path, &self.options.limits)?);
        }
        images.extend(uploads);
        if images.len() > MAX_IMAGES {
            return Err(Error::invalid(
                format!("material {}: images", record.id),
                format!("{} images, over the limit of {MAX_IMAGES}", images.len()),
            ));
        }
        record.images = kept_paths;
        let hash = content_hash(&record, &images, &[]);
        let mut report = ImportReport::default();
        self.store_batch(vec![(record.clone(), images, hash)], expected, &mut report)?;
        self.storage().get(&record.id)?.ok_or_else(|| {
            Error::Storage(format!("material {} vanished after the write", record.id))
        })
    }
}
