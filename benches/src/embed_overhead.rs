//! Times `TextEmbedder::embed` called once per batch over a corpus, the same calls that
//! `benches/python_overhead.py` makes through the Python binding, and prints the figures
//! as JSON. The difference between the two is the binding's overhead.
//!
//! Threads follow `RAYON_NUM_THREADS`, which candle's CPU kernels read.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use kai_core::{Device, ModelStore, TextEmbedder};
use serde::Serialize;

// The same allocator as the Python binding, so both sides allocate alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Binding overhead benchmark, Rust side.
#[derive(Debug, Parser)]
struct Args {
    /// File with one sentence per line.
    #[arg(long)]
    corpus: PathBuf,
    /// Sentences taken from the start of the corpus.
    #[arg(long, default_value_t = 320)]
    sentences: usize,
    /// Batch sizes; each call embeds one batch of this many sentences.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    batch_sizes: Vec<usize>,
    /// Model name or folder.
    #[arg(long, default_value = kai_core::models::DEFAULT_TEXT_MODEL)]
    model: String,
}

#[derive(Serialize)]
struct Timing {
    batch_size: usize,
    calls: usize,
    seconds: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.corpus)?;
    let corpus: Vec<&str> = text.lines().take(args.sentences).collect();
    let store = ModelStore::from_env();

    let mut timings = Vec::new();
    for &batch_size in &args.batch_sizes {
        let embedder = TextEmbedder::from_store(&store, &args.model, &Device::Cpu)?
            .with_batch_size(batch_size)?;
        // One untimed pass over a few batches warms caches and the allocator.
        for batch in corpus.chunks(batch_size).take(4) {
            embedder.embed(batch)?;
        }
        let started = Instant::now();
        let mut calls = 0;
        for batch in corpus.chunks(batch_size) {
            let vectors = embedder.embed(batch)?;
            assert_eq!(vectors.len(), batch.len());
            calls += 1;
        }
        timings.push(Timing {
            batch_size,
            calls,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    println!("{}", serde_json::to_string(&timings)?);
    Ok(())
}
