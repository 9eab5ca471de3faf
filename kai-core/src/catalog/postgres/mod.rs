//! The catalog in PostgreSQL with pgvector: records, images and history in tables, the
//! two vector spaces in `vector` columns with HNSW indexes, keyword search with
//! PostgreSQL's full-text search, and a copy from an embedded store.
//!
//! A material and its vectors commit in one transaction, so no file lock is needed and
//! several processes can write to one database. Writers of one material lock its row,
//! so each write gets its own version in the history.
//!
//! The store folder still contains imported images (`images/`), the recognition calibration
//! (`calibration.json`) and trained heads (`heads/`).
//! NOTE: a deployment with several machines needs that folder on shared storage.

mod copy;
mod storage;
pub(crate) mod vectors;

pub use copy::{CopyReport, copy_to_postgres};
pub use storage::PgCatalogStorage;
pub(crate) use storage::lock_exclusive;
pub use vectors::MAX_INDEXED_DIMENSION;
pub(crate) use vectors::PgVectorSpace;
