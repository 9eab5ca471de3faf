//! `kai import`, `kai recognize`, `kai search`, `kai materials …` and `kai reindex`: the
//! commands that work on a store folder.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kai_core::Error;
use kai_core::catalog::{
    Catalog, MaterialFilter, MaterialInput, Progress, SearchQuery, SearchResults, StoreOptions,
};
use kai_core::image::{ImageLimits, open};
use kai_core::recognize::{HeadSpec, RecognizeOptions};
use serde::Serialize;

use super::{Cli, emit, print_json};

/// The store folder flag shared by the catalog commands.
#[derive(Debug, Args)]
pub struct StoreArg {
    /// Store folder [default: KAI_DATA_DIR, else ./kai-data].
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
}

impl StoreArg {
    /// Returns the folder given with `--store`, if any.
    pub(super) fn path(&self) -> Option<&Path> {
        self.store.as_deref()
    }
}

/// Arguments of `kai import`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when every record was imported or unchanged, 2 when some \
record failed (the others are still imported), and the error's status when the import stops."
)]
pub struct ImportArgs {
    /// Folder holding catalog.json (or catalog.csv) and the images it names.
    folder: PathBuf,
    #[command(flatten)]
    store: StoreArg,
    /// Print the report as JSON instead of a summary.
    #[arg(long)]
    json: bool,
}

/// Arguments of `kai recognize`.
#[derive(Debug, Args)]
pub struct RecognizeArgs {
    /// The photo to recognize.
    photo: PathBuf,
    /// Materials listed.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Text describing the material, fused into the ranking.
    #[arg(long)]
    hint: Option<String>,
    #[command(flatten)]
    store: StoreArg,
    /// Print `{"materials", "classes", "unknown", "processingTimeMs"}` as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `kai search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Words to search for (optional with --image).
    text: Option<String>,
    /// A photo to search by, alone or with the text.
    #[arg(long, value_name = "PHOTO")]
    image: Option<PathBuf>,
    /// Only materials of this type.
    #[arg(long = "type", value_name = "TYPE")]
    material_type: Option<String>,
    /// Only materials with this tag (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Only materials of this collection.
    #[arg(long)]
    collection: Option<String>,
    /// Results listed.
    #[arg(long, default_value_t = 10)]
    top_k: usize,
    /// Results skipped, for paging.
    #[arg(long, default_value_t = 0)]
    offset: usize,
    #[command(flatten)]
    store: StoreArg,
    /// Print `{"results": […]}` as JSON.
    #[arg(long)]
    json: bool,
}

