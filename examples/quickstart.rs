//! kai's main job on the sample catalog: fetch the models, import the catalog into an
//! embedded store, recognize query photos that are not catalog files, and search by text.
//!
//! Run with `cargo run --release -p kai-core --example quickstart`. The store goes to
//! `KAI_DATA_DIR` (default `./kai-data`); a second run skips unchanged records.

use std::path::{Path, PathBuf};

use kai_core::catalog::{Catalog, SearchQuery, StoreOptions};
use kai_core::image::{ImageLimits, open};
use kai_core::models::{DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, FetchOptions};
use kai_core::recognize::RecognizeOptions;
use kai_core::{DeviceRequest, Error, ModelStore, fetch};
use serde::Deserialize;

/// One query photo and the material type recognition is expected to return.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Expected {
    file: String,
    material_type: String,
    source_id: Option<String>,
}

fn main() -> Result<(), Error> {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let models = ModelStore::from_env();
    for name in [DEFAULT_TEXT_MODEL, DEFAULT_IMAGE_MODEL] {
        let report = fetch(&models, name, &FetchOptions::default())?;
        if report.downloaded {
            println!("fetched {} into {}", report.name, report.path.display());
        }
    }

    let device = DeviceRequest::from_env()?.open()?;
    let root = StoreOptions::default_root(None);
    let mut catalog = Catalog::open(StoreOptions::new(&root, models, device))?;
    let report = catalog.import(&examples.join("catalog"), &mut |_| {})?;
    println!(
        "imported the sample catalog into {}: {} created, {} updated, {} unchanged, {} failed",
        root.display(),
        report.created.len(),
        report.updated.len(),
        report.unchanged.len(),
        report.failed.len()
    );
    let calibration = catalog.calibration()?;
    if let (Some(accuracy), Some(ece)) =
        (calibration.accuracy, calibration.expected_calibration_error)
    {
        println!(
            "class confidence: temperature {:.4} fitted on {} held-out catalog images \
             (accuracy {accuracy:.2}, expected calibration error {ece:.3})",
            calibration.temperature, calibration.samples
        );
    }

    recognize_queries(&catalog, &examples.join("queries"))?;

    let text = "weathered wooden planks";
    println!("\nsearch: \"{text}\"");
    let query = SearchQuery {
        text: Some(text.into()),
        top_k: 5,
        ..Default::default()
    };
    for (rank, hit) in catalog.search(&query)?.iter().enumerate() {
        println!(
            "  {}. {:<28} {:<10} {}",
            rank + 1,
            hit.id,
            hit.material_type,
            hit.name
        );
    }
    Ok(())
}

/// Recognizes every query photo and prints each result and the accuracies.
fn recognize_queries(catalog: &Catalog, folder: &Path) -> Result<(), Error> {
    let path = folder.join("expected.json");
    let text =
        std::fs::read_to_string(&path).map_err(|err| Error::io("cannot read", &path, err))?;
    let expected: Vec<Expected> = serde_json::from_str(&text)
        .map_err(|err| Error::invalid(path.display().to_string(), err.to_string()))?;
    let limits = ImageLimits::default();
    let options = RecognizeOptions::default();
    let (mut top1, mut top5, mut material_top1, mut with_source) = (0, 0, 0, 0);
    println!(
        "\nrecognizing {} query photos (not catalog files):",
        expected.len()
    );
    for query in &expected {
        let photo = open(&folder.join(&query.file), &limits)?;
        let result = catalog.recognize(&photo, &options)?;
        let rank = result
            .classes
            .iter()
            .position(|c| c.material_type == query.material_type);
        top1 += usize::from(rank == Some(0));
        top5 += usize::from(rank.is_some_and(|r| r < 5));
        if let Some(source) = &query.source_id {
            with_source += 1;
            material_top1 += usize::from(result.materials.first().is_some_and(|m| &m.id == source));
        }
        let best = &result.classes[0];
        println!(
            "  {:<40} expected {:<9} got {:<9} ({:>3.0}%) nearest {}",
            query.file,
            query.material_type,
            best.material_type,
            best.confidence * 100.0,
            result.materials.first().map_or("-", |m| m.id.as_str())
        );
    }
    let n = expected.len().max(1) as f32;
    println!(
        "material type accuracy: top-1 {:.1}% ({top1}/{}), top-5 {:.1}% ({top5}/{})",
        100.0 * top1 as f32 / n,
        expected.len(),
        100.0 * top5 as f32 / n,
        expected.len()
    );
    if with_source > 0 {
        println!("altered copies matched to their source material: {material_top1}/{with_source}");
    }
    Ok(())
}
