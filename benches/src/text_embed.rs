//! Measures kai's text embedding throughput and single-sentence latency on a corpus and
//! prints the figures as JSON. `benches/text_embed.py` runs this binary beside
//! sentence-transformers and reports the ratios.
//!
//! Threads follow `RAYON_NUM_THREADS`, which candle's CPU kernels read.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use kai_core::{Device, ModelStore, TextEmbedder};
use serde::Serialize;

// The same allocator as kai's command line and bindings, for the reason given there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Text embedding benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// File with one sentence per line.
    #[arg(long)]
    corpus: PathBuf,
    /// Batch sizes to measure throughput at, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    batch_sizes: Vec<usize>,
    /// Timed passes over the corpus per batch size; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Sentences embedded one at a time for the latency percentiles.
    #[arg(long, default_value_t = 200)]
    latency_samples: usize,
    /// Model name or folder.
    #[arg(long, default_value = kai_core::models::DEFAULT_TEXT_MODEL)]
    model: String,
}

#[derive(Serialize)]
struct Throughput {
    batch_size: usize,
    sentences_per_second: f64,
}

#[derive(Serialize)]
struct Report {
    library: &'static str,
    threads: usize,
    sentences: usize,
    throughput: Vec<Throughput>,
    latency_p50_ms: f64,
    latency_p95_ms: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.corpus)?;
    let corpus: Vec<&str> = text.lines().collect();
    let store = ModelStore::from_env();

    let mut throughput = Vec::new();
    for &batch_size in &args.batch_sizes {
        let embedder = TextEmbedder::from_store(&store, &args.model, &Device::Cpu)?
            .with_batch_size(batch_size)?;
        // One untimed pass warms caches and the allocator.
        embedder.embed(&corpus[..corpus.len().min(64)])?;
        let mut seconds = Vec::new();
        for _ in 0..args.repeats.max(1) {
            let started = Instant::now();
            let vectors = embedder.embed(&corpus)?;
            seconds.push(started.elapsed().as_secs_f64());
            assert_eq!(vectors.len(), corpus.len());
        }
        let median = percentile(&mut seconds, 0.5);
        eprintln!(
            "kai batch {batch_size}: {:.1} sentences/s",
            corpus.len() as f64 / median
        );
        throughput.push(Throughput {
            batch_size,
            sentences_per_second: corpus.len() as f64 / median,
        });
    }

    let embedder = TextEmbedder::from_store(&store, &args.model, &Device::Cpu)?;
    let mut latencies = Vec::new();
    for sentence in corpus.iter().cycle().take(args.latency_samples) {
        let started = Instant::now();
        embedder.embed_one(sentence)?;
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
    }

    let report = Report {
        library: "kai",
        threads: candle_threads(),
        sentences: corpus.len(),
        throughput,
        latency_p50_ms: percentile(&mut latencies, 0.5),
        latency_p95_ms: percentile(&mut latencies, 0.95),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Returns the `q` quantile (nearest rank) of `values`.
fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

fn candle_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
