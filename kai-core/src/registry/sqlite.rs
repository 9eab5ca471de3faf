//! The registry in the store folder's SQLite file.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::schema::{ParamSpec, Schema};
use super::set::{
    CopiedKeys, NewResult, NewVersion, ParameterSet, RegistryDump, ResultRecord, SetSummary,
    VersionRef, copied_key, scope_of,
};
use super::storage::{BuildVersion, RegistryStorage};
use crate::db::{Millis, SQLITE_MIGRATIONS, migrations::apply_sqlite, rfc3339};
use crate::error::{Error, Result};

/// SQLite limits the number of `?` parameters in one statement; id lists are sent in
/// chunks of this size.
const ID_CHUNK: usize = 500;

const SET_COLUMNS: &str = "name, scope, version, vals, author, note, created_at";

/// A registry stored in a SQLite database file.
#[derive(Debug)]
pub struct SqliteRegistry {
    connection: Mutex<Connection>,
}

fn sqlite_error(action: &str, err: rusqlite::Error) -> Error {
    Error::Storage(format!("{action}: {err}"))
}

impl SqliteRegistry {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] when the file cannot be opened or migrated.
    pub fn open(path: &Path) -> Result<Self> {
        let connection = Connection::open(path)
            .map_err(|err| sqlite_error(&format!("cannot open {}", path.display()), err))?;
        Self::with_connection(connection)
    }

    /// Opens a private registry in memory.
    ///
    /// # Errors
    ///
    /// As [`SqliteRegistry::open`].
    pub fn in_memory() -> Result<Self> {
        let connection = Connection::open_in_memory()
            .map_err(|err| sqlite_error("cannot open an in-memory database", err))?;
        Self::with_connection(connection)
    }

    fn with_connection(mut connection: Connection) -> Result<Self> {
        // Writers from other processes wait for each other's transactions (busy timeout)
        // instead of failing at once; WAL lets readers go on meanwhile.
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;",
            )
            .map_err(|err| sqlite_error("cannot configure the database", err))?;
        apply_sqlite(&mut connection, SQLITE_MIGRATIONS)?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half-written state behind (every
        // change is one transaction), so a poisoned lock is still usable.
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn set_from_row(row: &Row<'_>) -> rusqlite::Result<ParameterSet> {
    let values: String = row.get(3)?;
    let created: Millis = row.get(6)?;
    Ok(ParameterSet {
        name: row.get(0)?,
        scope: scope_of(row.get(1)?),
        version: row.get(2)?,
        values: serde_json::from_str(&values).map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, err.into())
        })?,
        author: row.get(4)?,
        note: row.get(5)?,
        created_at: rfc3339(created),
        created_millis: created,
    })
}

fn get_in(
    connection: &Connection,
    name: &str,
    scope: &str,
    version: Option<u32>,
) -> Result<Option<ParameterSet>> {
    let sql = match version {
        Some(_) => format!(
            "SELECT {SET_COLUMNS} FROM parameter_sets WHERE name = ?1 AND scope = ?2 AND version = ?3"
        ),
        None => format!(
            "SELECT {SET_COLUMNS} FROM parameter_sets WHERE name = ?1 AND scope = ?2
             ORDER BY version DESC LIMIT 1"
        ),
    };
    let mut statement = connection
        .prepare_cached(&sql)
        .map_err(|err| sqlite_error("cannot read a parameter set", err))?;
    let row = match version {
        Some(v) => statement.query_row(params![name, scope, v], set_from_row),
        None => statement.query_row(params![name, scope], set_from_row),
    };
    row.optional()
        .map_err(|err| sqlite_error("cannot read a parameter set", err))
}

fn schema_in(connection: &Connection) -> Result<Schema> {
    let mut statement = connection
        .prepare_cached("SELECT name, spec FROM parameter_schema ORDER BY name")
        .map_err(|err| sqlite_error("cannot read the parameter schema", err))?;
    let rows: Vec<(String, String)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .and_then(Iterator::collect)
        .map_err(|err| sqlite_error("cannot read the parameter schema", err))?;
    let mut schema = Schema::default();
    for (name, spec) in rows {
        let spec: ParamSpec = serde_json::from_str(&spec).map_err(|err| {
            Error::Storage(format!("the stored schema of {name} is unreadable: {err}"))
        })?;
        schema.parameters.insert(name, spec);
    }
    Ok(schema)
}

