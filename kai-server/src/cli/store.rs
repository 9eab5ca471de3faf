//! `kai store migrate`: copies an embedded store into PostgreSQL.

use clap::{Args, Subcommand};
use kai_core::Error;
use kai_core::catalog::{Catalog, CopyReport, StoreOptions, copy_to_postgres};
use kai_core::db::{DatabaseUrl, PgPool, StorageConfig};
use kai_core::registry::{Registry, RegistrySettings};
use serde::Serialize;

use super::catalog::StoreArg;
use super::{Cli, emit, print_json};

/// `kai store` subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the catalog (records, history, vectors) and the parameter registry of an
    /// embedded store into an empty PostgreSQL database. Image files stay in the store
    /// folder; afterwards set KAI_DATABASE_URL to the same URL to use the copy.
    Migrate(MigrateArgs),
}

/// Arguments of `kai store migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The PostgreSQL database, postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE.
    #[arg(long, value_name = "URL")]
    to: String,
    #[command(flatten)]
    store: StoreArg,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The JSON shape of `kai store migrate --json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MigrateReport {
    database: String,
    catalog: CopyReport,
    parameter_set_versions: usize,
    parameter_results: usize,
}

/// Runs a `kai store` command.
pub fn run(cli: &Cli, command: &StoreCommand) -> Result<(), Error> {
    let StoreCommand::Migrate(args) = command;
    let url = DatabaseUrl::parse("--to", &args.to)?;
    let root = StoreOptions::default_root(args.store.path());
    if !root.join("kai.db").is_file() {
        return Err(Error::NotFound {
            what: "embedded store",
            name: root.display().to_string(),
            hint: " (give the folder that contains kai.db with --store)".into(),
        });
    }
    // The source is always the embedded store, even when KAI_DATABASE_URL is set.
    let catalog = Catalog::open(StoreOptions::new(&root, cli.store(), cli.device()?))?;
    let pool = PgPool::open(&url)?;
    let settings = RegistrySettings::from_env()?;
    let source = Registry::open(&root, &StorageConfig::default(), settings.clone())?;
    let postgres = StorageConfig {
        catalog: Some(url.clone()),
        registry: Some(url.clone()),
    };
    let target = Registry::open(&root, &postgres, settings)?;
    // The registry goes first: a rerun after a failed catalog copy finds the registry
    // already copied and skips it, where the catalog copy rejects a non-empty target.
    let registry = source.copy_to(&target)?;
    let catalog = copy_to_postgres(&catalog, &pool)?;
    let report = MigrateReport {
        database: url.to_string(),
        catalog,
        parameter_set_versions: registry.versions.len(),
        parameter_results: registry.results.len(),
    };
    if args.json {
        return print_json(&report);
    }
    emit(format!(
        "copied {} materials ({} images, {} history entries, {} text and {} image vectors), \
         {} parameter set versions and {} results into {}",
        report.catalog.materials,
        report.catalog.images,
        report.catalog.versions,
        report.catalog.text_vectors,
        report.catalog.image_vectors,
        report.parameter_set_versions,
        report.parameter_results,
        report.database
    ))?;
    emit(format!(
        "set KAI_DATABASE_URL to this URL and keep --store {} for the image files",
        root.display()
    ))
}
