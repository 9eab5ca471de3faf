//! `kai params …`: the parameter registry from the command line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use kai_core::Error;
use kai_core::catalog::StoreOptions;
use kai_core::db::StorageConfig;
use kai_core::registry::{
    ParameterSet, Registry, RegistrySettings, ResultInput, Schema, SuggestOptions, SuggestTarget,
    Values, WriteOptions,
};

use super::catalog::{StoreArg, open_existing};
use super::{Cli, emit, print_json};

/// Options shared by every `kai params` command.
#[derive(Debug, Args)]
pub struct Common {
    #[command(flatten)]
    store: StoreArg,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// The author, note and expected version of a write.
#[derive(Debug, Args)]
pub struct Writer {
    /// Fail with exit status 5 unless the set is at this version (0: the set must not
    /// exist yet).
    #[arg(long, value_name = "N")]
    expect_version: Option<u32>,
    /// The author of the change [default: USER, else unknown].
    #[arg(long)]
    author: Option<String>,
    /// The reason for the change.
    #[arg(long, default_value = "")]
    note: String,
}

/// `kai params` subcommands.
#[derive(Debug, Subcommand)]
#[command(
    after_help = "Exit status: 2 for an invalid value, 3 for an unknown set, version or \
material, 5 for a version conflict (--expect-version), 6 for a storage failure."
)]
pub enum ParamsCommand {
    /// List every parameter set with its current version.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Show a set's values: the current version, or --version N.
    Show {
        /// The set name, such as standard, premium or enterprise.
        name: String,
        /// The version to show [default: the current one].
        #[arg(long)]
        version: Option<u32>,
        /// The set's scope (a material type or collection).
        #[arg(long)]
        scope: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Write a new version of a set with KEY=VALUE changes.
    Set {
        /// The set name.
        name: String,
        /// Changes, such as recognition.top_k=8.
        #[arg(required = true, value_name = "KEY=VALUE")]
        assignments: Vec<String>,
        /// The set's scope (a material type or collection).
        #[arg(long)]
        scope: Option<String>,
        #[command(flatten)]
        writer: Writer,
        #[command(flatten)]
        common: Common,
    },
    /// List every kept version of a set, oldest first.
    History {
        /// The set name.
        name: String,
        /// The set's scope.
        #[arg(long)]
        scope: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Show the parameters whose values differ between two versions.
    Diff {
        /// The set name.
        name: String,
        /// The first version.
        a: u32,
        /// The second version.
        b: u32,
        /// The set's scope.
        #[arg(long)]
        scope: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Write a new version equal to an earlier one.
    Rollback {
        /// The set name.
        name: String,
        /// The version to return to.
        #[arg(long, value_name = "N")]
        to: u32,
        /// The set's scope.
        #[arg(long)]
        scope: Option<String>,
        #[command(flatten)]
        writer: Writer,
        #[command(flatten)]
        common: Common,
    },
    /// Record how a set version performed on a material.
    Record {
        /// The set name.
        name: String,
        /// The catalog material the set was used on.
        material_id: String,
        /// Metrics, such as accuracy=0.93 or score=71.5.
        #[arg(required = true, value_name = "METRIC=VALUE")]
        metrics: Vec<String>,
        /// The set version used [default: the current one].
        #[arg(long)]
        version: Option<u32>,
        /// The set's scope.
        #[arg(long)]
        scope: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Show the set version that applies to a material: its type's scope, its
    /// collection's, else the unscoped set.
    Resolve {
        /// The catalog material.
        material_id: String,
        /// The set name [default: DEFAULT_PARAMETER_SET, else standard].
        #[arg(long)]
        set: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Suggest the set version that performed best on similar materials.
    Suggest {
        /// The catalog material.
        material_id: String,
        /// The metric that ranks set versions.
        #[arg(long, default_value = "score")]
        metric: String,
        /// Rank lower metric values first (errors, durations).
        #[arg(long)]
        lower_is_better: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Delete versions older than PARAM_HISTORY_RETENTION_DAYS (default 90) that are
    /// neither current nor referenced by a result.
    Purge {
        #[command(flatten)]
        common: Common,
    },
    /// Show or apply the parameter schema.
    #[command(subcommand)]
    Schema(SchemaCommand),
}

/// `kai params schema` subcommands.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Print every parameter's definition.
    Show {
        #[command(flatten)]
        common: Common,
    },
    /// Add or replace definitions from a TOML or JSON file with a `parameters` table.
    Apply {
        /// The schema file.
        file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
}

/// Opens the registry of `--store`. Commands that only read (`create` false) reject a
/// store folder that does not exist, so a mistyped path is not taken for a new store.
fn open_registry(store: &StoreArg, create: bool) -> Result<Registry, Error> {
    let root = StoreOptions::default_root(store.path());
    let config = StorageConfig::from_env()?;
    if !create && config.registry.is_none() && !root.is_dir() {
        return Err(Error::NotFound {
            what: "store",
            name: root.display().to_string(),
            hint: " (check --store; commands that write create a new store)".into(),
        });
    }
    Registry::open(&root, &config, RegistrySettings::from_env()?)
}

fn author(writer: &Writer) -> String {
    writer
        .author
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn write_options(writer: &Writer) -> WriteOptions {
    WriteOptions {
        expect_version: writer.expect_version,
        author: author(writer),
        note: writer.note.clone(),
    }
}

fn scope_text(scope: Option<&str>) -> String {
    scope.map(|s| format!(" (scope {s})")).unwrap_or_default()
}

fn note_text(note: &str) -> String {
    if note.is_empty() {
        String::new()
    } else {
        format!(": {note}")
    }
}

fn print_set(set: &ParameterSet, json: bool) -> Result<(), Error> {
    if json {
        return print_json(set);
    }
    emit(format!(
        "{} version {}{} by {} at {}{}",
        set.name,
        set.version,
        scope_text(set.scope.as_deref()),
        set.author,
        set.created_at,
        note_text(&set.note)
    ))?;
    print_values(&set.values)
}

fn print_values(values: &Values) -> Result<(), Error> {
    for (name, value) in values {
        emit(format!("  {name} = {value}"))?;
    }
    Ok(())
}

/// Parses `NAME=NUMBER` metrics; each name may appear once.
fn metrics(pairs: &[String]) -> Result<BTreeMap<String, f64>, Error> {
    let mut metrics = BTreeMap::new();
    for pair in pairs {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| Error::invalid("metric", format!("`{pair}` is not METRIC=VALUE")))?;
        let name = name.trim();
        let value = value.trim().parse::<f64>().map_err(|_| {
            Error::invalid(
                format!("metric {name}"),
                format!("`{}` is not a number", value.trim()),
            )
        })?;
        if metrics.insert(name.to_owned(), value).is_some() {
            return Err(Error::invalid(
                format!("metric {name}"),
                "is given twice; give each metric once",
            ));
        }
    }
    Ok(metrics)
}

/// Runs a `kai params` command.
pub fn run(cli: &Cli, command: &ParamsCommand) -> Result<(), Error> {
    match command {
        ParamsCommand::List { common } => {
            let sets = open_registry(&common.store, false)?.list()?;
            if common.json {
                return print_json(&sets);
            }
            for set in sets {
                emit(format!(
                    "{}{}  version {} ({} kept), updated {}",
                    set.name,
                    scope_text(set.scope.as_deref()),
                    set.version,
                    set.versions,
                    set.updated_at
                ))?;
            }
            Ok(())
        }
        ParamsCommand::Show {
            name,
            version,
            scope,
            common,
        } => {
            let set = open_registry(&common.store, false)?.get(name, scope.as_deref(), *version)?;
            print_set(&set, common.json)
        }
        ParamsCommand::Set {
            name,
            assignments,
            scope,
            writer,
            common,
        } => {
            let registry = open_registry(&common.store, true)?;
            let assignments: Vec<&str> = assignments.iter().map(String::as_str).collect();
            let changes = registry.parse_assignments(&assignments)?;
            let set = registry.set(name, scope.as_deref(), &changes, &write_options(writer))?;
            print_set(&set, common.json)
        }
        ParamsCommand::History {
            name,
            scope,
            common,
        } => {
            let history = open_registry(&common.store, false)?.history(name, scope.as_deref())?;
            if common.json {
                return print_json(&history);
            }
            for set in &history {
                emit(format!(
                    "version {}  {}  {}{}",
                    set.version,
                    set.created_at,
                    set.author,
                    note_text(&set.note)
                ))?;
            }
            Ok(())
        }
        ParamsCommand::Diff {
            name,
            a,
            b,
            scope,
            common,
        } => {
            let changes =
                open_registry(&common.store, false)?.diff(name, scope.as_deref(), *a, *b)?;
            if common.json {
                return print_json(&changes);
            }
            if changes.is_empty() {
                return emit(format!("versions {a} and {b} hold the same values"));
            }
            let show = |v: &Option<kai_core::registry::ParamValue>| {
                v.as_ref()
                    .map_or_else(|| "(absent)".to_owned(), ToString::to_string)
            };
            for change in changes {
                emit(format!(
                    "{}: {} -> {}",
                    change.parameter,
                    show(&change.from),
                    show(&change.to)
                ))?;
            }
            Ok(())
        }
        ParamsCommand::Rollback {
            name,
            to,
            scope,
            writer,
            common,
        } => {
            let set = open_registry(&common.store, true)?.rollback(
                name,
                scope.as_deref(),
                *to,
                &write_options(writer),
            )?;
            print_set(&set, common.json)
        }
        ParamsCommand::Record {
            name,
            material_id,
            metrics: pairs,
            version,
            scope,
            common,
        } => {
            let metrics = metrics(pairs)?;
            let catalog = open_existing(cli, &common.store)?;
            let input = ResultInput {
                set: name.clone(),
                scope: scope.clone(),
                version: *version,
                material_id: material_id.clone(),
                metrics,
            };
            let recorded = open_registry(&common.store, true)?
                .record_result(&input, |id| Ok(catalog.get(id)?.is_some()))?;
            if common.json {
                return print_json(&recorded);
            }
            emit(format!(
                "recorded {} result(s) of {} version {} on {}",
                recorded.metrics.len(),
                recorded.set,
                recorded.version,
                recorded.material_id
            ))
        }
        ParamsCommand::Resolve {
            material_id,
            set,
            common,
        } => {
            let catalog = open_existing(cli, &common.store)?;
            let resolution = open_registry(&common.store, false)?.resolve_for_material(
                &catalog,
                material_id,
                set.as_deref(),
            )?;
            if common.json {
                return print_json(&resolution);
            }
            emit(format!(
                "{} version {}{}{}",
                resolution.name,
                resolution.version,
                scope_text(resolution.scope.as_deref()),
                if resolution.fallback {
                    format!(
                        ", no set for scope {} so the unscoped set applies",
                        resolution.tried.join(" or ")
                    )
                } else {
                    String::new()
                }
            ))?;
            print_values(&resolution.values)
        }
        ParamsCommand::Suggest {
            material_id,
            metric,
            lower_is_better,
            common,
        } => {
            let catalog = open_existing(cli, &common.store)?;
            let options = SuggestOptions {
                metric: metric.clone(),
                higher_is_better: !lower_is_better,
            };
            let suggestion = open_registry(&common.store, false)?.suggest(
                &catalog,
                &SuggestTarget::Material(material_id.clone()),
                &options,
            )?;
            if common.json {
                return print_json(&suggestion);
            }
            emit(format!(
                "{} version {}{}: {}",
                suggestion.set.name,
                suggestion.set.version,
                scope_text(suggestion.set.scope.as_deref()),
                suggestion.reason
            ))?;
            for item in &suggestion.evidence {
                emit(format!(
                    "  {} (similarity {:.3}): {} version {} gave {} = {}",
                    item.material_id,
                    item.similarity,
                    item.set.name,
                    item.set.version,
                    suggestion.metric,
                    item.value
                ))?;
            }
            Ok(())
        }
        ParamsCommand::Purge { common } => {
            let report = open_registry(&common.store, true)?.purge()?;
            if common.json {
                return print_json(&report);
            }
            emit(format!(
                "purged {} version(s) written before {}",
                report.purged.len(),
                report.cutoff
            ))?;
            for purged in &report.purged {
                emit(format!(
                    "  {} version {}{}",
                    purged.name,
                    purged.version,
                    scope_text(purged.scope.as_deref())
                ))?;
            }
            Ok(())
        }
        ParamsCommand::Schema(SchemaCommand::Show { common }) => {
            let schema = open_registry(&common.store, false)?.schema()?;
            if common.json {
                return print_json(&schema);
            }
            for (name, spec) in &schema.parameters {
                emit(format!(
                    "{name} ({}{}) default {}: {}",
                    spec.kind,
                    spec.unit
                        .as_ref()
                        .map(|u| format!(", {u}"))
                        .unwrap_or_default(),
                    spec.default,
                    spec.description
                ))?;
            }
            Ok(())
        }
        ParamsCommand::Schema(SchemaCommand::Apply { file, common }) => {
            let schema = Schema::from_file(file)?;
            let report = open_registry(&common.store, true)?.apply_schema(&schema)?;
            if common.json {
                return print_json(&report);
            }
            emit(format!(
                "{} added, {} changed, {} unchanged",
                report.added.len(),
                report.changed.len(),
                report.unchanged.len()
            ))
        }
    }
}
