//! The catalog's records in PostgreSQL: materials, images and history in one transaction
//! per change, and keyword search with PostgreSQL's full-text search.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{GenericClient, Row, Transaction};
use serde_json::{Map, Value};

use super::super::record::{ImageRef, Material, MaterialInput};
use super::super::space::SpaceKind;
use super::super::storage::{
    CatalogStorage, ExpectedVersion, MaterialFilter, MaterialVersion, NewImage,
};
use super::super::write::{MaterialWrite, snapshot};
use super::vectors::{
    build_index, drop_index, ensure_space, put_image_vector, put_text_vector, should_rebuild_index,
};
use crate::db::PgPool;
use crate::db::postgres::pg_error;
use crate::error::{Error, Result};

/// An arbitrary constant that identifies the catalog's advisory lock. Writers hold it
/// shared. Re-embedding, copying and batches that rebuild an HNSW index hold it
/// exclusively, because they rewrite whole vector spaces or drop their index.
pub(crate) const CATALOG_LOCK: i64 = 0x6b61_695f_6361_7461;

/// Formats a `timestamptz` as RFC 3339 in UTC with milliseconds, as SQLite stores it.
macro_rules! rfc3339 {
    ($column:literal) => {
        concat!(
            "to_char(",
            $column,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        )
    };
}

/// The columns [`material_from_row`] reads, from `materials m`.
const MATERIAL_COLUMNS: &str = concat!(
    "m.pk, m.id, m.name, m.material_type, m.collection_id, m.manufacturer, m.tags, ",
    "m.description, m.properties::text, m.version, ",
    rfc3339!("m.created_at"),
    ", ",
    rfc3339!("m.updated_at")
);

/// A catalog stored in a PostgreSQL database, shared safely by threads and processes.
#[derive(Debug, Clone)]
pub struct PgCatalogStorage {
    pool: PgPool,
}

impl PgCatalogStorage {
    /// Returns the catalog storage of the database behind `pool`, whose migrations
    /// [`PgPool::open`] applied.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Returns the connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Stores `writes` with their vectors in one transaction: all of them or none.
    ///
    /// A space's first vector records `models` (image model, text model) and creates
    /// its index. Later vectors must come from the same model and have its dimension.
    /// A batch large against its space rebuilds the space's index after inserting
    /// instead of inserting into it (see [`should_rebuild_index`]).
    pub(crate) fn write_all(
        &self,
        writes: &[MaterialWrite],
        models: (&str, &str),
    ) -> Result<Vec<Material>> {
        let image_vectors = writes.iter().map(|w| w.image_vectors.len()).sum();
        let spaces = [
            (
                SpaceKind::Images,
                models.0,
                image_vectors,
                writes.iter().find_map(|w| w.image_vectors.first()),
            ),
            (
                SpaceKind::Texts,
                models.1,
                writes.len(),
                writes.first().map(|w| &w.text_vector),
            ),
        ];
        let mut connection = self.pool.get()?;
        let mut rebuild = Vec::new();
        for (kind, _, count, _) in &spaces {
            if should_rebuild_index(&mut *connection, *kind, *count)? {
                rebuild.push(*kind);
            }
        }

        // Dropping an index needs the catalog's lock exclusively, taken before anything
        // else, so two bulk writers take turns instead of deadlocking on the table lock.
        let mut tx = connection
            .transaction()
            .map_err(|err| pg_error("cannot start a transaction", err))?;
        if rebuild.is_empty() {
            lock_shared(&mut tx)?;
        } else {
            lock_exclusive(&mut tx)?;
        }
        for (kind, model, _, first) in spaces {
            if let Some(first) = first {
                ensure_space(&mut tx, &self.pool, kind, model, first.len())?;
            }
        }
        for kind in &rebuild {
            drop_index(&mut tx, *kind)?;
        }

        let mut keys = Vec::with_capacity(writes.len());
        for write in writes {
            let (pk, image_pks) = put_record(
                &mut tx,
                &write.record,
                &write.images,
                &write.content_hash,
                write.expected,
            )?;
            put_text_vector(&mut tx, pk, &write.text_vector)?;
            for (image_pk, vector) in image_pks.iter().zip(&write.image_vectors) {
                put_image_vector(&mut tx, *image_pk, pk, vector)?;
            }
            keys.push(pk);
        }
        for kind in rebuild {
            build_index(&mut tx, kind)?;
        }

        let materials = materials_by_keys(&mut tx, &keys)?;
        tx.commit()
            .map_err(|err| pg_error("cannot commit materials", err))?;
        Ok(materials)
    }

