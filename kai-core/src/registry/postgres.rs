//! The registry in a PostgreSQL database.
//!
//! Nothing is cached in the process: every call reads the database, so processes that
//! share it see each other's writes at once.

use std::collections::BTreeMap;

use postgres::{GenericClient, Row, Transaction};

use super::schema::{ParamSpec, Schema};
use super::set::{
    CopiedKeys, NewResult, NewVersion, ParameterSet, RegistryDump, ResultRecord, SetSummary,
    VersionRef, copied_key, scope_of,
};
use super::storage::{BuildVersion, RegistryStorage};
use crate::db::postgres::pg_error;
use crate::db::{Millis, PgPool, rfc3339};
use crate::error::{Error, Result};

const SET_COLUMNS: &str = "name, scope, version, vals, author, note, created_at";

const RESULT_SELECT: &str =
    "SELECT s.name, s.scope, s.version, r.material_id, r.metrics, r.recorded_at
     FROM parameter_results r JOIN parameter_sets s ON s.pk = r.set_pk";

/// A registry stored in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgRegistry {
    pool: PgPool,
}

impl PgRegistry {
    /// Uses the database of `pool` (whose opening applied the migrations).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|err| Error::Storage(format!("the stored {what} is unreadable: {err}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|err| Error::Internal(format!("cannot encode: {err}")))
}