fn current_sets(connection: &Connection) -> Result<Vec<ParameterSet>> {
    let mut statement = connection
        .prepare_cached(&format!(
            "SELECT {SET_COLUMNS} FROM parameter_sets s WHERE version =
                 (SELECT MAX(version) FROM parameter_sets c WHERE c.name = s.name AND c.scope = s.scope)
             ORDER BY name, scope"
        ))
        .map_err(|err| sqlite_error("cannot read the parameter sets", err))?;
    statement
        .query_map([], set_from_row)
        .and_then(Iterator::collect)
        .map_err(|err| sqlite_error("cannot read the parameter sets", err))
}

fn insert_version(
    tx: &Transaction<'_>,
    name: &str,
    scope: &str,
    version: u32,
    new: &NewVersion,
) -> Result<i64> {
    let values = serde_json::to_string(&new.values)
        .map_err(|err| Error::Internal(format!("cannot encode values: {err}")))?;
    tx.execute(
        "INSERT INTO parameter_sets (name, scope, version, vals, author, note, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            name,
            scope,
            version,
            values,
            new.author,
            new.note,
            new.created_millis
        ],
    )
    .map_err(|err| match err.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => Error::Conflict(format!(
            "version {version} of parameter set `{name}` was written by another writer; \
             read the set again and retry"
        )),
        _ => sqlite_error("cannot write a parameter set", err),
    })?;
    Ok(tx.last_insert_rowid())
}

fn result_from_row(row: &Row<'_>) -> rusqlite::Result<ResultRecord> {
    let metrics: String = row.get(4)?;
    Ok(ResultRecord {
        set: row.get(0)?,
        scope: scope_of(row.get(1)?),
        version: row.get(2)?,
        material_id: row.get(3)?,
        metrics: serde_json::from_str(&metrics).map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, err.into())
        })?,
        recorded_at: rfc3339(row.get(5)?),
    })
}

const RESULT_SELECT: &str =
    "SELECT s.name, s.scope, s.version, r.material_id, r.metrics, r.recorded_at
     FROM parameter_results r JOIN parameter_sets s ON s.pk = r.set_pk";

impl RegistryStorage for SqliteRegistry {
    fn schema(&self) -> Result<Schema> {
        schema_in(&self.lock())
    }