    fn query_one(&self, condition: &str, param: &(dyn ToSql + Sync)) -> Result<Option<Material>> {
        let mut connection = self.pool.get()?;
        let sql = format!("SELECT {MATERIAL_COLUMNS} FROM materials m {condition}");
        let row = connection
            .query_opt(&sql, &[param])
            .map_err(|err| pg_error("cannot read a material", err))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut materials = vec![material_from_row(&row)];
        attach_images(&mut *connection, &mut materials)?;
        Ok(materials.pop())
    }
}

/// Takes the catalog's lock shared for the rest of `tx`.
pub(crate) fn lock_shared(tx: &mut Transaction<'_>) -> Result<()> {
    tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&CATALOG_LOCK])
        .map_err(|err| pg_error("cannot lock the catalog", err))?;
    Ok(())
}

/// Takes the catalog's lock exclusively for the rest of `tx`, waiting for writers.
pub(crate) fn lock_exclusive(tx: &mut Transaction<'_>) -> Result<()> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CATALOG_LOCK])
        .map_err(|err| pg_error("cannot lock the catalog", err))?;
    Ok(())
}

fn material_from_row(row: &Row) -> Material {
    let properties: String = row.get(8);
    Material {
        key: row.get::<_, i64>(0) as u64,
        id: row.get(1),
        name: row.get(2),
        material_type: row.get(3),
        collection_id: row.get(4),
        manufacturer: row.get(5),
        tags: row.get(6),
        description: row.get(7),
        properties: serde_json::from_str::<Map<String, Value>>(&properties).unwrap_or_default(),
        images: Vec::new(),
        version: row.get::<_, i32>(9) as u32,
        created_at: row.get(10),
        updated_at: row.get(11),
    }
}

/// Reads the images of `materials` in one query and attaches them in position order.
fn attach_images(client: &mut impl GenericClient, materials: &mut [Material]) -> Result<()> {
    if materials.is_empty() {
        return Ok(());
    }
    let keys: Vec<i64> = materials.iter().map(|m| m.key as i64).collect();
    let rows = client
        .query(
            "SELECT material_pk, pk, path, sha256, width, height FROM images
             WHERE material_pk = ANY($1) ORDER BY material_pk, position",
            &[&keys],
        )
        .map_err(|err| pg_error("cannot read images", err))?;
    let mut by_material: HashMap<u64, Vec<ImageRef>> = HashMap::new();
    for row in rows {
        by_material
            .entry(row.get::<_, i64>(0) as u64)
            .or_default()
            .push(ImageRef {
                key: row.get::<_, i64>(1) as u64,
                path: row.get(2),
                sha256: row.get(3),
                width: row.get::<_, i32>(4) as u32,
                height: row.get::<_, i32>(5) as u32,
            });
    }
    for material in materials {
        material.images = by_material.remove(&material.key).unwrap_or_default();
    }
    Ok(())
}

/// Reads the materials with `keys`, in the order of `keys`.
fn materials_by_keys(client: &mut impl GenericClient, keys: &[i64]) -> Result<Vec<Material>> {
    let sql = format!("SELECT {MATERIAL_COLUMNS} FROM materials m WHERE m.pk = ANY($1)");
    let rows = client
        .query(&sql, &[&keys])
        .map_err(|err| pg_error("cannot read materials", err))?;
    let mut materials: Vec<Material> = rows.iter().map(material_from_row).collect();
    attach_images(client, &mut materials)?;
    let mut by_key: HashMap<u64, Material> = materials.into_iter().map(|m| (m.key, m)).collect();
    keys.iter()
        .map(|key| {
            by_key.remove(&(*key as u64)).ok_or_else(|| {
                Error::Storage(format!("material with key {key} vanished after writing"))
            })
        })
        .collect()
}