fn version_of(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

fn set_from_row(row: &Row) -> Result<ParameterSet> {
    let created: Millis = row.get(6);
    Ok(ParameterSet {
        name: row.get(0),
        scope: scope_of(row.get(1)),
        version: version_of(row.get(2)),
        values: decode("parameter values", row.get(3))?,
        author: row.get(4),
        note: row.get(5),
        created_at: rfc3339(created),
        created_millis: created,
    })
}

fn result_from_row(row: &Row) -> Result<ResultRecord> {
    Ok(ResultRecord {
        set: row.get(0),
        scope: scope_of(row.get(1)),
        version: version_of(row.get(2)),
        material_id: row.get(3),
        metrics: decode("metrics", row.get(4))?,
        recorded_at: rfc3339(row.get(5)),
    })
}

fn get_in(
    client: &mut impl GenericClient,
    name: &str,
    scope: &str,
    version: Option<u32>,
) -> Result<Option<ParameterSet>> {
    let row = match version {
        Some(v) => client.query_opt(
            &format!(
                "SELECT {SET_COLUMNS} FROM parameter_sets
                 WHERE name = $1 AND scope = $2 AND version = $3"
            ),
            &[&name, &scope, &(v.min(i32::MAX as u32) as i32)],
        ),
        None => client.query_opt(
            &format!(
                "SELECT {SET_COLUMNS} FROM parameter_sets WHERE name = $1 AND scope = $2
                 ORDER BY version DESC LIMIT 1"
            ),
            &[&name, &scope],
        ),
    }
    .map_err(|err| pg_error("cannot read a parameter set", err))?;
    row.as_ref().map(set_from_row).transpose()
}

fn schema_in(client: &mut impl GenericClient) -> Result<Schema> {
    let rows = client
        .query("SELECT name, spec FROM parameter_schema ORDER BY name", &[])
        .map_err(|err| pg_error("cannot read the parameter schema", err))?;
    let mut schema = Schema::default();
    for row in rows {
        let name: String = row.get(0);
        let spec: ParamSpec = decode(&format!("schema of {name}"), row.get(1))?;
        schema.parameters.insert(name, spec);
    }
    Ok(schema)
}

fn insert_version(
    tx: &mut Transaction<'_>,
    name: &str,
    scope: &str,
    version: u32,
    new: &NewVersion,
) -> Result<i64> {
    let row = tx
        .query_one(
            "INSERT INTO parameter_sets (name, scope, version, vals, author, note, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING pk",
            &[
                &name,
                &scope,
                &(version as i32),
                &encode(&new.values)?,
                &new.author,
                &new.note,
                &new.created_millis,
            ],
        )
        .map_err(|err| pg_error(&format!("cannot write version {version} of `{name}`"), err))?;
    Ok(row.get(0))
}

impl RegistryStorage for PgRegistry {
    fn schema(&self) -> Result<Schema> {
        schema_in(&mut *self.pool.get()?)
    }

    fn apply_schema(
        &self,
        schema: &Schema,
        now: Millis,
        check: &dyn Fn(&Schema, &[ParameterSet]) -> Result<()>,
    ) -> Result<()> {
        let mut connection = self.pool.get()?;
        let mut tx = connection
            .transaction()
            .map_err(|err| pg_error("cannot start a transaction", err))?;
        // Writers of sets take this lock in shared mode, so no set changes between the
        // check and the commit.
        tx.execute("LOCK TABLE parameter_schema IN EXCLUSIVE MODE", &[])
            .map_err(|err| pg_error("cannot lock the parameter schema", err))?;
        let mut merged = schema_in(&mut tx)?;
        merged.parameters.extend(schema.parameters.clone());
        let rows = tx
            .query(
                &format!(
                    "SELECT DISTINCT ON (name, scope) {SET_COLUMNS} FROM parameter_sets
                     ORDER BY name, scope, version DESC"
                ),
                &[],
            )
            .map_err(|err| pg_error("cannot read the parameter sets", err))?;
        let current = rows.iter().map(set_from_row).collect::<Result<Vec<_>>>()?;
        check(&merged, &current)?;
        for (name, spec) in &schema.parameters {
            tx.execute(
                "INSERT INTO parameter_schema (name, spec, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
                &[name, &encode(spec)?, &now],
            )
            .map_err(|err| pg_error("cannot write the parameter schema", err))?;
        }
        tx.commit()
            .map_err(|err| pg_error("cannot commit the parameter schema", err))
    }

    fn list(&self) -> Result<Vec<SetSummary>> {
        let rows = self
            .pool
            .get()?
            .query(
                "SELECT name, scope, MAX(version), COUNT(*),
                        (ARRAY_AGG(created_at ORDER BY version DESC))[1]
                 FROM parameter_sets GROUP BY name, scope ORDER BY name, scope",
                &[],
            )
            .map_err(|err| pg_error("cannot list parameter sets", err))?;
        Ok(rows
            .iter()
            .map(|row| SetSummary {
                name: row.get(0),
                scope: scope_of(row.get(1)),
                version: version_of(row.get(2)),
                versions: u32::try_from(row.get::<_, i64>(3)).unwrap_or(u32::MAX),
                updated_at: rfc3339(row.get(4)),
            })
            .collect())
    }

    fn get(&self, name: &str, scope: &str, version: Option<u32>) -> Result<Option<ParameterSet>> {
        get_in(&mut *self.pool.get()?, name, scope, version)
    }

    fn history(&self, name: &str, scope: &str) -> Result<Vec<ParameterSet>> {
        let rows = self
            .pool
            .get()?
            .query(
                &format!(
                    "SELECT {SET_COLUMNS} FROM parameter_sets WHERE name = $1 AND scope = $2
                     ORDER BY version"
                ),
                &[&name, &scope],
            )
            .map_err(|err| pg_error("cannot read the history", err))?;
        rows.iter().map(set_from_row).collect()
    }

    fn write(
        &self,
        name: &str,
        scope: &str,
        expect: Option<u32>,
        build: BuildVersion<'_>,
    ) -> Result<ParameterSet> {
        let mut connection = self.pool.get()?;
        let mut tx = connection
            .transaction()
            .map_err(|err| pg_error("cannot start a transaction", err))?;
        // One writer per set at a time, across every process that shares the database.
        // The shared schema lock keeps a schema change from slipping in between.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))",
            &[&name, &scope],
        )
        .map_err(|err| pg_error("cannot lock the parameter set", err))?;
        tx.execute("LOCK TABLE parameter_schema IN ROW SHARE MODE", &[])
            .map_err(|err| pg_error("cannot lock the parameter schema", err))?;
        let current = get_in(&mut tx, name, scope, None)?;
        let current_version = current.as_ref().map_or(0, |c| c.version);
        super::check_expected(name, scope, expect, current_version)?;
        let base = match (&current, scope.is_empty()) {
            (None, false) => get_in(&mut tx, name, "", None)?,
            _ => None,
        };
        let new = build(current.as_ref(), base.as_ref())?;
        let version = current_version + 1;
        insert_version(&mut tx, name, scope, version, &new)?;
        tx.commit()
            .map_err(|err| pg_error("cannot commit a parameter set", err))?;
        Ok(new.into_set(name, scope, version))
    }

    fn record(&self, results: &[NewResult], now: Millis) -> Result<()> {
        let mut connection = self.pool.get()?;
        let mut tx = connection
            .transaction()
            .map_err(|err| pg_error("cannot start a transaction", err))?;
        let find = tx
            .prepare(
                "SELECT pk FROM parameter_sets WHERE name = $1 AND scope = $2 AND version = $3",
            )
            .map_err(|err| pg_error("cannot read a parameter set", err))?;
        let mut keys: BTreeMap<&VersionRef, i64> = BTreeMap::new();
        let mut set_keys = Vec::with_capacity(results.len());
        for result in results {
            let set = &result.set;
            let pk = match keys.get(set) {
                Some(pk) => *pk,
                None => {
                    let scope = set.scope.as_deref().unwrap_or("");
                    let version = set.version.min(i32::MAX as u32) as i32;
                    let pk: i64 = tx
                        .query_opt(&find, &[&set.name, &scope, &version])
                        .map_err(|err| pg_error("cannot read a parameter set", err))?
                        .ok_or_else(|| super::version_not_found(set))?
                        .get(0);
                    keys.insert(set, pk);
                    pk
                }
            };
            set_keys.push(pk);
        }
        // One statement per batch of rows: the arrays are unnested server-side.
        let materials: Vec<&str> = results.iter().map(|r| r.material_id.as_str()).collect();
        let metrics: Vec<String> = results
            .iter()
            .map(|r| encode(&r.metrics))
            .collect::<Result<_>>()?;
        tx.execute(
            "INSERT INTO parameter_results (set_pk, material_id, metrics, recorded_at)
             SELECT s, m, j, $4 FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[]) AS t (s, m, j)",
            &[&set_keys, &materials, &metrics, &now],
        )
        .map_err(|err| pg_error("cannot record results", err))?;
        tx.commit()
            .map_err(|err| pg_error("cannot commit results", err))
    }

    fn results_for(&self, material_ids: &[String]) -> Result<Vec<ResultRecord>> {
        let rows = self
            .pool
            .get()?
            .query(
                &format!("{RESULT_SELECT} WHERE r.material_id = ANY($1) ORDER BY r.pk"),
                &[&material_ids],
            )
            .map_err(|err| pg_error("cannot read results", err))?;
        rows.iter().map(result_from_row).collect()
    }

    fn materials_with_results(&self) -> Result<Vec<String>> {
        let rows = self
            .pool
            .get()?
            .query(
                "SELECT DISTINCT material_id FROM parameter_results ORDER BY 1",
                &[],
            )
            .map_err(|err| pg_error("cannot read results", err))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn purge(&self, before: Millis) -> Result<Vec<VersionRef>> {
        let rows = self
            .pool
            .get()?
            .query(
                "DELETE FROM parameter_sets AS s
                 WHERE created_at < $1
                   AND version < (SELECT MAX(version) FROM parameter_sets c
                                  WHERE c.name = s.name AND c.scope = s.scope)
                   AND NOT EXISTS (SELECT 1 FROM parameter_results r WHERE r.set_pk = s.pk)
                 RETURNING name, scope, version",
                &[&before],
            )
            .map_err(|err| pg_error("cannot purge the history", err))?;
        let mut purged: Vec<VersionRef> = rows
            .iter()
            .map(|row| VersionRef {
                name: row.get(0),
                scope: scope_of(row.get(1)),
                version: version_of(row.get(2)),
            })
            .collect();
        purged.sort();
        Ok(purged)
    }

    fn dump(&self) -> Result<RegistryDump> {
        let mut connection = self.pool.get()?;
        let mut tx = connection
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(|err| pg_error("cannot start a transaction", err))?;
        let schema = schema_in(&mut tx)?;
        let rows = tx
            .query(
                &format!("SELECT {SET_COLUMNS} FROM parameter_sets ORDER BY name, scope, version"),
                &[],
            )
            .map_err(|err| pg_error("cannot read the parameter sets", err))?;
        let versions = rows.iter().map(set_from_row).collect::<Result<Vec<_>>>()?;
        let rows = tx
            .query(&format!("{RESULT_SELECT} ORDER BY r.pk"), &[])
            .map_err(|err| pg_error("cannot read results", err))?;
        let results = rows
            .iter()
            .map(|row| Ok((result_from_row(row)?, row.get::<_, Millis>(5))))
            .collect::<Result<Vec<_>>>()?;
        Ok(RegistryDump {
            schema,
            versions,
            results,
        })
    }

    fn load(&self, dump: &RegistryDump) -> Result<()> {
        let mut connection = self.pool.get()?;
        let mut tx = connection
            .transaction()
            .map_err(|err| pg_error("cannot start a transaction", err))?;
        tx.execute("LOCK TABLE parameter_schema IN EXCLUSIVE MODE", &[])
            .map_err(|err| pg_error("cannot lock the parameter schema", err))?;
        let row = tx
            .query_one(
                "SELECT (SELECT COUNT(*) FROM parameter_sets WHERE version > 1),
                        (SELECT COUNT(*) FROM parameter_results)",
                &[],
            )
            .map_err(|err| pg_error("cannot read the registry", err))?;
        super::check_loadable(row.get(0), row.get(1))?;
        tx.batch_execute("DELETE FROM parameter_sets; DELETE FROM parameter_schema;")
            .map_err(|err| pg_error("cannot clear the registry", err))?;
        let now = crate::db::now_millis();
        for (name, spec) in &dump.schema.parameters {
            tx.execute(
                "INSERT INTO parameter_schema (name, spec, updated_at) VALUES ($1, $2, $3)",
                &[name, &encode(spec)?, &now],
            )
            .map_err(|err| pg_error("cannot write the parameter schema", err))?;
        }
        let mut keys = CopiedKeys::new();
        for set in &dump.versions {
            let new = set.to_new_version();
            let scope = set.scope.as_deref().unwrap_or("");
            let pk = insert_version(&mut tx, &set.name, scope, set.version, &new)?;
            keys.insert((set.name.clone(), scope.to_owned(), set.version), pk);
        }
        for (result, recorded) in &dump.results {
            let pk = copied_key(&keys, result)?;
            tx.execute(
                "INSERT INTO parameter_results (set_pk, material_id, metrics, recorded_at)
                 VALUES ($1, $2, $3, $4)",
                &[
                    &pk,
                    &result.material_id,
                    &encode(&result.metrics)?,
                    recorded,
                ],
            )
            .map_err(|err| pg_error("cannot copy a result", err))?;
        }
        tx.commit()
            .map_err(|err| pg_error("cannot commit the copy", err))
    }
}
