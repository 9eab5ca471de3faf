//! The store's copies of imported images, named by content so the same photo is kept once.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::storage::NewImage;
use crate::error::{Error, Result};
use crate::image::{ImageInfo, ImageLimits, RgbImage, decode, probe};
use crate::models::to_hex;

/// An image read from a catalog folder, decoded and hashed.
#[derive(Debug)]
pub struct LoadedImage {
    /// The encoded bytes as read.
    pub bytes: Vec<u8>,
    /// SHA-256 of the bytes, hex encoded.
    pub sha256: String,
    /// The decoded pixels, upright.
    pub pixels: RgbImage,
    /// The format as stored.
    pub info: ImageInfo,
}

/// Reads, hashes and decodes one image, checking it against `limits`.
///
/// # Errors
///
/// Returns the decoding error, with the path named, for missing and undecodable files.
pub fn load_image(path: &Path, limits: &ImageLimits) -> Result<LoadedImage> {
    let size = std::fs::metadata(path)
        .map_err(|err| Error::io("cannot read", path, err))?
        .len();
    if size > limits.max_encoded_bytes {
        return Err(Error::invalid(
            "image",
            format!(
                "{} is {size} bytes, over the limit of {} (KAI_MAX_IMAGE_BYTES)",
                path.display(),
                limits.max_encoded_bytes
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|err| Error::io("cannot read", path, err))?;
    LoadedImage::from_bytes(bytes, limits, &path.display().to_string())
}

impl LoadedImage {
    /// Hashes and decodes encoded image bytes, checking them against `limits`; errors
    /// name the image `name`, such as a file path or an upload's file name.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] for bytes over the size limit and for empty,
    /// corrupt or oversized images.
    pub fn from_bytes(bytes: Vec<u8>, limits: &ImageLimits, name: &str) -> Result<Self> {
        if bytes.len() as u64 > limits.max_encoded_bytes {
            return Err(Error::invalid(
                "image",
                format!(
                    "{name} is {} bytes, over the limit of {} (KAI_MAX_IMAGE_BYTES)",
                    bytes.len(),
                    limits.max_encoded_bytes
                ),
            ));
        }
        // The decoder's reason is enough: its own "invalid image" prefix would repeat ours.
        let named = |err: Error| match err {
            Error::InvalidInput { reason, .. } => {
                Error::invalid("image", format!("{name}: {reason}"))
            }
            other => other,
        };
        let pixels = decode(&bytes, limits).map_err(named)?;
        let info = probe(&bytes).map_err(named)?;
        let sha256 = to_hex(&Sha256::digest(&bytes));
        Ok(Self {
            bytes,
            sha256,
            pixels,
            info,
        })
    }
}

/// The folder that contains the store's image copies.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
}

impl ImageFolder {
    /// Opens the images folder under the store root, creating it when absent.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Io`] when the folder cannot be created.
    pub fn open(root: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&root).map_err(|err| Error::io("cannot create", &root, err))?;
        Ok(Self { root })
    }

    /// Returns the absolute path of a stored image.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Reads, hashes and decodes the stored image at `relative`.
    ///
    /// The store accepted the image when it was imported, so a limit lowered since then
    /// does not reject it: each limit is raised to at least the file's size and its
    /// declared pixel count. Errors name the image by its path inside the store
    /// (`images/…`), never by its absolute path, so they can reach network clients.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Io`] for a missing or unreadable file and
    /// [`Error::InvalidInput`] for a corrupt one.
    pub fn load(&self, relative: &str, limits: &ImageLimits) -> Result<LoadedImage> {
        let name = format!("images/{relative}");
        let bytes = std::fs::read(self.path(relative))
            .map_err(|err| Error::io("cannot read", name.as_str(), err))?;
        let declared = probe(&bytes).map_or(0, |info| {
            u64::from(info.width).saturating_mul(u64::from(info.height))
        });
        let limits = ImageLimits {
            max_encoded_bytes: limits.max_encoded_bytes.max(bytes.len() as u64),
            max_pixels: limits.max_pixels.max(declared),
        };
        LoadedImage::from_bytes(bytes, &limits, &name)
    }

    /// Stores `image` under its hash and returns the path relative to the folder. An image
    /// that is already stored is not written again. The file appears whole or not at all:
    /// it is written to a temporary file in the same folder and renamed into place.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Io`] when the file cannot be written.
    pub fn store(&self, image: &LoadedImage) -> Result<String> {
        let extension = image.info.format.name().to_lowercase();
        let relative = format!("{}/{}.{extension}", &image.sha256[..2], image.sha256);
        let target = self.root.join(&relative);
        if target.is_file() {
            return Ok(relative);
        }
        let folder = target.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(folder).map_err(|err| Error::io("cannot create", folder, err))?;
        let mut temporary = tempfile::NamedTempFile::new_in(folder)
            .map_err(|err| Error::io("cannot create a file in", folder, err))?;
        temporary
            .write_all(&image.bytes)
            .and_then(|()| temporary.as_file().sync_all())
            .map_err(|err| Error::io("cannot write", temporary.path(), err))?;
        temporary
            .persist(&target)
            .map_err(|err| Error::io("cannot rename into", &target, err.error))?;
        Ok(relative)
    }

    /// Stores `image` as [`ImageFolder::store`] does and returns its record.
    ///
    /// # Errors
    ///
    /// As [`ImageFolder::store`].
    pub(crate) fn store_new(&self, image: &LoadedImage) -> Result<NewImage> {
        Ok(NewImage {
            path: self.store(image)?,
            sha256: image.sha256.clone(),
            width: image.pixels.width(),
            height: image.pixels.height(),
        })
    }
}