/// Creates or replaces a material row and its images inside `tx` and records the new
/// version. Returns the material key and the new image keys in order.
///
/// The material row is locked (`SELECT … FOR UPDATE`) before its version is checked, so
/// concurrent writers of one material take turns and each gets its own version.
fn put_record(
    tx: &mut Transaction<'_>,
    record: &MaterialInput,
    images: &[NewImage],
    content_hash: &str,
    expected: ExpectedVersion,
) -> Result<(i64, Vec<i64>)> {
    let tags = &record.tags;
    let properties = serde_json::to_string(&record.properties).unwrap_or_else(|_| "{}".into());
    let mut attempts = 0;
    let (pk, version, change) = loop {
        attempts += 1;
        let existing = tx
            .query_opt(
                "SELECT pk, version FROM materials WHERE id = $1 FOR UPDATE",
                &[&record.id],
            )
            .map_err(|err| pg_error("cannot read a material", err))?
            .map(|row| (row.get::<_, i64>(0), row.get::<_, i32>(1) as u32));
        expected.check(&record.id, existing.map(|(_, version)| version))?;
        if let Some((pk, _)) = existing {
            let version: i32 = tx
                .query_one(
                    "UPDATE materials SET name = $2, material_type = $3, collection_id = $4,
                 manufacturer = $5, tags = $6, description = $7, properties = $8::text::jsonb,
                 content_hash = $9, version = version + 1, updated_at = now()
                 WHERE pk = $1 RETURNING version",
                    &[
                        &pk,
                        &record.name,
                        &record.material_type,
                        &record.collection_id,
                        &record.manufacturer,
                        tags,
                        &record.description,
                        &properties,
                        &content_hash,
                    ],
                )
                .map_err(|err| pg_error("cannot update a material", err))?
                .get(0);
            tx.execute("DELETE FROM images WHERE material_pk = $1", &[&pk])
                .map_err(|err| pg_error("cannot replace images", err))?;
            break (pk, version, "updated");
        }
        // A deleted id starts again after its last recorded version.
        let last: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM material_versions WHERE id = $1",
                &[&record.id],
            )
            .map_err(|err| pg_error("cannot read the history", err))?
            .get(0);
        let inserted = tx
            .query_opt(
                "INSERT INTO materials (id, name, material_type, collection_id, manufacturer,
                 tags, description, properties, content_hash, version, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb, $9, $10, now(), now())
                 ON CONFLICT (id) DO NOTHING RETURNING pk",
                &[
                    &record.id,
                    &record.name,
                    &record.material_type,
                    &record.collection_id,
                    &record.manufacturer,
                    tags,
                    &record.description,
                    &properties,
                    &content_hash,
                    &(last + 1),
                ],
            )
            .map_err(|err| pg_error("cannot insert a material", err))?;
        match inserted {
            Some(row) => break (row.get::<_, i64>(0), last + 1, "created"),
            // Another writer created the id after this one looked. The next round locks
            // that row and replaces it, or reports the conflict under `Absent`.
            None if attempts < 3 => continue,
            None => {
                return Err(Error::Conflict(format!(
                    "material `{}` was created and deleted by other writers while this \
                     write ran; retry",
                    record.id
                )));
            }
        }
    };
    let mut image_pks = Vec::with_capacity(images.len());
    for (position, image) in images.iter().enumerate() {
        let row = tx
            .query_one(
                "INSERT INTO images (material_pk, position, path, sha256, width, height)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING pk",
                &[
                    &pk,
                    &(position as i32),
                    &image.path,
                    &image.sha256,
                    &(image.width as i32),
                    &(image.height as i32),
                ],
            )
            .map_err(|err| pg_error("cannot insert an image", err))?;
        image_pks.push(row.get::<_, i64>(0));
    }
    tx.execute(
        "INSERT INTO material_versions (id, version, record, change, changed_at)
         VALUES ($1, $2, $3::text::jsonb, $4, now())",
        &[
            &record.id,
            &version,
            &snapshot(record, images).to_string(),
            &change,
        ],
    )
    .map_err(|err| pg_error("cannot record the history", err))?;
    Ok((pk, image_pks))
}

/// Turns free text into a `tsquery` that matches any of its words. Only letters and
/// digits reach the query, so the user's punctuation is never read as query syntax.
fn ts_query(text: &str) -> Option<String> {
    let words = super::super::storage::query_words(text);
    (!words.is_empty()).then(|| words.join(" | "))
}

impl CatalogStorage for PgCatalogStorage {
    fn get(&self, id: &str) -> Result<Option<Material>> {
        self.query_one("WHERE m.id = $1", &id)
    }

    fn get_by_key(&self, key: u64) -> Result<Option<Material>> {
        self.query_one("WHERE m.pk = $1", &(key as i64))
    }

