//! Measures kai's image embedding throughput and prints the figures as JSON.
//! `benches/image_embed.py` runs this binary beside the PyTorch reference of
//! EfficientNet-Lite0 and reports the ratios.
//!
//! Two figures per batch size: with preprocessing (decoding the encoded photos held in
//! memory, cropping, resizing, normalising, then the network) and without it (the network
//! alone on a ready input tensor). Threads follow `RAYON_NUM_THREADS`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use kai_core::image::{ImageLimits, RgbImage, decode, preprocess_batch};
use kai_core::{Device, ImageEmbedder, ModelStore};
use serde::Serialize;

// The same allocator as kai's command line and bindings.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Image embedding benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Photos to embed; they are cycled to make up `--images` inputs.
    #[arg(required = true)]
    photos: Vec<PathBuf>,
    /// Images per timed pass.
    #[arg(long, default_value_t = 64)]
    images: usize,
    /// Batch sizes to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    batch_sizes: Vec<usize>,
    /// Timed passes per batch size; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Model name or folder.
    #[arg(long, default_value = kai_core::models::DEFAULT_IMAGE_MODEL)]
    model: String,
}

#[derive(Serialize)]
struct Throughput {
    batch_size: usize,
    /// Images per second from encoded bytes to vectors.
    with_preprocessing: f64,
    /// Images per second of the network alone.
    network_only: f64,
}

#[derive(Serialize)]
struct Report {
    library: &'static str,
    threads: usize,
    images: usize,
    throughput: Vec<Throughput>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let encoded: Vec<Vec<u8>> = args
        .photos
        .iter()
        .map(std::fs::read)
        .collect::<Result<_, _>>()?;
    let inputs: Vec<&[u8]> = encoded
        .iter()
        .cycle()
        .take(args.images)
        .map(Vec::as_slice)
        .collect();
    let store = ModelStore::from_env();
    let limits = ImageLimits::default();

    let mut throughput = Vec::new();
    for &batch_size in &args.batch_sizes {
        let embedder = ImageEmbedder::from_store(&store, &args.model, &Device::Cpu)?
            .with_batch_size(batch_size)?;
        let full = |inputs: &[&[u8]]| -> Result<(), kai_core::Error> {
            for batch in inputs.chunks(batch_size) {
                let images: Vec<RgbImage> = batch
                    .iter()
                    .map(|b| decode(b, &limits))
                    .collect::<Result<_, _>>()?;
                embedder.embed(&images)?;
            }
            Ok(())
        };
        full(&inputs[..batch_size.min(inputs.len())])?;
        let with_preprocessing = median_rate(args.repeats, inputs.len(), || full(&inputs))?;

        let images: Vec<RgbImage> = inputs[..batch_size.min(inputs.len())]
            .iter()
            .map(|b| decode(b, &limits))
            .collect::<Result<_, _>>()?;
        let tensor = preprocess_batch(&images, embedder.preprocess(), &Device::Cpu)?;
        let passes = inputs.len().div_ceil(batch_size);
        let network_only = median_rate(args.repeats, passes * batch_size, || {
            for _ in 0..passes {
                embedder.forward(&tensor)?;
            }
            Ok(())
        })?;
        eprintln!(
            "kai batch {batch_size}: {with_preprocessing:.1} images/s with preprocessing, \
             {network_only:.1} network only"
        );
        throughput.push(Throughput {
            batch_size,
            with_preprocessing,
            network_only,
        });
    }
    let report = Report {
        library: "kai",
        threads: threads(),
        images: inputs.len(),
        throughput,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Runs `pass` `repeats` times and returns `items` divided by the median duration.
fn median_rate(
    repeats: usize,
    items: usize,
    mut pass: impl FnMut() -> Result<(), kai_core::Error>,
) -> Result<f64, kai_core::Error> {
    let mut seconds = Vec::new();
    for _ in 0..repeats.max(1) {
        let started = Instant::now();
        pass()?;
        seconds.push(started.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    Ok(items as f64 / seconds[seconds.len() / 2])
}

fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
