//! The catalog's vector spaces in pgvector tables: `text_vectors` keyed by material key,
//! `image_vectors` keyed by image key, each with an HNSW index over cosine distance.

use pgvector::Vector;
use postgres::GenericClient;
use postgres::Transaction;

use super::super::space::SpaceKind;
use crate::db::PgPool;
use crate::db::postgres::pg_error;
use crate::error::{Error, Result};
use crate::index::{Filter, Hit, MAX_K};

/// The largest dimension pgvector 0.8 can index with HNSW for the `vector` type.
pub const MAX_INDEXED_DIMENSION: usize = 2000;

/// The smallest `hnsw.ef_search` a search uses; pgvector's default is 40. At 100,
/// recall@10 measured 0.95 to 0.98 on 5,000 random 96-dimensional vectors with and
/// without filters (the `pgvector_recall_at_10_against_exact` integration test).
const MIN_EF_SEARCH: usize = 100;

/// The largest `hnsw.ef_search` pgvector 0.8 accepts.
const MAX_EF_SEARCH: usize = 1000;

/// Returns the table of a space, its key column, and the name of its HNSW index.
fn table(kind: SpaceKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        SpaceKind::Images => ("image_vectors", "image_pk", "image_vectors_hnsw"),
        SpaceKind::Texts => ("text_vectors", "material_pk", "text_vectors_hnsw"),
    }
}

/// A read handle on one vector space of a PostgreSQL catalog.
#[derive(Clone)]
pub(crate) struct PgVectorSpace {
    pool: PgPool,
    kind: SpaceKind,
}

impl PgVectorSpace {
    /// Opens the space; when `model` is given, a space that another model filled is an
    /// error naming `kai reindex`.
    pub(crate) fn open(pool: &PgPool, kind: SpaceKind, model: Option<&str>) -> Result<Self> {
        let space = Self {
            pool: pool.clone(),
            kind,
        };
        if let Some(model) = model
            && let Some((recorded, _)) = space.recorded()?
        {
            check_model(kind, &recorded, model, pool)?;
        }
        Ok(space)
    }

    /// Returns the model and dimension recorded for the space, or `None` before its first
    /// vector.
    pub(crate) fn recorded(&self) -> Result<Option<(String, usize)>> {
        recorded(&mut *self.pool.get()?, self.kind)
    }

    pub(crate) fn len(&self) -> Result<usize> {
        let (table, _, _) = table(self.kind);
        let count: i64 = self
            .pool
            .get()?
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .map_err(|err| pg_error("cannot count vectors", err))?
            .get(0);
        Ok(count as usize)
    }

    pub(crate) fn get(&self, key: u64) -> Result<Option<Vec<f32>>> {
        let (table, key_column, _) = table(self.kind);
        let row = self
            .pool
            .get()?
            .query_opt(
                &format!("SELECT embedding FROM {table} WHERE {key_column} = $1"),
                &[&(key as i64)],
            )
            .map_err(|err| pg_error("cannot read a vector", err))?;
        Ok(row.map(|row| row.get::<_, Vector>(0).to_vec()))
    }

