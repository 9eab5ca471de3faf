//! A pool of PostgreSQL connections with kai's schema applied.

use std::time::Duration;

use postgres::NoTls;
use postgres::error::SqlState;
use r2d2_postgres::PostgresConnectionManager;

use super::config::DatabaseUrl;
use super::migrations::{POSTGRES_MIGRATIONS, apply_postgres};
use crate::error::{Error, Result};

/// A pooled connection.
pub type PgConnection = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// Maximum connections per pool, unless `KAI_DATABASE_POOL_SIZE` sets another number.
const DEFAULT_POOL_SIZE: u32 = 8;

/// Timeout for a free connection from the pool, and for connecting to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A pool of connections to one PostgreSQL database, cheap to clone and shared by
/// threads.
#[derive(Clone)]
pub struct PgPool {
    pool: r2d2::Pool<PostgresConnectionManager<NoTls>>,
    url: DatabaseUrl,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool").field("url", &self.url).finish()
    }
}

impl PgPool {
    /// Connects to `url` and applies kai's pending migrations (creating the `vector`
    /// extension on first use).
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] naming the database (without its password) when it is
    /// unreachable or a migration fails, and [`Error::InvalidInput`] when
    /// `KAI_DATABASE_POOL_SIZE` is not a positive number.
    pub fn open(url: &DatabaseUrl) -> Result<Self> {
        let size = match std::env::var("KAI_DATABASE_POOL_SIZE") {
            Ok(value) if !value.trim().is_empty() => value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    Error::invalid(
                        "KAI_DATABASE_POOL_SIZE",
                        format!("must be a whole number from 1 to 1000, got `{value}`"),
                    )
                })?,
            _ => DEFAULT_POOL_SIZE,
        };
        Self::with_size(url, size)
    }

    /// Connects with at most `size` connections open at once.
    ///
    /// # Errors
    ///
    /// As [`PgPool::open`].
    pub fn with_size(url: &DatabaseUrl, size: u32) -> Result<Self> {
        let mut config: postgres::Config = url
            .expose()
            .parse()
            .map_err(|err| Error::invalid("database URL", format!("{url}: {err}")))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        if config.get_application_name().is_none() {
            config.application_name("kai");
        }
        // A direct first connection reports an unreachable server at once, where the pool
        // would retry until its timeout. It applies the migrations and is then closed.
        let mut first = config.connect(NoTls).map_err(|err| {
            Error::Storage(format!(
                "cannot connect to PostgreSQL at {url}: {}",
                detail(&err)
            ))
        })?;
        apply_postgres(&mut first, POSTGRES_MIGRATIONS)?;
        drop(first);
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(size)
            .min_idle(Some(0))
            .connection_timeout(CONNECT_TIMEOUT)
            .build_unchecked(manager);
        Ok(Self {
            pool,
            url: url.clone(),
        })
    }

    /// Takes a connection from the pool, opening one when none is free.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Storage`] naming the database when no connection can be had.
    pub fn get(&self) -> Result<PgConnection> {
        self.pool.get().map_err(|err| {
            Error::Storage(format!(
                "cannot connect to PostgreSQL at {}: {err}",
                self.url
            ))
        })
    }

    /// Returns the database URL (its `Display` hides the password).
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }
}

/// Maps a PostgreSQL error to kai's error: unique violations and serialization failures
/// become [`Error::Conflict`], everything else [`Error::Storage`].
pub(crate) fn pg_error(action: &str, err: postgres::Error) -> Error {
    let detail = detail(&err);
    match err.code() {
        Some(code) if is_conflict(code) => Error::Conflict(format!("{action}: {detail}")),
        _ => Error::Storage(format!("{action}: {detail}")),
    }
}

/// Returns the server's message for database errors, and the error with its causes
/// (such as "connection refused") for the others, whose own text is only a category.
fn detail(err: &postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        return db.message().to_owned();
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn is_conflict(code: &SqlState) -> bool {
    [
        SqlState::UNIQUE_VIOLATION,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
    ]
    .contains(code)
}
