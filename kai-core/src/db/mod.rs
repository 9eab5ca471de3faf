//! Database access for the catalog and the parameter registry: the store folder's SQLite
//! file by default, or a PostgreSQL database with pgvector.
//!
//! Both backends apply the same numbered SQL migrations (one dialect each, under
//! `kai-core/migrations/`) in order, each in its own transaction, and record each by name
//! in `schema_migrations`.

mod config;
pub(crate) mod migrations;
pub mod postgres;

pub use config::{Backend, DatabaseUrl, StorageConfig};
pub use migrations::{
    Migration, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, apply_postgres, apply_sqlite,
};
pub use postgres::PgPool;

/// Milliseconds since the Unix epoch, the time unit stored by both backends.
pub type Millis = i64;

/// Returns the current time in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// Formats `millis` as RFC 3339 in UTC with milliseconds, the format of every timestamp
/// kai prints.
pub fn rfc3339(millis: Millis) -> String {
    let seconds = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// Converts days since 1970-01-01 into a proleptic Gregorian date (Howard Hinnant's
/// algorithm), so timestamps need no date crate.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_796_342_400_000), "2026-12-04T00:00:00.000Z");
    }
}
