//! Measures kai's vector index on the data set that `benches/vector_search.py` writes and
//! prints the figures as JSON. The driver runs FAISS, hnswlib and usearch on the same data
//! and reports the ratios.
//!
//! Measures: the machine's memory read bandwidth, exact search (one query at a time and
//! batched) against that floor, HNSW build time and memory, recall and throughput over a
//! sweep of `ef_search`, filtered search, and save and load times.
//!
//! Threads follow `RAYON_NUM_THREADS`, and the bandwidth probe uses as many threads.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use kai_core::index::{Filter, HnswConfig, IndexConfig, Metadata, Metric, VectorIndex};
use serde::Serialize;

// The same allocator as kai's command line and bindings.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Vector search benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Folder with base.f32, queries.f32 (row-major little-endian f32) and the ground
    /// truth files gt.u32, gt_collection.u32 and gt_rare.u32 (10 ids per query).
    #[arg(long)]
    data: PathBuf,
    /// Components per vector.
    #[arg(long, default_value_t = 384)]
    dimension: usize,
    /// Results per query; recall is measured at this k.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// HNSW links per node.
    #[arg(long, default_value_t = 16)]
    m: usize,
    /// HNSW construction width.
    #[arg(long, default_value_t = 200)]
    ef_construction: usize,
    /// `ef_search` values to sweep, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,16,24,32,48,64,96,128,192,256,384,512"
    )]
    ef: Vec<usize>,
    /// Queries searched one at a time for the exact-search floor.
    #[arg(long, default_value_t = 200)]
    single_queries: usize,
    /// Timed repeats of each batch measurement; the fastest counts.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Bytes read by each pass of the bandwidth probe.
    #[arg(long, default_value_t = 1 << 30)]
    probe_bytes: usize,
}

#[derive(Serialize)]
struct SweepPoint {
    ef: usize,
    recall: f64,
    qps: f64,
}

#[derive(Serialize)]
struct FilteredPoint {
    name: &'static str,
    fraction: f64,
    ef: usize,
    recall: f64,
    qps: f64,
}

#[derive(Serialize)]
struct Report {
    library: &'static str,
    threads: usize,
    vectors: usize,
    dimension: usize,
    queries: usize,
    bandwidth_gb_per_s: f64,
    exact_build_s: f64,
    exact_single_qps: f64,
    exact_batch_qps: f64,
    exact_recall: f64,
    exact_bytes_per_query: usize,
    hnsw_build_s: f64,
    hnsw_memory_bytes: usize,
    hnsw_rss_bytes: Option<usize>,
    sweep: Vec<SweepPoint>,
    filtered: Vec<FilteredPoint>,
    save_s: f64,
    load_s: f64,
    file_bytes: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dimension = args.dimension;
    let base = read_f32(&args.data.join("base.f32"))?;
    let queries = read_f32(&args.data.join("queries.f32"))?;
    let truth = read_truth(&args.data.join("gt.u32"), args.k)?;
    let count = base.len() / dimension;
    let query_count = queries.len() / dimension;
    let ids: Vec<u64> = (0..count as u64).collect();
    let metadata: Vec<Metadata> = ids.iter().map(|&id| metadata_of(id)).collect();
    let threads = thread_count();

    let bandwidth = read_bandwidth(args.probe_bytes, threads);
    eprintln!("kai: read bandwidth {:.1} GB/s", bandwidth / 1e9);

    let started = Instant::now();
    let mut exact = VectorIndex::new(dimension, Metric::Cosine, IndexConfig::exact())?;
    exact.upsert_batch(&ids, &base, Some(&metadata))?;
    let exact_build_s = started.elapsed().as_secs_f64();
    let single = args.single_queries.min(query_count);
    let started = Instant::now();
    for query in queries.chunks_exact(dimension).take(single) {
        std::hint::black_box(exact.search_exact(query, args.k, None)?);
    }
    let exact_single_qps = single as f64 / started.elapsed().as_secs_f64();
    let (seconds, results) = fastest(args.repeats, || {
        exact.search_exact_batch(&queries, args.k, None)
    })?;
    let exact_batch_qps = query_count as f64 / seconds;
    let exact_recall = recall(&results, &truth);
    eprintln!(
        "kai: exact {exact_single_qps:.1} q/s one at a time, {exact_batch_qps:.1} q/s batched"
    );
    drop(exact);

