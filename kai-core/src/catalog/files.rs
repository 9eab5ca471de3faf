//! The vector spaces of an embedded store: one index file per space under `index/`,
//! rewritten after each write while the store's `write.lock` is held.

use std::path::{Path, PathBuf};

use super::space::{SpaceKind, VectorSpace, manifest_dimension, new_index};
use super::storage::CatalogStorage;
use crate::error::{Error, Result};
use crate::index::VectorIndex;

/// Returns the index file of a space.
fn space_path(root: &Path, kind: SpaceKind) -> PathBuf {
    root.join("index").join(format!("{}.kvi", kind.name()))
}

/// Loads both vector spaces of the store at `root` and checks their vector counts against
/// the records in `storage`.
pub(crate) fn load_spaces(
    root: &Path,
    image_model: &str,
    text_model: &str,
    storage: &dyn CatalogStorage,
) -> Result<(VectorSpace, VectorSpace)> {
    let images = open_space(root, SpaceKind::Images, image_model)?;
    let texts = open_space(root, SpaceKind::Texts, text_model)?;
    // The database commits each record before the index files are rewritten, so a
    // process killed in between leaves vectors missing. The error names the repair.
    let counts = [
        (&images, storage.image_count()?),
        (&texts, storage.count()?),
    ];
    for (space, records) in counts {
        let vectors = space.len()?;
        if vectors != records {
            return Err(Error::Storage(format!(
                "vector space `{}` of {} has {vectors} vectors for {records} stored \
                 records (an import was interrupted?); run `kai reindex`",
                space.kind().name(),
                root.display()
            )));
        }
    }
    Ok((images, texts))
}

/// Returns an empty file-backed space, sized by the model's manifest when it has one.
pub(crate) fn empty_space(kind: SpaceKind, model: &str) -> Result<VectorSpace> {
    let index = manifest_dimension(model)
        .map(|dimension| new_index(dimension, model))
        .transpose()?;
    Ok(VectorSpace::file(kind, model, index))
}

/// Loads a space's index file, or returns an empty space when there is none yet.
fn open_space(root: &Path, kind: SpaceKind, model: &str) -> Result<VectorSpace> {
    let path = space_path(root, kind);
    if !path.is_file() {
        return empty_space(kind, model);
    }
    let space = kind.name();
    let index = VectorIndex::load(&path).map_err(|err| {
        Error::Storage(format!(
            "{err}; run `kai reindex` to rebuild the `{space}` space"
        ))
    })?;
    if index.model() != model {
        return Err(Error::invalid(
            format!("vector space `{space}`"),
            format!(
                "{} was built with model `{}`, not `{model}`; run `kai reindex` to re-embed the catalog with `{model}`",
                path.display(),
                index.model()
            ),
        ));
    }
    Ok(VectorSpace::file(kind, model, Some(index)))
}

/// Writes a file-backed space to its index file; a space without vectors or dimension
/// has nothing to write.
pub(crate) fn save_space(root: &Path, space: &VectorSpace) -> Result<()> {
    let Some(index) = space.file_index() else {
        return Ok(());
    };
    let path = space_path(root, space.kind());
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(|err| Error::io("cannot create", folder, err))?;
    }
    index.save(path)
}

/// An exclusive hold on a store's `write.lock`, released when dropped or when the process
/// ends, so two writers never interleave their database and index updates.
#[derive(Debug)]
pub(crate) struct WriteLock {
    _file: std::fs::File,
}

impl WriteLock {
    pub(crate) fn acquire(root: &Path) -> Result<Self> {
        let path = root.join("write.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|err| Error::io("cannot open", &path, err))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Conflict(format!(
                "another writer (a kai process or another catalog handle) is writing to the store \
                 {}; retry when it has finished",
                root.display()
            ))),
            Err(std::fs::TryLockError::Error(err)) => Err(Error::io("cannot lock", &path, err)),
        }
    }
}
