//! The catalog in one SQLite file: WAL journal, one transaction per change, FTS5 for
//! keyword search, and migrations recorded by name.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Map, Value};

use super::record::{ImageRef, Material, MaterialInput};
use super::storage::{CatalogStorage, ExpectedVersion, MaterialFilter, MaterialVersion, NewImage};
use crate::error::{Error, Result};

/// Time format of every stored timestamp: RFC 3339 in UTC with milliseconds.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// A catalog stored in a SQLite database file.
#[derive(Debug)]
pub struct SqliteStorage {
    connection: Connection,
}

fn storage_error(action: &str, err: rusqlite::Error) -> Error {
    Error::Storage(format!("{action}: {err}"))
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] when the file cannot be opened or is not a kai database.
    pub fn open(path: &Path) -> Result<Self> {
        let connection = Connection::open(path)
            .map_err(|err| storage_error(&format!("cannot open {}", path.display()), err))?;
        Self::with_connection(connection)
    }

    /// Opens a private database in memory, for tests and throwaway catalogs.
    ///
    /// # Errors
    ///
    /// As [`SqliteStorage::open`].
    pub fn in_memory() -> Result<Self> {
        let connection = Connection::open_in_memory()
            .map_err(|err| storage_error("cannot open an in-memory database", err))?;
        Self::with_connection(connection)
    }

    fn with_connection(connection: Connection) -> Result<Self> {
        // WAL lets readers continue while an import writes; a busy timeout waits for
        // another process's write instead of failing at once.
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
            )
            .map_err(|err| storage_error("cannot configure the database", err))?;
        let mut storage = Self { connection };
        storage.migrate()?;
        Ok(storage)
    }

    fn migrate(&mut self) -> Result<()> {
        crate::db::migrations::apply_sqlite(&mut self.connection, crate::db::SQLITE_MIGRATIONS)
            .map(drop)
    }

    fn material_from_row(&self, row: &Row<'_>) -> rusqlite::Result<Material> {
        let tags: String = row.get("tags")?;
        let properties: String = row.get("properties")?;
        Ok(Material {
            key: row.get::<_, i64>("pk")? as u64,
            id: row.get("id")?,
            name: row.get("name")?,
            material_type: row.get("material_type")?,
            collection_id: row.get("collection_id")?,
            manufacturer: row.get("manufacturer")?,
            tags: serde_json::from_str(&tags).unwrap_or_default(),
            description: row.get("description")?,
            properties: serde_json::from_str::<Map<String, Value>>(&properties).unwrap_or_default(),
            images: Vec::new(),
            version: row.get("version")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
        })
    }

    fn with_images(&self, mut material: Material) -> Result<Material> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT pk, path, sha256, width, height FROM images
                 WHERE material_pk = ?1 ORDER BY position",
            )
            .map_err(|err| storage_error("cannot read images", err))?;
        material.images = statement
            .query_map([material.key as i64], |row| {
                Ok(ImageRef {
                    key: row.get::<_, i64>(0)? as u64,
                    path: row.get(1)?,
                    sha256: row.get(2)?,
                    width: row.get(3)?,
                    height: row.get(4)?,
                })
            })
            .and_then(Iterator::collect)
            .map_err(|err| storage_error("cannot read images", err))?;
        Ok(material)
    }

    fn query_one(&self, sql: &str, key: impl rusqlite::ToSql) -> Result<Option<Material>> {
        let material = self
            .connection
            .query_row(sql, [key], |row| self.material_from_row(row))
            .optional()
            .map_err(|err| storage_error("cannot read a material", err))?;
        material.map(|m| self.with_images(m)).transpose()
    }

    /// Checks and deletes a material inside a transaction that the caller ends.
    fn delete_in_transaction(
        &mut self,
        id: &str,
        expected: ExpectedVersion,
    ) -> Result<Option<Material>> {
        let Some(material) = self.get(id)? else {
            return Ok(None);
        };
        expected.check(id, Some(material.version))?;
        let record = serde_json::to_string(&material).unwrap_or_default();
        self.connection
            .execute(
                &format!(
                    "INSERT INTO material_versions (id, version, record, change, changed_at)
                     VALUES (?1, ?2, ?3, 'deleted', {NOW})"
                ),
                params![id, material.version + 1, record],
            )
            .map_err(|err| storage_error("cannot record the history", err))?;
        self.connection
            .execute("DELETE FROM materials WHERE pk = ?1", [material.key as i64])
            .map_err(|err| storage_error("cannot delete a material", err))?;
        Ok(Some(material))
    }
}

/// Turns free text into an FTS5 query that matches any of its words, so punctuation in
/// the user's text is never read as query syntax.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = super::storage::query_words(text)
        .into_iter()
        .map(|w| format!("\"{w}\""))
        .collect();
    (!words.is_empty()).then(|| words.join(" OR "))
}