    fn apply_schema(
        &self,
        schema: &Schema,
        now: Millis,
        check: &dyn Fn(&Schema, &[ParameterSet]) -> Result<()>,
    ) -> Result<()> {
        let mut connection = self.lock();
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|err| sqlite_error("cannot start a transaction", err))?;
        let mut merged = schema_in(&tx)?;
        merged.parameters.extend(schema.parameters.clone());
        check(&merged, &current_sets(&tx)?)?;
        for (name, spec) in &schema.parameters {
            let spec = serde_json::to_string(spec)
                .map_err(|err| Error::Internal(format!("cannot encode a spec: {err}")))?;
            tx.execute(
                "INSERT INTO parameter_schema (name, spec, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
                params![name, spec, now],
            )
            .map_err(|err| sqlite_error("cannot write the parameter schema", err))?;
        }
        tx.commit()
            .map_err(|err| sqlite_error("cannot commit the parameter schema", err))
    }

    fn list(&self) -> Result<Vec<SetSummary>> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(
                "SELECT s.name, s.scope, s.version, c.n, s.created_at FROM parameter_sets s
                 JOIN (SELECT name, scope, MAX(version) AS v, COUNT(*) AS n
                       FROM parameter_sets GROUP BY name, scope) c
                   ON s.name = c.name AND s.scope = c.scope AND s.version = c.v
                 ORDER BY s.name, s.scope",
            )
            .map_err(|err| sqlite_error("cannot list parameter sets", err))?;
        statement
            .query_map([], |row| {
                Ok(SetSummary {
                    name: row.get(0)?,
                    scope: scope_of(row.get(1)?),
                    version: row.get(2)?,
                    versions: row.get(3)?,
                    updated_at: rfc3339(row.get(4)?),
                })
            })
            .and_then(Iterator::collect)
            .map_err(|err| sqlite_error("cannot list parameter sets", err))
    }

    fn get(&self, name: &str, scope: &str, version: Option<u32>) -> Result<Option<ParameterSet>> {
        get_in(&self.lock(), name, scope, version)
    }

    fn history(&self, name: &str, scope: &str) -> Result<Vec<ParameterSet>> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached(&format!(
                "SELECT {SET_COLUMNS} FROM parameter_sets WHERE name = ?1 AND scope = ?2
                 ORDER BY version"
            ))
            .map_err(|err| sqlite_error("cannot read the history", err))?;
        statement
            .query_map(params![name, scope], set_from_row)
            .and_then(Iterator::collect)
            .map_err(|err| sqlite_error("cannot read the history", err))
    }

    fn write(
        &self,
        name: &str,
        scope: &str,
        expect: Option<u32>,
        build: BuildVersion<'_>,
    ) -> Result<ParameterSet> {
        let mut connection = self.lock();
        // An immediate transaction takes the write lock before reading, so the version
        // read is still current when the new one is inserted.
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|err| sqlite_error("cannot start a transaction", err))?;
        let current = get_in(&tx, name, scope, None)?;
        let current_version = current.as_ref().map_or(0, |c| c.version);
        super::check_expected(name, scope, expect, current_version)?;
        let base = match (&current, scope.is_empty()) {
            (None, false) => get_in(&tx, name, "", None)?,
            _ => None,
        };
        let new = build(current.as_ref(), base.as_ref())?;
        let version = current_version + 1;
        insert_version(&tx, name, scope, version, &new)?;
        tx.commit()
            .map_err(|err| sqlite_error("cannot commit a parameter set", err))?;
        Ok(new.into_set(name, scope, version))
    }

    fn record(&self, results: &[NewResult], now: Millis) -> Result<()> {
        let mut connection = self.lock();
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|err| sqlite_error("cannot start a transaction", err))?;
        {
            let mut find = tx
                .prepare_cached(
                    "SELECT pk FROM parameter_sets WHERE name = ?1 AND scope = ?2 AND version = ?3",
                )
                .map_err(|err| sqlite_error("cannot read a parameter set", err))?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO parameter_results (set_pk, material_id, metrics, recorded_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(|err| sqlite_error("cannot record a result", err))?;
            let mut keys: BTreeMap<&VersionRef, i64> = BTreeMap::new();
            for result in results {
                let pk = match keys.get(&result.set) {
                    Some(pk) => *pk,
                    None => {
                        let set = &result.set;
                        let scope = set.scope.as_deref().unwrap_or("");
                        let pk: i64 = find
                            .query_row(params![set.name, scope, set.version], |row| row.get(0))
                            .optional()
                            .map_err(|err| sqlite_error("cannot read a parameter set", err))?
                            .ok_or_else(|| super::version_not_found(set))?;
                        keys.insert(set, pk);
                        pk
                    }
                };
                let metrics = serde_json::to_string(&result.metrics)
                    .map_err(|err| Error::Internal(format!("cannot encode metrics: {err}")))?;
                insert
                    .execute(params![pk, result.material_id, metrics, now])
                    .map_err(|err| sqlite_error("cannot record a result", err))?;
            }
        }
        tx.commit()
            .map_err(|err| sqlite_error("cannot commit results", err))
    }

    fn results_for(&self, material_ids: &[String]) -> Result<Vec<ResultRecord>> {
        let connection = self.lock();
        let mut results = Vec::new();
        for chunk in material_ids.chunks(ID_CHUNK) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut statement = connection
                .prepare(&format!(
                    "{RESULT_SELECT} WHERE r.material_id IN ({marks}) ORDER BY r.pk"
                ))
                .map_err(|err| sqlite_error("cannot read results", err))?;
            let rows: Vec<ResultRecord> = statement
                .query_map(rusqlite::params_from_iter(chunk), result_from_row)
                .and_then(Iterator::collect)
                .map_err(|err| sqlite_error("cannot read results", err))?;
            results.extend(rows);
        }
        Ok(results)
    }

    fn materials_with_results(&self) -> Result<Vec<String>> {
        let connection = self.lock();
        let mut statement = connection
            .prepare_cached("SELECT DISTINCT material_id FROM parameter_results ORDER BY 1")
            .map_err(|err| sqlite_error("cannot read results", err))?;
        statement
            .query_map([], |row| row.get(0))
            .and_then(Iterator::collect)
            .map_err(|err| sqlite_error("cannot read results", err))
    }

    fn purge(&self, before: Millis) -> Result<Vec<VersionRef>> {
        let mut connection = self.lock();
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|err| sqlite_error("cannot start a transaction", err))?;
        let purged: Vec<VersionRef> = {
            let mut statement = tx
                .prepare(
                    "DELETE FROM parameter_sets AS s
                     WHERE created_at < ?1
                       AND version < (SELECT MAX(version) FROM parameter_sets c
                                      WHERE c.name = s.name AND c.scope = s.scope)
                       AND NOT EXISTS (SELECT 1 FROM parameter_results r WHERE r.set_pk = s.pk)
                     RETURNING name, scope, version",
                )
                .map_err(|err| sqlite_error("cannot purge the history", err))?;
            statement
                .query_map([before], |row| {
                    Ok(VersionRef {
                        name: row.get(0)?,
                        scope: scope_of(row.get(1)?),
                        version: row.get(2)?,
                    })
                })
                .and_then(Iterator::collect)
                .map_err(|err| sqlite_error("cannot purge the history", err))?
        };
        tx.commit()
            .map_err(|err| sqlite_error("cannot commit the purge", err))?;
        let mut purged = purged;
        purged.sort();
        Ok(purged)
    }

    fn dump(&self) -> Result<RegistryDump> {
        let connection = self.lock();
        let schema = schema_in(&connection)?;
        let mut statement = connection
            .prepare(&format!(
                "SELECT {SET_COLUMNS} FROM parameter_sets ORDER BY name, scope, version"
            ))
            .map_err(|err| sqlite_error("cannot read the parameter sets", err))?;
        let versions: Vec<ParameterSet> = statement
            .query_map([], set_from_row)
            .and_then(Iterator::collect)
            .map_err(|err| sqlite_error("cannot read the parameter sets", err))?;
        let mut statement = connection
            .prepare(&format!("{RESULT_SELECT} ORDER BY r.pk"))
            .map_err(|err| sqlite_error("cannot read results", err))?;
        let results = statement
            .query_map([], |row| {
                Ok((result_from_row(row)?, row.get::<_, Millis>(5)?))
            })
            .and_then(Iterator::collect)
            .map_err(|err| sqlite_error("cannot read results", err))?;
        Ok(RegistryDump {
            schema,
            versions,
            results,
        })
    }

    fn load(&self, dump: &RegistryDump) -> Result<()> {
        let mut connection = self.lock();
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|err| sqlite_error("cannot start a transaction", err))?;
        let (changed, results): (i64, i64) = tx
            .query_row(
                "SELECT (SELECT COUNT(*) FROM parameter_sets WHERE version > 1),
                        (SELECT COUNT(*) FROM parameter_results)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(|err| sqlite_error("cannot read the registry", err))?;
        super::check_loadable(changed, results)?;
        tx.execute_batch("DELETE FROM parameter_sets; DELETE FROM parameter_schema;")
            .map_err(|err| sqlite_error("cannot clear the registry", err))?;
        for (name, spec) in &dump.schema.parameters {
            let spec = serde_json::to_string(spec)
                .map_err(|err| Error::Internal(format!("cannot encode a spec: {err}")))?;
            tx.execute(
                "INSERT INTO parameter_schema (name, spec, updated_at) VALUES (?1, ?2, ?3)",
                params![name, spec, crate::db::now_millis()],
            )
            .map_err(|err| sqlite_error("cannot write the parameter schema", err))?;
        }
        let mut keys = CopiedKeys::new();
        for set in &dump.versions {
            let new = set.to_new_version();
            let scope = set.scope.as_deref().unwrap_or("");
            let pk = insert_version(&tx, &set.name, scope, set.version, &new)?;
            keys.insert((set.name.clone(), scope.to_owned(), set.version), pk);
        }
        for (result, recorded) in &dump.results {
            let pk = copied_key(&keys, result)?;
            let metrics = serde_json::to_string(&result.metrics)
                .map_err(|err| Error::Internal(format!("cannot encode metrics: {err}")))?;
            tx.execute(
                "INSERT INTO parameter_results (set_pk, material_id, metrics, recorded_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![pk, result.material_id, metrics, recorded],
            )
            .map_err(|err| sqlite_error("cannot copy a result", err))?;
        }
        tx.commit()
            .map_err(|err| sqlite_error("cannot commit the copy", err))
    }
}
