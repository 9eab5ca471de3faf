//! Schema migrations on a real PostgreSQL server.

use kai_core::db::{Migration, POSTGRES_MIGRATIONS, apply_postgres};

use crate::common::postgres;

fn tables(client: &mut postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT table_name::TEXT FROM information_schema.tables
             WHERE table_schema = 'public' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[test]
fn postgres_migrations_apply_once_in_order() {
    let Some(db) = postgres() else { return };
    let mut client = postgres::Client::connect(db.url.expose(), postgres::NoTls).unwrap();
    let applied = apply_postgres(&mut client, POSTGRES_MIGRATIONS).unwrap();
    let names: Vec<&str> = POSTGRES_MIGRATIONS.iter().map(|m| m.name).collect();
    assert_eq!(applied, names);
    assert!(
        apply_postgres(&mut client, POSTGRES_MIGRATIONS)
            .unwrap()
            .is_empty()
    );
    let recorded: Vec<String> = client
        .query("SELECT name FROM schema_migrations ORDER BY name", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(recorded, names);
}

#[test]
fn failing_postgres_migration_changes_nothing() {
    let Some(db) = postgres() else { return };
    let mut client = postgres::Client::connect(db.url.expose(), postgres::NoTls).unwrap();
    apply_postgres(&mut client, POSTGRES_MIGRATIONS).unwrap();
    let before = tables(&mut client);
    let broken = [Migration {
        name: "0099_broken",
        sql: "CREATE TABLE half_done (x INTEGER);
              ALTER TABLE parameter_sets ADD COLUMN extra TEXT;
              INSERT INTO no_such_table VALUES (1);",
    }];
    let err = apply_postgres(&mut client, &broken).unwrap_err();
    assert!(
        err.to_string().contains("migration 0099_broken failed"),
        "{err}"
    );
    assert_eq!(tables(&mut client), before);
    let extra = client
        .query(
            "SELECT 1 FROM information_schema.columns
             WHERE table_name = 'parameter_sets' AND column_name = 'extra'",
            &[],
        )
        .unwrap();
    assert!(extra.is_empty());
    let recorded = client
        .query(
            "SELECT 1 FROM schema_migrations WHERE name = '0099_broken'",
            &[],
        )
        .unwrap();
    assert!(recorded.is_empty());
}

#[test]
fn unreachable_database_is_a_storage_error() {
    // Port 1 on the loopback interface has no server, so the connection is refused at once.
    let url =
        kai_core::db::DatabaseUrl::parse("test", "postgres://kai:secret@127.0.0.1:1/kai").unwrap();
    let err = kai_core::db::PgPool::with_size(&url, 1).unwrap_err();
    assert_eq!(err.kind(), kai_core::ErrorKind::Storage);
    let message = err.to_string();
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains("secret"), "{message}");
}