    /// Searches the space. Filters are SQL conditions on the joined `materials` row.
    ///
    /// The approximate search walks the HNSW index with pgvector's iterative scan, which
    /// keeps walking until `k` rows pass the filter or `hnsw.max_scan_tuples` (20,000 by
    /// default) rows were visited. When that still yields fewer than `k` rows under a
    /// filter, the search is repeated exactly, so a selective filter still gets `k`
    /// results whenever `k` materials pass it.
    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
        exact: bool,
    ) -> Result<Vec<Hit>> {
        if k == 0 || k > MAX_K {
            return Err(Error::invalid(
                "k",
                format!("must be between 1 and {MAX_K}, got {k}"),
            ));
        }
        let filter = filter.filter(|f| !f.is_empty());
        let mut connection = self.pool.get()?;
        let mut tx = connection
            .transaction()
            .map_err(|err| pg_error("cannot start a search", err))?;
        let Some((_, dimension)) = recorded(&mut tx, self.kind)? else {
            return Ok(Vec::new());
        };
        let query = super::super::space::unit_vector("query", query, Some(dimension))?;
        let hits = self.run_search(&mut tx, &query, k, filter, exact)?;
        if exact || filter.is_none() || hits.len() >= k {
            return Ok(hits);
        }
        self.run_search(&mut tx, &query, k, filter, true)
    }

    fn run_search(
        &self,
        tx: &mut Transaction<'_>,
        query: &[f32],
        k: usize,
        filter: Option<&Filter>,
        exact: bool,
    ) -> Result<Vec<Hit>> {
        let ef_search = k.clamp(MIN_EF_SEARCH, MAX_EF_SEARCH).to_string();
        // SET LOCAL scopes each setting to this transaction, so pooled connections keep
        // their defaults. Without the index scan the planner compares every vector that
        // passes the filter, which is the exact search.
        let settings = if exact {
            "SELECT set_config('enable_indexscan', 'off', true)"
        } else {
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),
                    set_config('hnsw.ef_search', $1, true)"
        };
        let params: &[&(dyn postgres::types::ToSql + Sync)] =
            if exact { &[] } else { &[&ef_search] };
        tx.query(settings, params)
            .map_err(|err| pg_error("cannot configure the vector search", err))?;

        let (table, key_column, _) = table(self.kind);
        let vector = Vector::from(query.to_vec());
        let limit = k as i64;
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&vector, &limit];
        let mut conditions = Vec::new();
        if let Some(filter) = filter {
            if let Some(material_type) = &filter.material_type {
                params.push(material_type);
                conditions.push(format!("m.material_type = ${}", params.len()));
            }
            if let Some(collection) = &filter.collection {
                params.push(collection);
                conditions.push(format!("m.collection_id = ${}", params.len()));
            }
            if !filter.tags.is_empty() {
                params.push(&filter.tags);
                conditions.push(format!("m.tags @> ${}::text[]", params.len()));
            }
        }
        let join = if conditions.is_empty() {
            String::new()
        } else {
            format!(
                "JOIN materials m ON m.pk = v.material_pk WHERE {}",
                conditions.join(" AND ")
            )
        };
        // A relaxed-order iterative scan may return rows slightly out of order, so the
        // rows are sorted again after the scan, as pgvector's documentation advises.
        let sql = format!(
            "WITH nearest AS MATERIALIZED (
                 SELECT v.{key_column} AS key, v.embedding <=> $1 AS distance
                 FROM {table} v {join}
                 ORDER BY v.embedding <=> $1 LIMIT $2)
             SELECT key, distance FROM nearest ORDER BY distance, key"
        );
        let rows = tx
            .query(&sql, &params)
            .map_err(|err| pg_error("cannot search vectors", err))?;
        Ok(rows
            .iter()
            .map(|row| Hit {
                id: row.get::<_, i64>(0) as u64,
                score: (1.0 - row.get::<_, f64>(1)) as f32,
            })
            .collect())
    }
}

/// Returns the recorded model and dimension of a space.
pub(crate) fn recorded(
    client: &mut impl GenericClient,
    kind: SpaceKind,
) -> Result<Option<(String, usize)>> {
    let row = client
        .query_opt(
            "SELECT model, dimension FROM vector_spaces WHERE name = $1",
            &[&kind.name()],
        )
        .map_err(|err| pg_error("cannot read the vector spaces", err))?;
    Ok(row.map(|row| (row.get(0), row.get::<_, i32>(1) as usize)))
}

fn check_model(kind: SpaceKind, recorded: &str, model: &str, pool: &PgPool) -> Result<()> {
    if recorded == model {
        return Ok(());
    }
    Err(Error::invalid(
        format!("vector space `{}`", kind.name()),
        format!(
            "in {} was built with model `{recorded}`, not `{model}`; run `kai reindex` to \
             re-embed the catalog with `{model}`",
            pool.url()
        ),
    ))
}

/// Makes sure the space exists for vectors of `dimension` from `model`, creating its
/// column type and HNSW index on first use, inside the writer's transaction.
///
/// Concurrent first writers serialize on the `vector_spaces` primary key: the second
/// waits for the first to commit and then finds its row.
pub(crate) fn ensure_space(
    tx: &mut Transaction<'_>,
    pool: &PgPool,
    kind: SpaceKind,
    model: &str,
    dimension: usize,
) -> Result<()> {
    check_indexable(kind, dimension)?;
    let created = tx
        .query_opt(
            "INSERT INTO vector_spaces (name, model, dimension) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING RETURNING name",
            &[&kind.name(), &model, &(dimension as i32)],
        )
        .map_err(|err| pg_error("cannot record a vector space", err))?
        .is_some();
    if created {
        set_column_dimension(tx, kind, dimension)?;
        build_index(tx, kind)?;
        return Ok(());
    }
    let (recorded_model, recorded_dimension) = recorded(tx, kind)?.ok_or_else(|| {
        Error::Storage(format!(
            "vector space `{}` vanished while it was written",
            kind.name()
        ))
    })?;
    check_model(kind, &recorded_model, model, pool)?;
    if recorded_dimension != dimension {
        return Err(Error::invalid(
            format!("{} vector", kind.name()),
            format!(
                "has {dimension} components, but the vector space has dimension \
                 {recorded_dimension}"
            ),
        ));
    }
    Ok(())
}