/// `kai materials` subcommands.
#[derive(Debug, Subcommand)]
pub enum MaterialsCommand {
    /// Show one material as JSON.
    Get {
        id: String,
        #[command(flatten)]
        store: StoreArg,
    },
    /// List materials.
    List {
        /// Only materials of this type.
        #[arg(long = "type", value_name = "TYPE")]
        material_type: Option<String>,
        #[command(flatten)]
        store: StoreArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Replace a material's fields from a JSON file with one record as in catalog.json.
    /// Its images are kept unless the file names new ones, relative to the file's folder.
    Update {
        /// The JSON file.
        file: PathBuf,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Delete a material; its history is kept.
    Delete {
        id: String,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Show every version of a material as JSON.
    History {
        id: String,
        #[command(flatten)]
        store: StoreArg,
    },
}

/// `kai heads` subcommands.
#[derive(Debug, Subcommand)]
pub enum HeadsCommand {
    /// Train a classification head on the catalog's image embeddings, report its held-out
    /// accuracy beside the nearest-neighbour vote, and save it in the store. A head for
    /// the domain `material-type` then gives `kai recognize` its class confidences.
    Train {
        /// The head's name.
        #[arg(long, default_value = kai_core::recognize::MATERIAL_TYPE_DOMAIN)]
        domain: String,
        /// The predicted label: `materialType`, or `property:NAME` for a property's value.
        #[arg(long, default_value = "materialType")]
        label: String,
        /// Only materials of this type, for subtypes within a type.
        #[arg(long = "type", value_name = "TYPE")]
        material_type: Option<String>,
        #[command(flatten)]
        store: StoreArg,
        /// Print the head's manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the trained heads.
    List {
        #[command(flatten)]
        store: StoreArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Arguments of `kai reindex`.
#[derive(Debug, Args)]
pub struct ReindexArgs {
    #[command(flatten)]
    store: StoreArg,
}

/// Opens the store for a command that only reads it. A missing store is an error rather
/// than a new empty one, so a mistyped `--store` is noticed. With `KAI_DATABASE_URL` set
/// the records are in PostgreSQL, so the folder may be new.
pub(super) fn open_existing(cli: &Cli, store: &StoreArg) -> Result<Catalog, Error> {
    let options = store_options(cli, store)?;
    if options.database.is_none() && !options.root.join("kai.db").is_file() {
        return Err(Error::NotFound {
            what: "store",
            name: options.root.display().to_string(),
            hint: " (import a catalog into it first with `kai import DIR --store DIR`)".into(),
        });
    }
    Catalog::open(options)
}

fn open_catalog(cli: &Cli, store: &StoreArg) -> Result<Catalog, Error> {
    Catalog::open(store_options(cli, store)?)
}

/// Returns the options of the store named by `--store`, with the image limits and the
/// catalog database (`KAI_DATABASE_URL`) from the environment.
fn store_options(cli: &Cli, store: &StoreArg) -> Result<StoreOptions, Error> {
    let mut options = StoreOptions::new(
        StoreOptions::default_root(store.store.as_deref()),
        cli.store(),
        cli.device()?,
    )
    .with_env_database()?;
    options.limits = ImageLimits::from_env()?;
    Ok(options)
}

fn progress_bar(message: &'static str) -> (ProgressBar, impl FnMut(Progress)) {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message);
    let handle = bar.clone();
    (bar, move |p: Progress| {
        handle.set_length(p.total as u64);
        handle.set_position(p.done as u64);
    })
}

pub fn run_import(cli: &Cli, args: &ImportArgs) -> Result<(), Error> {
    let mut catalog = open_catalog(cli, &args.store)?;
    let (bar, mut update) = progress_bar("importing");
    let report = catalog.import(&args.folder, &mut update);
    bar.finish_and_clear();
    let report = report?;
    if args.json {
        print_json(&report)?;
    } else {
        emit(format_args!(
            "imported into {}: {} created, {} updated, {} unchanged, {} failed",
            catalog.root().display(),
            report.created.len(),
            report.updated.len(),
            report.unchanged.len(),
            report.failed.len()
        ))?;
        if let Some(calibration) = &report.calibration {
            emit(format_args!(
                "class confidence calibrated on {} held-out images: temperature {:.4}, \
                 accuracy {:.3}, expected calibration error {:.3}",
                calibration.samples,
                calibration.temperature,
                calibration.accuracy.unwrap_or(f32::NAN),
                calibration.expected_calibration_error.unwrap_or(f32::NAN)
            ))?;
        }
        for failure in &report.failed {
            eprintln!("failed: {}: {}", failure.record, failure.message);
        }
    }
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(
            "catalog",
            format!(
                "{} of the records failed to import; the others were stored",
                report.failed.len()
            ),
        ))
    }
}

pub fn run_recognize(cli: &Cli, args: &RecognizeArgs) -> Result<(), Error> {
    let limits = ImageLimits::from_env()?;
    let photo = open(&args.photo, &limits)?;
    let catalog = open_existing(cli, &args.store)?;
    let options = RecognizeOptions {
        top_k: args.top_k,
        hint: args.hint.clone(),
        ..Default::default()
    };
    let recognition = catalog.recognize(&photo, &options)?;
    if args.json {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Output<'a> {
            materials: &'a [kai_core::recognize::MaterialMatch],
            classes: &'a [kai_core::recognize::ClassConfidence],
            unknown: bool,
            processing_time_ms: f64,
            classified_by: &'a str,
            quality: &'a kai_core::image::QualityReport,
        }
        return print_json(&Output {
            materials: &recognition.materials,
            classes: &recognition.classes,
            unknown: recognition.unknown,
            processing_time_ms: recognition.processing_time_ms,
            classified_by: recognition.classified_by,
            quality: &recognition.quality,
        });
    }
    if recognition.unknown {
        emit("no catalog material is similar enough: unknown")?;
    }
    emit(format_args!(
        "{:<4} {:<24} {:<32} {:<12} {:>6}",
        "RANK", "ID", "NAME", "TYPE", "SCORE"
    ))?;
    for (rank, m) in recognition.materials.iter().enumerate() {
        emit(format_args!(
            "{:<4} {:<24} {:<32} {:<12} {:>6.3}",
            rank + 1,
            m.id,
            m.name,
            m.material_type,
            m.score
        ))?;
    }
    let classes: Vec<String> = recognition
        .classes
        .iter()
        .take(3)
        .map(|c| format!("{} {:.0}%", c.material_type, c.confidence * 100.0))
        .collect();
    emit(format_args!(
        "material type ({}): {}",
        recognition.classified_by,
        classes.join(", ")
    ))?;
    if !recognition.quality.reasons.is_empty() {
        let reasons: Vec<&str> = recognition
            .quality
            .reasons
            .iter()
            .map(|r| r.as_str())
            .collect();
        emit(format_args!("photo quality: {}", reasons.join(", ")))?;
    }
    emit(format_args!("{:.0} ms", recognition.processing_time_ms))
}

pub fn run_search(cli: &Cli, args: &SearchArgs) -> Result<(), Error> {
    let limits = ImageLimits::from_env()?;
    let image = args
        .image
        .as_deref()
        .map(|p| open(p, &limits))
        .transpose()?;
    let catalog = open_existing(cli, &args.store)?;
    let query = SearchQuery {
        text: args.text.clone(),
        image,
        filter: MaterialFilter {
            material_type: args.material_type.as_deref().map(str::to_lowercase),
            collection_id: args.collection.clone(),
            tags: args.tags.iter().map(|t| t.to_lowercase()).collect(),
        },
        top_k: args.top_k,
        offset: args.offset,
        weights: Default::default(),
    };
    let results = catalog.search(&query)?;
    if args.json {
        return print_json(&SearchResults { results });
    }
    emit(format_args!(
        "{:<4} {:<24} {:<32} {:<12} {:>7}",
        "RANK", "ID", "NAME", "TYPE", "SCORE"
    ))?;
    for (rank, hit) in results.iter().enumerate() {
        emit(format_args!(
            "{:<4} {:<24} {:<32} {:<12} {:>7.4}",
            args.offset + rank + 1,
            hit.id,
            hit.name,
            hit.material_type,
            hit.score
        ))?;
    }
    Ok(())
}

pub fn run_materials(cli: &Cli, command: &MaterialsCommand) -> Result<(), Error> {
    match command {
        MaterialsCommand::Get { id, store } => {
            let catalog = open_existing(cli, store)?;
            let material = catalog.get(id)?.ok_or_else(|| not_found(id))?;
            print_json(&material)
        }
        MaterialsCommand::List {
            material_type,
            store,
            json,
        } => {
            let catalog = open_existing(cli, store)?;
            let filter = MaterialFilter {
                material_type: material_type.as_deref().map(str::to_lowercase),
                ..Default::default()
            };
            let materials = catalog.list(&filter, 0, usize::MAX)?;
            if *json {
                return print_json(&materials);
            }
            emit(format_args!(
                "{:<24} {:<32} {:<12} {:>7} {:>6}",
                "ID", "NAME", "TYPE", "VERSION", "IMAGES"
            ))?;
            for m in &materials {
                emit(format_args!(
                    "{:<24} {:<32} {:<12} {:>7} {:>6}",
                    m.id,
                    m.name,
                    m.material_type,
                    m.version,
                    m.images.len()
                ))?;
            }
            Ok(())
        }
        MaterialsCommand::Update { file, store } => {
            let text =
                std::fs::read_to_string(file).map_err(|err| Error::io("cannot read", file, err))?;
            let record: MaterialInput = serde_json::from_str(&text).map_err(|err| {
                Error::invalid(
                    file.display().to_string(),
                    format!("not a material record: {err}"),
                )
            })?;
            let mut catalog = open_existing(cli, store)?;
            let folder = file.parent().unwrap_or(Path::new("."));
            let material = catalog.update(&record, folder)?;
            print_json(&material)
        }
        MaterialsCommand::Delete { id, store } => {
            let mut catalog = open_existing(cli, store)?;
            if !catalog.delete(id)? {
                return Err(not_found(id));
            }
            emit(format_args!("deleted {id}"))
        }
        MaterialsCommand::History { id, store } => {
            let catalog = open_existing(cli, store)?;
            print_json(&catalog.history_or_not_found(id)?)
        }
    }
}

pub fn run_reindex(cli: &Cli, args: &ReindexArgs) -> Result<(), Error> {
    let mut catalog = Catalog::open_for_reindex(store_options(cli, &args.store)?)?;
    let (bar, mut update) = progress_bar("re-embedding");
    let count = catalog.reindex(&mut update);
    bar.finish_and_clear();
    emit(format_args!(
        "re-embedded {} materials in {}",
        count?,
        catalog.root().display()
    ))
}

pub fn run_heads(cli: &Cli, command: &HeadsCommand) -> Result<(), Error> {
    match command {
        HeadsCommand::Train {
            domain,
            label,
            material_type,
            store,
            json,
        } => {
            let catalog = open_existing(cli, store)?;
            let spec = HeadSpec {
                domain: domain.clone(),
                label: label.clone(),
                material_type: material_type.as_deref().map(str::to_lowercase),
            };
            let manifest = catalog.train_head(&spec)?;
            if *json {
                return print_json(&manifest);
            }
            emit(format_args!(
                "trained head `{}` ({} classes) on {} images; held-out accuracy {:.1}% on {} \
                 images, nearest-neighbour vote {:.1}%",
                manifest.spec.domain,
                manifest.classes.len(),
                manifest.training_images,
                manifest.heldout_accuracy * 100.0,
                manifest.heldout_images,
                manifest.neighbour_accuracy * 100.0
            ))
        }
        HeadsCommand::List { store, json } => {
            let catalog = open_existing(cli, store)?;
            let heads = catalog.heads()?;
            if *json {
                return print_json(&heads);
            }
            emit(format_args!(
                "{:<20} {:<20} {:>7} {:>9} {:>9}",
                "DOMAIN", "LABEL", "CLASSES", "HEAD", "NEIGHBOUR"
            ))?;
            for head in &heads {
                emit(format_args!(
                    "{:<20} {:<20} {:>7} {:>8.1}% {:>8.1}%",
                    head.spec.domain,
                    head.spec.label,
                    head.classes.len(),
                    head.heldout_accuracy * 100.0,
                    head.neighbour_accuracy * 100.0
                ))?;
            }
            Ok(())
        }
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        what: "material",
        name: id.to_owned(),
        hint: String::new(),
    }
}
