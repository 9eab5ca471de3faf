//! Embeds a few material descriptions and prints their pairwise cosine similarities.
//!
//! Run with `cargo run -p kai-core --example similarity`. The model is fetched into
//! `MODEL_DIR` (default `~/.cache/kai/models`) on the first run.

use kai_core::models::{DEFAULT_TEXT_MODEL, FetchOptions};
use kai_core::{DeviceRequest, ModelStore, TextEmbedder, cosine_similarity, fetch};

const MATERIALS: [&str; 6] = [
    "oak parquet flooring with a natural oil finish",
    "solid walnut floor boards",
    "polished Carrara marble countertop",
    "honed granite kitchen worktop",
    "stainless steel sink",
    "wool bouclé upholstery fabric",
];

fn main() -> Result<(), kai_core::Error> {
    let store = ModelStore::from_env();
    let report = fetch(&store, DEFAULT_TEXT_MODEL, &FetchOptions::default())?;
    if report.downloaded {
        println!("fetched {} into {}", report.name, report.path.display());
    }

    let device = DeviceRequest::from_env()?.open()?;
    let embedder = TextEmbedder::from_store(&store, DEFAULT_TEXT_MODEL, &device)?;
    let vectors = embedder.embed(&MATERIALS)?;

    println!(
        "cosine similarity ({}, {} dimensions)\n",
        embedder.name(),
        embedder.dimension()
    );
    print!("{:>4}", "");
    for column in 1..=MATERIALS.len() {
        print!("{column:>7}");
    }
    println!();
    for (row, a) in vectors.iter().enumerate() {
        print!("{:>4}", row + 1);
        for b in &vectors {
            print!("{:>7.3}", cosine_similarity(a, b));
        }
        println!("  {}", MATERIALS[row]);
    }
    Ok(())
}