    let rss_before = resident_bytes();
    let config = IndexConfig::hnsw(HnswConfig {
        m: args.m,
        ef_construction: args.ef_construction,
        ..HnswConfig::default()
    });
    let started = Instant::now();
    let mut index = VectorIndex::new(dimension, Metric::Cosine, config)?.with_model("synthetic")?;
    index.upsert_batch(&ids, &base, Some(&metadata))?;
    let hnsw_build_s = started.elapsed().as_secs_f64();
    let hnsw_rss_bytes = rss_before
        .zip(resident_bytes())
        .map(|(before, after)| after.saturating_sub(before));
    eprintln!("kai: HNSW build {hnsw_build_s:.1} s");

    let mut sweep = Vec::new();
    for &ef in &args.ef {
        index.set_ef_search(ef)?;
        let (seconds, results) =
            fastest(args.repeats, || index.search_batch(&queries, args.k, None))?;
        let point = SweepPoint {
            ef,
            recall: recall(&results, &truth),
            qps: query_count as f64 / seconds,
        };
        eprintln!(
            "kai: ef {ef}: recall {:.4}, {:.0} q/s",
            point.recall, point.qps
        );
        sweep.push(point);
    }

    // Filtered searches run at the smallest ef that reaches recall 0.95 unfiltered.
    let filter_ef = sweep
        .iter()
        .find(|point| point.recall >= 0.95)
        .map_or(64, |point| point.ef);
    index.set_ef_search(filter_ef)?;
    let mut filtered = Vec::new();
    let filters = [
        (
            "collection",
            0.1,
            Filter {
                collection: Some("c4".into()),
                ..Filter::default()
            },
        ),
        (
            "rare",
            0.01,
            Filter {
                tags: vec!["rare".into()],
                ..Filter::default()
            },
        ),
    ];
    for (name, fraction, filter) in filters {
        let truth = read_truth(&args.data.join(format!("gt_{name}.u32")), args.k)?;
        let (seconds, results) = fastest(args.repeats, || {
            index.search_batch(&queries, args.k, Some(&filter))
        })?;
        let point = FilteredPoint {
            name,
            fraction,
            ef: filter_ef,
            recall: recall(&results, &truth),
            qps: query_count as f64 / seconds,
        };
        eprintln!(
            "kai: filter {name}: recall {:.4}, {:.0} q/s",
            point.recall, point.qps
        );
        filtered.push(point);
    }

    let folder = tempfile_folder(&args.data)?;
    let path = folder.join("index.kvi");
    let started = Instant::now();
    index.save(&path)?;
    let save_s = started.elapsed().as_secs_f64();
    let file_bytes = std::fs::metadata(&path)?.len();
    let started = Instant::now();
    let loaded = VectorIndex::load(&path)?;
    let load_s = started.elapsed().as_secs_f64();
    let sample = &queries[..dimension * 10];
    assert_eq!(
        loaded.search_batch(sample, args.k, None)?,
        index.search_batch(sample, args.k, None)?
    );
    std::fs::remove_file(&path)?;

