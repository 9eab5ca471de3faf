//! Copying a catalog into an empty PostgreSQL database, as `kai store migrate` does.

use postgres::Transaction;
use serde::Serialize;

use super::super::record::Material;
use super::super::space::VectorSpace;
use super::super::store::Catalog;
use super::storage::lock_exclusive;
use super::vectors::{build_index, put_image_vector, put_text_vector, reset_space};
use crate::db::PgPool;
use crate::db::postgres::pg_error;
use crate::error::{Error, Result};

/// The counts of what [`copy_to_postgres`] copied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyReport {
    /// Materials copied.
    pub materials: usize,
    /// Image records copied (the image files stay in the store folder).
    pub images: usize,
    /// History entries copied, deleted materials' included.
    pub versions: usize,
    /// Text vectors copied.
    pub text_vectors: usize,
    /// Image vectors copied.
    pub image_vectors: usize,
}

/// Copies the catalog of `source` into the PostgreSQL database behind `pool`: every
/// material with its images and full history (deleted materials' included), both vector
/// spaces with their model names, and the content hashes that let a later import skip
/// unchanged records. Material and image keys are kept.
///
/// The copy runs in one transaction under the catalog's exclusive lock, so it lands
/// whole or not at all. Image files, `calibration.json` and `heads/` stay in the store
/// folder, which the PostgreSQL catalog keeps using: open it with the same folder and
/// [`super::super::StoreOptions::with_database`].
///
/// # Errors
///
/// Returns [`Error::Conflict`] naming the count when the target already has materials
/// or history, [`Error::Storage`] when a material of `source` lacks a vector (run
/// `kai reindex` on the source first) or the database fails, and
/// [`Error::NotSupported`] when a space's dimension is above what pgvector indexes.
pub fn copy_to_postgres(source: &Catalog, pool: &PgPool) -> Result<CopyReport> {
    let storage = source.storage();
    let materials = storage.all()?;
    let mut connection = pool.get()?;
    let mut tx = connection
        .transaction()
        .map_err(|err| pg_error("cannot start a transaction", err))?;
    lock_exclusive(&mut tx)?;
    check_empty(&mut tx, pool)?;

    let mut spaces = Vec::new();
    for space in [source.image_index(), source.text_index()] {
        if let Some(dimension) = space.dimension()? {
            reset_space(&mut tx, space.kind(), space.model(), dimension)?;
            spaces.push(space.kind());
        }
    }

    let mut report = CopyReport::default();
    for material in &materials {
        let hash = storage.content_hash(&material.id)?.unwrap_or_default();
        insert_material(&mut tx, material, &hash)?;
        report.materials += 1;
        report.images += material.images.len();
        let text = required_vector(source.text_index(), material.key, material)?;
        put_text_vector(&mut tx, material.key as i64, &text)?;
        report.text_vectors += 1;
        for image in &material.images {
            let vector = required_vector(source.image_index(), image.key, material)?;
            put_image_vector(&mut tx, image.key as i64, material.key as i64, &vector)?;
            report.image_vectors += 1;
        }
    }
    for id in storage.history_ids()? {
        for version in storage.history(&id)? {
            tx.execute(
                "INSERT INTO material_versions (id, version, record, change, changed_at)
                 VALUES ($1, $2, $3::text::jsonb, $4, $5::text::timestamptz)",
                &[
                    &id,
                    &(version.version as i32),
                    &version.record.to_string(),
                    &version.change,
                    &version.changed_at,
                ],
            )
            .map_err(|err| pg_error("cannot copy the history", err))?;
            report.versions += 1;
        }
    }

    // New rows continue after the copied keys.
    tx.batch_execute(
        "SELECT setval(pg_get_serial_sequence('materials', 'pk'), COALESCE(MAX(pk), 0) + 1, false)
         FROM materials;
         SELECT setval(pg_get_serial_sequence('images', 'pk'), COALESCE(MAX(pk), 0) + 1, false)
         FROM images;",
    )
    .map_err(|err| pg_error("cannot advance the key sequences", err))?;
    for kind in spaces {
        build_index(&mut tx, kind)?;
    }
    tx.commit()
        .map_err(|err| pg_error("cannot commit the copy", err))?;
    Ok(report)
}

fn check_empty(tx: &mut Transaction<'_>, pool: &PgPool) -> Result<()> {
    let row = tx
        .query_one(
            "SELECT (SELECT count(*) FROM materials), (SELECT count(*) FROM material_versions)",
            &[],
        )
        .map_err(|err| pg_error("cannot count the target's materials", err))?;
    let (materials, versions): (i64, i64) = (row.get(0), row.get(1));
    if materials > 0 || versions > 0 {
        return Err(Error::Conflict(format!(
            "the catalog in {} already has {materials} materials and {versions} history \
             entries; copy into an empty database",
            pool.url()
        )));
    }
    Ok(())
}

fn insert_material(tx: &mut Transaction<'_>, material: &Material, hash: &str) -> Result<()> {
    let properties = serde_json::to_string(&material.properties).unwrap_or_else(|_| "{}".into());
    tx.execute(
        "INSERT INTO materials (pk, id, name, material_type, collection_id, manufacturer, tags,
         description, properties, content_hash, version, created_at, updated_at)
         OVERRIDING SYSTEM VALUE
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10, $11,
                 $12::text::timestamptz, $13::text::timestamptz)",
        &[
            &(material.key as i64),
            &material.id,
            &material.name,
            &material.material_type,
            &material.collection_id,
            &material.manufacturer,
            &material.tags,
            &material.description,
            &properties,
            &hash,
            &(material.version as i32),
            &material.created_at,
            &material.updated_at,
        ],
    )
    .map_err(|err| pg_error("cannot copy a material", err))?;
    for (position, image) in material.images.iter().enumerate() {
        tx.execute(
            "INSERT INTO images (pk, material_pk, position, path, sha256, width, height)
             OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &(image.key as i64),
                &(material.key as i64),
                &(position as i32),
                &image.path,
                &image.sha256,
                &(image.width as i32),
                &(image.height as i32),
            ],
        )
        .map_err(|err| pg_error("cannot copy an image", err))?;
    }
    Ok(())
}

fn required_vector(space: &VectorSpace, key: u64, material: &Material) -> Result<Vec<f32>> {
    space.get(key)?.ok_or_else(|| {
        Error::Storage(format!(
            "material `{}` has no vector in the `{}` space of the source store; run \
             `kai reindex` on it, then copy again",
            material.id,
            space.kind().name()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_serializes_in_camel_case() {
        let report = CopyReport {
            text_vectors: 2,
            ..CopyReport::default()
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["textVectors"], 2);
    }
}
