//! Schema migrations: numbered SQL files per dialect, applied in order, each in its own
//! transaction, and recorded by name in `schema_migrations`.

use rusqlite::TransactionBehavior;

use crate::error::{Error, Result};

/// One schema change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// The name recorded in `schema_migrations`; the same name in both dialects.
    pub name: &'static str,
    /// The SQL script.
    pub sql: &'static str,
}

macro_rules! migrations {
    ($dialect:literal: $($name:literal),* $(,)?) => {
        &[$(Migration {
            name: $name,
            sql: include_str!(concat!("../../migrations/", $dialect, "/", $name, ".sql")),
        }),*]
    };
}

/// The SQLite migrations, in the order they apply.
pub const SQLITE_MIGRATIONS: &[Migration] =
    migrations!("sqlite": "0001_catalog", "0002_registry", "0003_recon", "0004_recon_model");

/// The PostgreSQL migrations, in the order they apply.
pub const POSTGRES_MIGRATIONS: &[Migration] =
    migrations!("postgres": "0001_catalog", "0002_registry", "0003_recon", "0004_recon_model");

/// An arbitrary constant that identifies kai's migration lock among PostgreSQL's
/// advisory locks.
const POSTGRES_MIGRATION_LOCK: i64 = 0x6b61_695f_6d69_6772;

/// Applies the pending `migrations` to a SQLite database; returns the names applied.
///
/// Each migration runs in an immediate transaction, so a concurrent process waits instead
/// of applying it twice, and a failing migration leaves the database as it was before it.
///
/// # Errors
///
/// Returns [`Error::Storage`] naming the migration that failed.
pub fn apply_sqlite(
    connection: &mut rusqlite::Connection,
    migrations: &[Migration],
) -> Result<Vec<&'static str>> {
    let sqlite = |action: &str, err: rusqlite::Error| Error::Storage(format!("{action}: {err}"));
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .map_err(|err| sqlite("cannot create the migrations table", err))?;
    let mut applied = Vec::new();
    for migration in migrations {
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|err| sqlite("cannot start a migration", err))?;
        let done: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = ?1)",
                [migration.name],
                |row| row.get(0),
            )
            .map_err(|err| sqlite("cannot read the migrations table", err))?;
        if done {
            continue;
        }
        tx.execute_batch(migration.sql)
            .map_err(|err| sqlite(&format!("migration {} failed", migration.name), err))?;
        tx.execute(
            "INSERT INTO schema_migrations (name, applied_at)
             VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            [migration.name],
        )
        .map_err(|err| sqlite("cannot record a migration", err))?;
        tx.commit()
            .map_err(|err| sqlite(&format!("cannot commit migration {}", migration.name), err))?;
        applied.push(migration.name);
    }
    Ok(applied)
}

/// Applies the pending `migrations` to a PostgreSQL database; returns the names applied.
///
/// Each migration runs in one transaction (PostgreSQL's DDL is transactional) under an
/// advisory lock, so processes starting together apply each migration once, and a failing
/// migration leaves the database as it was before it.
///
/// # Errors
///
/// Returns [`Error::Storage`] naming the migration that failed.
pub fn apply_postgres(
    client: &mut postgres::Client,
    migrations: &[Migration],
) -> Result<Vec<&'static str>> {
    use super::postgres::pg_error;
    let mut applied = Vec::new();
    for migration in migrations {
        let mut tx = client
            .transaction()
            .map_err(|err| pg_error("cannot start a migration", err))?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&POSTGRES_MIGRATION_LOCK],
        )
        .map_err(|err| pg_error("cannot lock the migrations", err))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .map_err(|err| pg_error("cannot create the migrations table", err))?;
        let done: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = $1)",
                &[&migration.name],
            )
            .map_err(|err| pg_error("cannot read the migrations table", err))?
            .get(0);
        if done {
            continue;
        }
        tx.batch_execute(migration.sql)
            .map_err(|err| pg_error(&format!("migration {} failed", migration.name), err))?;
        tx.execute(
            "INSERT INTO schema_migrations (name) VALUES ($1)",
            &[&migration.name],
        )
        .map_err(|err| pg_error("cannot record a migration", err))?;
        tx.commit()
            .map_err(|err| pg_error(&format!("cannot commit migration {}", migration.name), err))?;
        applied.push(migration.name);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(connection: &rusqlite::Connection) -> Vec<String> {
        let mut statement = connection
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn sqlite_migrations_apply_once() {
        let mut connection = rusqlite::Connection::open_in_memory().unwrap();
        let first = apply_sqlite(&mut connection, SQLITE_MIGRATIONS).unwrap();
        assert_eq!(
            first,
            [
                "0001_catalog",
                "0002_registry",
                "0003_recon",
                "0004_recon_model"
            ]
        );
        let again = apply_sqlite(&mut connection, SQLITE_MIGRATIONS).unwrap();
        assert!(again.is_empty());
    }

    #[test]
    fn failing_sqlite_migration_changes_nothing() {
        let mut connection = rusqlite::Connection::open_in_memory().unwrap();
        apply_sqlite(&mut connection, SQLITE_MIGRATIONS).unwrap();
        let before = tables(&connection);
        let broken = [Migration {
            name: "0099_broken",
            sql: "CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);",
        }];
        let err = apply_sqlite(&mut connection, &broken).unwrap_err();
        assert!(
            err.to_string().contains("migration 0099_broken failed"),
            "{err}"
        );
        assert_eq!(tables(&connection), before);
        let recorded: i64 = connection
            .query_row(
                "SELECT COUNT(*) FROM schema_migrations WHERE name = '0099_broken'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(recorded, 0);
    }
}