    let report = Report {
        library: "kai",
        threads,
        vectors: count,
        dimension,
        queries: query_count,
        bandwidth_gb_per_s: bandwidth / 1e9,
        exact_build_s,
        exact_single_qps,
        exact_batch_qps,
        exact_recall,
        exact_bytes_per_query: count * dimension * size_of::<f32>(),
        hnsw_build_s,
        hnsw_memory_bytes: index.memory_bytes(),
        hnsw_rss_bytes,
        sweep,
        filtered,
        save_s,
        load_s,
        file_bytes,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Returns the metadata the driver assumes for vector `id`: collection `c{id % 10}` and
/// the tag `rare` when `id % 100 == 3`.
fn metadata_of(id: u64) -> Metadata {
    Metadata {
        material_type: None,
        collection: Some(format!("c{}", id % 10)),
        tags: if id % 100 == 3 {
            vec!["rare".to_owned()]
        } else {
            Vec::new()
        },
    }
}

/// Runs `search` `repeats` times and returns the fastest time with its results.
fn fastest<T>(
    repeats: usize,
    mut search: impl FnMut() -> kai_core::Result<T>,
) -> kai_core::Result<(f64, T)> {
    let mut best: Option<(f64, T)> = None;
    for _ in 0..repeats.max(1) {
        let started = Instant::now();
        let results = search()?;
        let seconds = started.elapsed().as_secs_f64();
        if best.as_ref().is_none_or(|(fastest, _)| seconds < *fastest) {
            best = Some((seconds, results));
        }
    }
    Ok(best.expect("at least one repeat runs"))
}

fn recall(results: &[Vec<kai_core::index::Hit>], truth: &[Vec<u64>]) -> f64 {
    let mut found = 0;
    let mut total = 0;
    for (hits, expected) in results.iter().zip(truth) {
        let expected: HashSet<u64> = expected.iter().copied().collect();
        found += hits.iter().filter(|hit| expected.contains(&hit.id)).count();
        total += expected.len();
    }
    found as f64 / total.max(1) as f64
}

/// Measures read bandwidth in bytes per second: `threads` threads each sum their share
/// of a `bytes`-long buffer, far larger than the caches. The fastest of 5 passes counts.
fn read_bandwidth(bytes: usize, threads: usize) -> f64 {
    let values = vec![1.0f32; bytes / size_of::<f32>()];
    let share = values.len().div_ceil(threads);
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let started = Instant::now();
        let total: f32 = std::thread::scope(|scope| {
            let workers: Vec<_> = values
                .chunks(share)
                .map(|part| scope.spawn(move || sum(part)))
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().unwrap_or(0.0))
                .sum()
        });
        std::hint::black_box(total);
        best = best.min(started.elapsed().as_secs_f64());
    }
    bytes as f64 / best
}

/// Sums `values` with 32 independent lanes, so the additions keep up with memory.
fn sum(values: &[f32]) -> f32 {
    let (blocks, tail) = values.as_chunks::<32>();
    let mut lanes = [0.0f32; 32];
    for block in blocks {
        for (lane, value) in lanes.iter_mut().zip(block) {
            *lane += value;
        }
    }
    lanes.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

fn read_f32(path: &Path) -> std::io::Result<Vec<f32>> {
    let bytes = std::fs::read(path)?;
    let (values, _) = bytes.as_chunks::<4>();
    Ok(values
        .iter()
        .map(|&value| f32::from_le_bytes(value))
        .collect())
}

fn read_truth(path: &Path, k: usize) -> std::io::Result<Vec<Vec<u64>>> {
    let bytes = std::fs::read(path)?;
    let (values, _) = bytes.as_chunks::<4>();
    let ids: Vec<u64> = values
        .iter()
        .map(|&value| u64::from(u32::from_le_bytes(value)))
        .collect();
    Ok(ids.chunks(k).map(<[u64]>::to_vec).collect())
}

/// Returns a folder for the saved index beside the data, which the driver deletes.
fn tempfile_folder(data: &Path) -> std::io::Result<PathBuf> {
    let folder = data.join("kai");
    std::fs::create_dir_all(&folder)?;
    Ok(folder)
}

/// Returns the resident set size from `/proc/self/statm` on Linux, else `None`.
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn thread_count() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