impl CatalogStorage for SqliteStorage {
    fn get(&self, id: &str) -> Result<Option<Material>> {
        self.query_one("SELECT * FROM materials WHERE id = ?1", id)
    }

    fn get_by_key(&self, key: u64) -> Result<Option<Material>> {
        self.query_one("SELECT * FROM materials WHERE pk = ?1", key as i64)
    }

    fn get_by_image_key(&self, image_key: u64) -> Result<Option<Material>> {
        self.query_one(
            "SELECT m.* FROM materials m JOIN images i ON i.material_pk = m.pk WHERE i.pk = ?1",
            image_key as i64,
        )
    }

    fn content_hash(&self, id: &str) -> Result<Option<String>> {
        self.connection
            .query_row(
                "SELECT content_hash FROM materials WHERE id = ?1",
                [id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|err| storage_error("cannot read a content hash", err))
    }

    fn put(
        &mut self,
        record: &MaterialInput,
        images: &[NewImage],
        content_hash: &str,
        expected: ExpectedVersion,
    ) -> Result<Material> {
        let tags = serde_json::to_string(&record.tags).unwrap_or_else(|_| "[]".into());
        let properties = serde_json::to_string(&record.properties).unwrap_or_else(|_| "{}".into());
        let tx = self
            .connection
            .transaction()
            .map_err(|err| storage_error("cannot start a transaction", err))?;
        let existing: Option<(i64, u32)> = tx
            .query_row(
                "SELECT pk, version FROM materials WHERE id = ?1",
                [&record.id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(|err| storage_error("cannot read a material", err))?;
        expected.check(&record.id, existing.map(|(_, version)| version))?;
        let (pk, change) = match existing {
            Some((pk, _)) => {
                tx.execute(
                    &format!(
                        "UPDATE materials SET name = ?2, material_type = ?3, collection_id = ?4,
                         manufacturer = ?5, tags = ?6, description = ?7, properties = ?8,
                         content_hash = ?9, version = version + 1, updated_at = {NOW}
                         WHERE pk = ?1"
                    ),
                    params![
                        pk,
                        record.name,
                        record.material_type,
                        record.collection_id,
                        record.manufacturer,
                        tags,
                        record.description,
                        properties,
                        content_hash
                    ],
                )
                .map_err(|err| storage_error("cannot update a material", err))?;
                tx.execute("DELETE FROM images WHERE material_pk = ?1", [pk])
                    .map_err(|err| storage_error("cannot replace images", err))?;
                (pk, "updated")
            }
            None => {
                // A deleted id starts again after its last recorded version.
                let last: u32 = tx
                    .query_row(
                        "SELECT COALESCE(MAX(version), 0) FROM material_versions WHERE id = ?1",
                        [&record.id],
                        |row| row.get(0),
                    )
                    .map_err(|err| storage_error("cannot read the history", err))?;
                tx.execute(
                    &format!(
                        "INSERT INTO materials (id, name, material_type, collection_id, manufacturer,
                         tags, description, properties, content_hash, version, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, {NOW}, {NOW})"
                    ),
                    params![
                        record.id,
                        record.name,
                        record.material_type,
                        record.collection_id,
                        record.manufacturer,
                        tags,
                        record.description,
                        properties,
                        content_hash,
                        last + 1
                    ],
                )
                .map_err(|err| storage_error("cannot insert a material", err))?;
                (tx.last_insert_rowid(), "created")
            }
        };
        for (position, image) in images.iter().enumerate() {
            tx.execute(
                "INSERT INTO images (material_pk, position, path, sha256, width, height)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    pk,
                    position as i64,
                    image.path,
                    image.sha256,
                    image.width,
                    image.height
                ],
            )
            .map_err(|err| storage_error("cannot insert an image", err))?;
        }
        let snapshot = {
            let version: u32 = tx
                .query_row("SELECT version FROM materials WHERE pk = ?1", [pk], |row| {
                    row.get(0)
                })
                .map_err(|err| storage_error("cannot read a material", err))?;
            let mut value = serde_json::to_value(record).unwrap_or(Value::Null);
            value["images"] =
                serde_json::to_value(images.iter().map(|i| &i.path).collect::<Vec<_>>())
                    .unwrap_or(Value::Null);
            (version, value.to_string())
        };
        tx.execute(
            &format!(
                "INSERT INTO material_versions (id, version, record, change, changed_at)
                 VALUES (?1, ?2, ?3, ?4, {NOW})"
            ),
            params![record.id, snapshot.0, snapshot.1, change],
        )
        .map_err(|err| storage_error("cannot record the history", err))?;
        tx.commit()
            .map_err(|err| storage_error("cannot commit a material", err))?;
        self.get_by_key(pk as u64)?
            .ok_or_else(|| Error::Storage(format!("material {} vanished after writing", record.id)))
    }

    fn delete_expecting(
        &mut self,
        id: &str,
        expected: ExpectedVersion,
    ) -> Result<Option<Material>> {
        // IMMEDIATE takes the database's write lock before the read, so another process
        // cannot change the version between the check and the deletion.
        self.connection
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|err| storage_error("cannot start a transaction", err))?;
        let result = self.delete_in_transaction(id, expected);
        let end = if matches!(result, Ok(Some(_))) {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        if let Err(err) = self.connection.execute_batch(end) {
            // A failed COMMIT can leave the transaction open, so end it before the next
            // write starts one.
            let _ = self.connection.execute_batch("ROLLBACK");
            if result.is_ok() {
                return Err(storage_error("cannot commit a deletion", err));
            }
        }
        result
    }

    fn list(&self, filter: &MaterialFilter, offset: usize, limit: usize) -> Result<Vec<Material>> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT * FROM materials
                 WHERE (?1 IS NULL OR material_type = ?1) AND (?2 IS NULL OR collection_id = ?2)
                 ORDER BY id",
            )
            .map_err(|err| storage_error("cannot list materials", err))?;
        let rows: Vec<Material> = statement
            .query_map(params![filter.material_type, filter.collection_id], |row| {
                self.material_from_row(row)
            })
            .and_then(Iterator::collect)
            .map_err(|err| storage_error("cannot list materials", err))?;
        rows.into_iter()
            .filter(|m| filter.tags.iter().all(|t| m.tags.contains(t)))
            .skip(offset)
            .take(limit)
            .map(|m| self.with_images(m))
            .collect()
    }

    fn count(&self) -> Result<usize> {
        self.connection
            .query_row("SELECT COUNT(*) FROM materials", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|n| n as usize)
            .map_err(|err| storage_error("cannot count materials", err))
    }

    fn image_count(&self) -> Result<usize> {
        self.connection
            .query_row("SELECT COUNT(*) FROM images", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|n| n as usize)
            .map_err(|err| storage_error("cannot count images", err))
    }

    fn history(&self, id: &str) -> Result<Vec<MaterialVersion>> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT version, change, changed_at, record FROM material_versions
                 WHERE id = ?1 ORDER BY version",
            )
            .map_err(|err| storage_error("cannot read the history", err))?;
        statement
            .query_map([id], |row| {
                let record: String = row.get(3)?;
                Ok(MaterialVersion {
                    version: row.get(0)?,
                    change: row.get(1)?,
                    changed_at: row.get(2)?,
                    record: serde_json::from_str(&record).unwrap_or(Value::Null),
                })
            })
            .and_then(Iterator::collect)
            .map_err(|err| storage_error("cannot read the history", err))
    }

    fn history_ids(&self) -> Result<Vec<String>> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT DISTINCT id FROM material_versions ORDER BY id")
            .map_err(|err| storage_error("cannot read the history", err))?;
        statement
            .query_map([], |row| row.get(0))
            .and_then(Iterator::collect)
            .map_err(|err| storage_error("cannot read the history", err))
    }

    fn keyword_search(
        &self,
        query: &str,
        filter: &MaterialFilter,
        limit: usize,
    ) -> Result<Vec<(u64, f32)>> {
        let Some(query) = fts_query(query) else {
            return Ok(Vec::new());
        };
        // One `json_each` test per required tag; tags are stored as a JSON array.
        let tags: String = (0..filter.tags.len())
            .map(|i| {
                format!(
                    " AND EXISTS (SELECT 1 FROM json_each(m.tags) WHERE json_each.value = ?{})",
                    i + 5
                )
            })
            .collect();
        let mut statement = self
            .connection
            .prepare_cached(&format!(
                "SELECT f.rowid, bm25(materials_fts) FROM materials_fts f
                 JOIN materials m ON m.pk = f.rowid
                 WHERE materials_fts MATCH ?1
                   AND (?3 IS NULL OR m.material_type = ?3)
                   AND (?4 IS NULL OR m.collection_id = ?4){tags}
                 ORDER BY bm25(materials_fts) LIMIT ?2"
            ))
            .map_err(|err| storage_error("cannot search keywords", err))?;
        let mut values: Vec<Box<dyn rusqlite::ToSql>> = vec![
            Box::new(query),
            Box::new(limit.min(i64::MAX as usize) as i64),
            Box::new(filter.material_type.clone()),
            Box::new(filter.collection_id.clone()),
        ];
        for tag in &filter.tags {
            values.push(Box::new(tag.clone()));
        }
        statement
            // FTS5's bm25() is lower for better matches; negate it so higher is better.
            .query_map(rusqlite::params_from_iter(values.iter()), |row| {
                Ok((row.get::<_, i64>(0)? as u64, -row.get::<_, f64>(1)? as f32))
            })
            .and_then(Iterator::collect)
            .map_err(|err| storage_error("cannot search keywords", err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, name: &str) -> MaterialInput {
        MaterialInput {
            id: id.into(),
            name: name.into(),
            material_type: "wood".into(),
            collection_id: Some("c1".into()),
            manufacturer: None,
            tags: vec!["brown".into()],
            description: format!("{name} for floors"),
            properties: Map::new(),
            images: vec![],
        }
    }

    fn image(path: &str) -> NewImage {
        NewImage {
            path: path.into(),
            sha256: "00".repeat(32),
            width: 10,
            height: 20,
        }
    }

    #[test]
    fn put_get_update_keeps_history() {
        let mut storage = SqliteStorage::in_memory().unwrap();
        let first = storage
            .put(
                &record("oak", "Oak planks"),
                &[image("a.jpg")],
                "h1",
                ExpectedVersion::Any,
            )
            .unwrap();
        assert_eq!(first.version, 1);
        assert_eq!(first.images.len(), 1);
        let second = storage
            .put(
                &record("oak", "Oak boards"),
                &[image("b.jpg"), image("c.jpg")],
                "h2",
                ExpectedVersion::Any,
            )
            .unwrap();
        assert_eq!(second.version, 2);
        assert_eq!(second.key, first.key);
        assert_eq!(second.images.len(), 2);
        assert_eq!(storage.content_hash("oak").unwrap().as_deref(), Some("h2"));
        let history = storage.history("oak").unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].record["name"], "Oak planks");
        assert_eq!(history[1].change, "updated");
    }

    #[test]
    fn delete_keeps_history_and_removes_images() {
        let mut storage = SqliteStorage::in_memory().unwrap();
        let stored = storage
            .put(
                &record("oak", "Oak"),
                &[image("a.jpg")],
                "h",
                ExpectedVersion::Any,
            )
            .unwrap();
        let image_key = stored.images[0].key;
        assert!(storage.delete("oak").unwrap().is_some());
        assert!(storage.get("oak").unwrap().is_none());
        assert!(storage.get_by_image_key(image_key).unwrap().is_none());
        assert_eq!(
            storage.history("oak").unwrap().last().unwrap().change,
            "deleted"
        );
        assert!(storage.delete("oak").unwrap().is_none());
        let again = storage
            .put(&record("oak", "Oak"), &[], "h", ExpectedVersion::Any)
            .unwrap();
        assert_eq!(again.version, 3);
    }

    #[test]
    fn keyword_search_ranks_by_bm25() {
        let mut storage = SqliteStorage::in_memory().unwrap();
        storage
            .put(&record("oak", "Oak planks"), &[], "h", ExpectedVersion::Any)
            .unwrap();
        let marble = MaterialInput {
            material_type: "stone".into(),
            ..record("marble", "Carrara marble")
        };
        storage
            .put(&marble, &[], "h", ExpectedVersion::Any)
            .unwrap();
        let hits = storage
            .keyword_search("marble!! (polished)", &MaterialFilter::default(), 10)
            .unwrap();
        assert_eq!(hits.len(), 1);
        let found = storage.get_by_key(hits[0].0).unwrap().unwrap();
        assert_eq!(found.id, "marble");
        assert!(
            storage
                .keyword_search("  ", &MaterialFilter::default(), 10)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn list_filters_and_pages() {
        let mut storage = SqliteStorage::in_memory().unwrap();
        for i in 0..5 {
            storage
                .put(
                    &record(&format!("m{i}"), "Oak"),
                    &[],
                    "h",
                    ExpectedVersion::Any,
                )
                .unwrap();
        }
        let filter = MaterialFilter {
            material_type: Some("wood".into()),
            ..Default::default()
        };
        let page = storage.list(&filter, 1, 2).unwrap();
        assert_eq!(
            page.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["m1", "m2"]
        );
        let none = MaterialFilter {
            tags: vec!["red".into()],
            ..Default::default()
        };
        assert!(storage.list(&none, 0, 10).unwrap().is_empty());
        assert_eq!(storage.count().unwrap(), 5);
    }

    #[test]
    fn migrations_apply_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kai.db");
        SqliteStorage::open(&path)
            .unwrap()
            .put(&record("oak", "Oak"), &[], "h", ExpectedVersion::Any)
            .unwrap();
        let reopened = SqliteStorage::open(&path).unwrap();
        assert_eq!(reopened.count().unwrap(), 1);
    }

    #[test]
    fn not_a_database_is_a_storage_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kai.db");
        std::fs::write(
            &path,
            b"this is not a SQLite file, just some text padding it out",
        )
        .unwrap();
        let err = SqliteStorage::open(&path).unwrap_err();
        assert!(matches!(err, Error::Storage(_)), "{err}");
    }
}