/// Empties a space and records it anew for `model` and `dimension`, without an index.
/// The caller then loads the vectors and calls [`build_index`], which is faster than
/// inserting into a live HNSW index. The caller holds the catalog's exclusive lock.
pub(crate) fn reset_space(
    tx: &mut Transaction<'_>,
    kind: SpaceKind,
    model: &str,
    dimension: usize,
) -> Result<()> {
    check_indexable(kind, dimension)?;
    drop_index(tx, kind)?;
    let (table, _, _) = table(kind);
    tx.batch_execute(&format!("TRUNCATE {table}"))
        .map_err(|err| pg_error("cannot empty a vector space", err))?;
    set_column_dimension(tx, kind, dimension)?;
    tx.execute(
        "INSERT INTO vector_spaces (name, model, dimension) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET model = EXCLUDED.model, dimension = EXCLUDED.dimension",
        &[&kind.name(), &model, &(dimension as i32)],
    )
    .map_err(|err| pg_error("cannot record a vector space", err))?;
    Ok(())
}

/// Minimum number of vectors in one batch for a rebuild of the index to be considered,
/// so small writes never take the catalog's exclusive lock that a rebuild needs.
const MIN_REBUILD_BATCH: usize = 1000;

/// Returns whether storing `count` more vectors is faster by rebuilding the space's
/// HNSW index than by inserting into it.
///
/// Measured with pgvector 0.8.6 on 2 cores: inserting one 384-dimensional vector into
/// an index of 20,000 took about 1.5 ms, building the index over 22,000 vectors took
/// 3.4 s, about 0.17 ms per vector. So a rebuild wins when a batch adds more than about
/// a ninth of the stored vectors; this uses an eighth.
pub(crate) fn should_rebuild_index(
    client: &mut impl GenericClient,
    kind: SpaceKind,
    count: usize,
) -> Result<bool> {
    if count < MIN_REBUILD_BATCH {
        return Ok(false);
    }
    let (table, _, _) = table(kind);
    let stored: i64 = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .map_err(|err| pg_error("cannot count vectors", err))?
        .get(0);
    Ok(count.saturating_mul(8) >= stored as usize)
}

/// Drops the space's HNSW index for a rebuild. Dropping an index locks its table, so
/// searches of the space wait until the transaction commits. The caller holds the
/// catalog's lock exclusively, so no writer holds or waits for the table meanwhile.
pub(crate) fn drop_index(tx: &mut Transaction<'_>, kind: SpaceKind) -> Result<()> {
    let (_, _, index) = table(kind);
    tx.batch_execute(&format!("DROP INDEX IF EXISTS {index}"))
        .map_err(|err| pg_error("cannot drop a vector index", err))
}

/// Builds the space's HNSW index over cosine distance with pgvector's defaults
/// (`m` 16, `ef_construction` 64).
pub(crate) fn build_index(tx: &mut Transaction<'_>, kind: SpaceKind) -> Result<()> {
    let (table, _, index) = table(kind);
    tx.batch_execute(&format!(
        "CREATE INDEX IF NOT EXISTS {index} ON {table} USING hnsw (embedding vector_cosine_ops)"
    ))
    .map_err(|err| pg_error("cannot build a vector index", err))
}

fn set_column_dimension(tx: &mut Transaction<'_>, kind: SpaceKind, dimension: usize) -> Result<()> {
    let (table, _, _) = table(kind);
    tx.batch_execute(&format!(
        "ALTER TABLE {table} ALTER COLUMN embedding TYPE vector({dimension})"
    ))
    .map_err(|err| pg_error("cannot set the vector dimension", err))
}

fn check_indexable(kind: SpaceKind, dimension: usize) -> Result<()> {
    if (1..=MAX_INDEXED_DIMENSION).contains(&dimension) {
        return Ok(());
    }
    Err(Error::NotSupported(format!(
        "the `{}` vectors have {dimension} components, but pgvector's HNSW index takes 1 to \
         {MAX_INDEXED_DIMENSION}; use a smaller model or the embedded (SQLite) store",
        kind.name()
    )))
}

/// Stores the text vector of a material, replacing any earlier one.
pub(crate) fn put_text_vector(
    tx: &mut Transaction<'_>,
    material_pk: i64,
    unit: &[f32],
) -> Result<()> {
    tx.execute(
        "INSERT INTO text_vectors (material_pk, embedding) VALUES ($1, $2)
         ON CONFLICT (material_pk) DO UPDATE SET embedding = EXCLUDED.embedding",
        &[&material_pk, &Vector::from(unit.to_vec())],
    )
    .map_err(|err| pg_error("cannot store a text vector", err))?;
    Ok(())
}

/// Stores the vector of a new image.
pub(crate) fn put_image_vector(
    tx: &mut Transaction<'_>,
    image_pk: i64,
    material_pk: i64,
    unit: &[f32],
) -> Result<()> {
    tx.execute(
        "INSERT INTO image_vectors (image_pk, material_pk, embedding) VALUES ($1, $2, $3)",
        &[&image_pk, &material_pk, &Vector::from(unit.to_vec())],
    )
    .map_err(|err| pg_error("cannot store an image vector", err))?;
    Ok(())
}