    fn get_by_image_key(&self, image_key: u64) -> Result<Option<Material>> {
        self.query_one(
            "JOIN images i ON i.material_pk = m.pk WHERE i.pk = $1",
            &(image_key as i64),
        )
    }

    fn image_owners(&self, image_keys: &[u64]) -> Result<Vec<(u64, u64)>> {
        let keys: Vec<i64> = image_keys.iter().map(|k| *k as i64).collect();
        let rows = self
            .pool
            .get()?
            .query(
                "SELECT pk, material_pk FROM images WHERE pk = ANY($1)",
                &[&keys],
            )
            .map_err(|err| pg_error("cannot read images", err))?;
        let owners: HashMap<u64, u64> = rows
            .iter()
            .map(|row| (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
            .collect();
        Ok(image_keys
            .iter()
            .filter_map(|key| owners.get(key).map(|owner| (*key, *owner)))
            .collect())
    }

    fn material_ids(&self, keys: &[u64]) -> Result<Vec<(u64, String)>> {
        let wanted: Vec<i64> = keys.iter().map(|k| *k as i64).collect();
        let rows = self
            .pool
            .get()?
            .query(
                "SELECT pk, id FROM materials WHERE pk = ANY($1)",
                &[&wanted],
            )
            .map_err(|err| pg_error("cannot read materials", err))?;
        let mut ids: HashMap<u64, String> = rows
            .iter()
            .map(|row| (row.get::<_, i64>(0) as u64, row.get(1)))
            .collect();
        Ok(keys
            .iter()
            .filter_map(|key| ids.remove(key).map(|id| (*key, id)))
            .collect())
    }

    fn content_hash(&self, id: &str) -> Result<Option<String>> {
        let row = self
            .pool
            .get()?
            .query_opt("SELECT content_hash FROM materials WHERE id = $1", &[&id])
            .map_err(|err| pg_error("cannot read a content hash", err))?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Writes the record without vectors. [`super::super::Catalog`] writes records with
    /// their vectors in one transaction instead; this method serves callers that use the
    /// storage alone.
    fn put(
        &mut self,
        record: &MaterialInput,
        images: &[NewImage],
        content_hash: &str,
        expected: ExpectedVersion,
    ) -> Result<Material> {
        let mut connection = self.pool.get()?;
        let mut tx = connection
            .transaction()
            .map_err(|err| pg_error("cannot start a transaction", err))?;
        lock_shared(&mut tx)?;
        let (pk, _) = put_record(&mut tx, record, images, content_hash, expected)?;
        let material = materials_by_keys(&mut tx, &[pk])?.pop();
        tx.commit()
            .map_err(|err| pg_error("cannot commit a material", err))?;
        material
            .ok_or_else(|| Error::Storage(format!("material {} vanished after writing", record.id)))
    }

    fn delete_expecting(
        &mut self,
        id: &str,
        expected: ExpectedVersion,
    ) -> Result<Option<Material>> {
        let mut connection = self.pool.get()?;
        let mut tx = connection
            .transaction()
            .map_err(|err| pg_error("cannot start a transaction", err))?;
        lock_shared(&mut tx)?;
        let sql = format!("SELECT {MATERIAL_COLUMNS} FROM materials m WHERE m.id = $1 FOR UPDATE");
        let Some(row) = tx
            .query_opt(&sql, &[&id])
            .map_err(|err| pg_error("cannot read a material", err))?
        else {
            return Ok(None);
        };
        let mut materials = vec![material_from_row(&row)];
        attach_images(&mut tx, &mut materials)?;
        let Some(material) = materials.pop() else {
            return Ok(None);
        };
        // The row is locked (FOR UPDATE), so its version cannot change before the delete.
        expected.check(id, Some(material.version))?;

        let record = serde_json::to_string(&material).unwrap_or_default();
        tx.execute(
            "INSERT INTO material_versions (id, version, record, change, changed_at)
             VALUES ($1, $2, $3::text::jsonb, 'deleted', now())",
            &[&id, &(material.version as i32 + 1), &record],
        )
        .map_err(|err| pg_error("cannot record the history", err))?;
        // Images and vectors go with the row (ON DELETE CASCADE).
        tx.execute(
            "DELETE FROM materials WHERE pk = $1",
            &[&(material.key as i64)],
        )
        .map_err(|err| pg_error("cannot delete a material", err))?;
        tx.commit()
            .map_err(|err| pg_error("cannot commit a deletion", err))?;
        Ok(Some(material))
    }

    fn list(&self, filter: &MaterialFilter, offset: usize, limit: usize) -> Result<Vec<Material>> {
        let offset = offset.min(i64::MAX as usize) as i64;
        let limit = limit.min(i64::MAX as usize) as i64;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&offset, &limit];
        let mut conditions = vec!["TRUE".to_owned()];
        if let Some(material_type) = &filter.material_type {
            params.push(material_type);
            conditions.push(format!("m.material_type = ${}", params.len()));
        }
        if let Some(collection) = &filter.collection_id {
            params.push(collection);
            conditions.push(format!("m.collection_id = ${}", params.len()));
        }
        if !filter.tags.is_empty() {
            params.push(&filter.tags);
            conditions.push(format!("m.tags @> ${}::text[]", params.len()));
        }
        let sql = format!(
            "SELECT {MATERIAL_COLUMNS} FROM materials m WHERE {}
             ORDER BY m.id OFFSET $1 LIMIT $2",
            conditions.join(" AND ")
        );
        let mut connection = self.pool.get()?;
        let rows = connection
            .query(&sql, &params)
            .map_err(|err| pg_error("cannot list materials", err))?;
        let mut materials: Vec<Material> = rows.iter().map(material_from_row).collect();
        attach_images(&mut *connection, &mut materials)?;
        Ok(materials)
    }

    fn count(&self) -> Result<usize> {
        let count: i64 = self
            .pool
            .get()?
            .query_one("SELECT count(*) FROM materials", &[])
            .map_err(|err| pg_error("cannot count materials", err))?
            .get(0);
        Ok(count as usize)
    }

    fn image_count(&self) -> Result<usize> {
        let count: i64 = self
            .pool
            .get()?
            .query_one("SELECT count(*) FROM images", &[])
            .map_err(|err| pg_error("cannot count images", err))?
            .get(0);
        Ok(count as usize)
    }

    fn history(&self, id: &str) -> Result<Vec<MaterialVersion>> {
        let sql = concat!(
            "SELECT version, change, ",
            rfc3339!("changed_at"),
            ", record::text FROM material_versions WHERE id = $1 ORDER BY version"
        );
        let rows = self
            .pool
            .get()?
            .query(sql, &[&id])
            .map_err(|err| pg_error("cannot read the history", err))?;
        Ok(rows
            .iter()
            .map(|row| MaterialVersion {
                version: row.get::<_, i32>(0) as u32,
                change: row.get(1),
                changed_at: row.get(2),
                record: serde_json::from_str(row.get::<_, &str>(3)).unwrap_or(Value::Null),
            })
            .collect())
    }

    fn history_ids(&self) -> Result<Vec<String>> {
        let rows = self
            .pool
            .get()?
            .query("SELECT DISTINCT id FROM material_versions ORDER BY id", &[])
            .map_err(|err| pg_error("cannot read the history", err))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Ranks materials by `ts_rank_cd` (cover density) over name and type (weight A),
    /// tags (B) and description (C), matching any word of `query`.
    fn keyword_search(
        &self,
        query: &str,
        filter: &MaterialFilter,
        limit: usize,
    ) -> Result<Vec<(u64, f32)>> {
        let Some(query) = ts_query(query) else {
            return Ok(Vec::new());
        };
        let limit = limit.min(i64::MAX as usize) as i64;
        let rows = self
            .pool
            .get()?
            .query(
                "SELECT m.pk, ts_rank_cd(m.search, q) AS rank
                 FROM materials m, to_tsquery('simple', $1) q
                 WHERE m.search @@ q
                   AND ($3::TEXT IS NULL OR m.material_type = $3)
                   AND ($4::TEXT IS NULL OR m.collection_id = $4)
                   AND m.tags @> $5::TEXT[]
                 ORDER BY rank DESC, m.pk LIMIT $2",
                &[
                    &query,
                    &limit,
                    &filter.material_type,
                    &filter.collection_id,
                    &filter.tags,
                ],
            )
            .map_err(|err| pg_error("cannot search keywords", err))?;
        Ok(rows
            .iter()
            .map(|row| (row.get::<_, i64>(0) as u64, row.get::<_, f32>(1)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_query_keeps_words_only() {
        assert_eq!(
            ts_query("Marble!! (polished) & it's").as_deref(),
            Some("marble | polished | it | s")
        );
        assert_eq!(ts_query("  !! "), None);
    }
}
