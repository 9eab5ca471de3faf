//! The photos a reconstruction reads: files on disk or encoded bytes in memory.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// File extensions (lower case) that [`inputs_from_dir`] treats as photos.
const IMAGE_EXTENSIONS: [&str; 10] = [
    "jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "heic", "avif", "heif",
];

/// The origin of a photo's encoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A file, read when the reconstruction screens it.
    Path(PathBuf),
    /// Encoded bytes (JPEG, PNG, ...) already in memory.
    Bytes(Vec<u8>),
}

/// One photo of a reconstruction: its name (reported in the model and in error messages)
/// and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfmInput {
    /// Name of the photo, written as the image name in exported models.
    pub name: String,
    /// The origin of the encoded photo.
    pub source: ImageSource,
}

impl SfmInput {
    /// Creates an input read from `path`, named by its file name.
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let name = path.file_name().map_or_else(
            || path.to_string_lossy().into_owned(),
            |name| name.to_string_lossy().into_owned(),
        );
        Self {
            name,
            source: ImageSource::Path(path),
        }
    }

    /// Creates an input from encoded bytes in memory.
    pub fn from_bytes(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            source: ImageSource::Bytes(bytes),
        }
    }
}

/// Lists the photos in `dir` (not its subfolders) by extension: jpg, jpeg, png, webp, bmp,
/// tif, tiff, heic, heif and avif in any letter case, sorted by file name.
///
/// # Errors
///
/// [`Error::Io`] when `dir` cannot be read, and [`Error::InvalidInput`] naming `dir` when
/// it contains no photo.
pub fn inputs_from_dir(dir: &Path) -> Result<Vec<SfmInput>> {
    if !dir.is_dir() {
        return Err(Error::NotFound {
            what: "photo folder",
            name: dir.display().to_string(),
            hint: String::new(),
        });
    }
    let entries =
        std::fs::read_dir(dir).map_err(|err| Error::io("cannot read folder", dir, err))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| Error::io("cannot read folder", dir, err))?;
        let path = entry.path();
        if path.is_file() && has_image_extension(&path) {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(Error::invalid(
            "photos",
            format!(
                "{} contains no photo; expected files ending in {}",
                dir.display(),
                IMAGE_EXTENSIONS.join(", ")
            ),
        ));
    }
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(paths.into_iter().map(SfmInput::from_path).collect())
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| {
            let ext = ext.to_ascii_lowercase();
            IMAGE_EXTENSIONS.contains(&ext.as_str())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_listing_filters_and_sorts() {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in ["b.JPG", "a.png", "notes.txt", "c.tiff"] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        std::fs::create_dir(dir.path().join("sub.jpg")).expect("mkdir");
        let inputs = inputs_from_dir(dir.path()).expect("photos found");
        let names: Vec<_> = inputs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["a.png", "b.JPG", "c.tiff"]);
        assert!(matches!(inputs[0].source, ImageSource::Path(_)));
    }

    #[test]
    fn empty_dir_is_named_in_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("readme.md"), b"x").expect("write");
        let err = inputs_from_dir(dir.path()).expect_err("no photos");
        assert!(err.to_string().contains("contains no photo"), "{err}");
        assert!(
            err.to_string().contains(&dir.path().display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn from_path_names_by_file_name() {
        let input = SfmInput::from_path("/photos/IMG_0001.jpg");
        assert_eq!(input.name, "IMG_0001.jpg");
    }
}
