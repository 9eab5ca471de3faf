//! The material catalog: records with history, import from a folder, image copies, vector
//! spaces and hybrid search.
//!
//! An embedded store folder contains `kai.db` (SQLite: records, images, history,
//! full-text index), `index/images.kvi` and `index/texts.kvi` (one vector index per
//! vector space, each recording its model), `images/` (imported images, named by content
//! hash), `calibration.json` and `heads/`. With [`StoreOptions::database`] set, the
//! records and both vector spaces live in PostgreSQL with pgvector instead (see
//! [`postgres`]), and the folder keeps `images/`, `calibration.json` and `heads/`.
//! NOTE: a deployment with several machines needs that folder on shared storage.

mod backend;
mod bulk;
mod files;
mod images;
pub mod postgres;
mod record;
mod reindex;
mod search;
mod source;
mod space;
mod sqlite;
mod storage;
mod store;
mod upload;
mod write;

use std::io::Write;
use std::path::Path;

pub use bulk::{EmbeddedMaterial, MAX_EMBEDDED_BATCH};
pub use images::{ImageFolder, LoadedImage, load_image};
pub use postgres::{CopyReport, PgCatalogStorage, copy_to_postgres};
pub use record::{
    ImageRef, MAX_DESCRIPTION_BYTES, MAX_FIELD_BYTES, MAX_IMAGES, MAX_TAGS, Material, MaterialInput,
};
pub use search::{FusionWeights, MAX_TOP_K, SearchHit, SearchQuery, SearchResults};
pub use source::{CatalogSource, MAX_CATALOG_FILE_BYTES, RecordError, read_catalog};
pub use space::{SpaceKind, VectorSpace};
pub use sqlite::SqliteStorage;
pub use storage::{
    CatalogStorage, ExpectedVersion, MAX_QUERY_WORDS, MaterialFilter, MaterialVersion, NewImage,
};
pub use store::{Catalog, ImportReport, Progress, StoreOptions};
pub use upload::UploadedImage;

use crate::error::{Error, Result};
/// Writes `bytes` to `path` so the file appears whole or not at all: a temporary file in
/// the same folder is written, flushed to disk and renamed over the target.
///
/// # Errors
///
/// Returns [`Error::Io`] naming the file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).map_err(|err| Error::io("cannot create", folder, err))?;
    let mut temporary = tempfile::NamedTempFile::new_in(folder)
        .map_err(|err| Error::io("cannot create a file in", folder, err))?;
    temporary
        .write_all(bytes)
        .and_then(|()| temporary.as_file().sync_all())
        .map_err(|err| Error::io("cannot write", temporary.path(), err))?;
    temporary
        .persist(path)
        .map_err(|err| Error::io("cannot rename into", path, err.error))?;
    Ok(())
}
