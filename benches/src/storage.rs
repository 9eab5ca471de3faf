//! Measures the catalog and the parameter registry on both storage backends in one run:
//! the embedded store (SQLite and index files) and PostgreSQL with pgvector.
//!
//! For each backend it loads synthetic materials with clustered text vectors through
//! `Catalog::put_embedded`, writes parameter sets and records results. Then it times
//! catalog searches (hybrid, vector only and keyword only), `resolve_for_material` and
//! `suggest`, and measures the recall@10 of the vector search against exact search.
//! It prints a Markdown table with the PostgreSQL / SQLite ratios and writes the figures
//! as JSON with `--json`.
//!
//! The PostgreSQL server comes from `--database-url` or `KAI_TEST_DATABASE_URL`, and
//! `eval "$(python3 scripts/postgres.py start)"` starts one. The benchmark creates a
//! database of its own there and drops it at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use kai_core::catalog::{
    Catalog, EmbeddedMaterial, ExpectedVersion, MaterialFilter, MaterialInput, SearchQuery,
    StoreOptions,
};
use kai_core::db::{DatabaseUrl, StorageConfig};
use kai_core::index::Filter;
use kai_core::registry::{
    NewResult, ParamValue, Registry, RegistrySettings, SuggestOptions, SuggestTarget, Values,
    VersionRef, WriteOptions,
};
use kai_core::{Device, ModelStore};
use serde::Serialize;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TYPES: [&str; 9] = [
    "wood", "stone", "tile", "metal", "brick", "concrete", "plaster", "carpet", "gravel",
];
const WORDS: [&str; 40] = [
    "oak",
    "walnut",
    "maple",
    "slate",
    "granite",
    "marble",
    "travertine",
    "terracotta",
    "porcelain",
    "ceramic",
    "steel",
    "copper",
    "brass",
    "zinc",
    "brick",
    "mortar",
    "concrete",
    "polished",
    "honed",
    "brushed",
    "rough",
    "smooth",
    "matte",
    "glossy",
    "weathered",
    "grey",
    "white",
    "black",
    "red",
    "brown",
    "beige",
    "planks",
    "tiles",
    "panels",
    "slabs",
    "herringbone",
    "chevron",
    "striped",
    "speckled",
    "veined",
];
const DIMENSION: usize = 384;
const LOAD_BATCH: usize = 5000;

/// Storage backend benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// PostgreSQL server to create the benchmark database on [default:
    /// KAI_TEST_DATABASE_URL]. Without one only SQLite is measured.
    #[arg(long)]
    database_url: Option<String>,
    /// Materials in the catalog.
    #[arg(long, default_value_t = 100_000)]
    materials: usize,
    /// Materials per cluster of similar text vectors.
    #[arg(long, default_value_t = 100)]
    cluster_size: usize,
    /// Parameter sets (names times scopes).
    #[arg(long, default_value_t = 10_000)]
    sets: usize,
    /// Recorded results, spread over the first fifth of the materials.
    #[arg(long, default_value_t = 100_000)]
    results: usize,
    /// Timed queries per measure.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Folder for the embedded store [default: a temporary folder].
    #[arg(long)]
    work: Option<PathBuf>,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// A small deterministic generator (xorshift64*), so both backends get the same data.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Draws a standard normal sample (Box–Muller).
    fn normal(&mut self) -> f32 {
        let u = ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let v = ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// Returns the text vector of material `i`: its cluster's centre plus noise, so members
/// of a cluster have a cosine similarity near 0.8 to each other (σ² = 0.235 gives 0.9 to
/// the centre) and materials of other clusters near 0.
fn vector(i: usize, cluster_size: usize) -> Vec<f32> {
    let mut centre = Random(0x9e37_79b9 + (i / cluster_size) as u64 * 7919);
    let mut noise = Random(0x51_7cc1_b727 + i as u64 * 104_729);
    let c = unit((0..DIMENSION).map(|_| centre.normal()).collect());
    let sigma = 0.235f32.sqrt() / (DIMENSION as f32).sqrt();
    unit(c.iter().map(|x| x + sigma * noise.normal()).collect())
}

fn record(i: usize, random: &mut Random) -> MaterialInput {
    let words: Vec<&str> = (0..12).map(|_| WORDS[random.below(WORDS.len())]).collect();
    MaterialInput {
        id: format!("m{i:06}"),
        name: format!("{} {} {}", words[0], words[1], words[2]),
        material_type: TYPES[i % TYPES.len()].to_owned(),
        collection_id: Some(format!("c{}", i % 50)),
        tags: vec![words[3].to_owned(), words[4].to_owned()],
        manufacturer: None,
        description: words.join(" "),
        properties: serde_json::Map::new(),
        images: Vec::new(),
    }
}

#[derive(Debug, Default, Serialize)]
struct Latency {
    p50_ms: f64,
    p95_ms: f64,
    mean_ms: f64,
}

fn latency(mut samples: Vec<f64>) -> Latency {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Latency {
        p50_ms: at(0.5),
        p95_ms: at(0.95),
        mean_ms: samples.iter().sum::<f64>() / samples.len() as f64,
    }
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed().as_secs_f64() * 1000.0)
}

#[derive(Debug, Default, Serialize)]
struct BackendReport {
    backend: &'static str,
    load_materials_s: f64,
    write_sets_s: f64,
    record_results_s: f64,
    search_hybrid: Latency,
    search_hybrid_filtered: Latency,
    search_vector: Latency,
    search_keyword: Latency,
    recall_at_10: f64,
    resolve: Latency,
    suggest: Latency,
    suggest_evidence_mean: f64,
}

fn run_backend(
    args: &Args,
    backend: &'static str,
    root: &Path,
    database: Option<DatabaseUrl>,
) -> Result<BackendReport, kai_core::Error> {
    let mut report = BackendReport {
        backend,
        ..BackendReport::default()
    };
    let mut options = StoreOptions::new(root, ModelStore::from_env(), Device::Cpu);
    if let Some(url) = &database {
        options = options.with_database(url.clone());
    }
    let mut catalog = Catalog::open(options)?;
    let mut random = Random(42);
    let (outcome, ms) = time(|| -> Result<(), kai_core::Error> {
        for start in (0..args.materials).step_by(LOAD_BATCH) {
            let batch: Vec<EmbeddedMaterial> = (start..(start + LOAD_BATCH).min(args.materials))
                .map(|i| EmbeddedMaterial {
                    record: record(i, &mut random),
                    text_vector: vector(i, args.cluster_size),
                    image_vectors: Vec::new(),
                    expected: ExpectedVersion::Any,
                })
                .collect();
            catalog.put_embedded(&batch, root)?;
            eprintln!("{backend}: {} materials stored", start + batch.len());
        }
        Ok(())
    });
    outcome?;
    report.load_materials_s = ms / 1000.0;

    let config = StorageConfig {
        catalog: database.clone(),
        registry: database,
    };
    let registry = Registry::open(root, &config, RegistrySettings::default())?;
    let names = args.sets / (TYPES.len() + 1);
    let (outcome, ms) = time(|| -> Result<(), kai_core::Error> {
        for n in 0..names {
            let name = format!("tier-{n:04}");
            let scopes = std::iter::once(None).chain(TYPES.iter().map(|t| Some(*t)));
            for scope in scopes {
                let values = Values::from([(
                    "recognition.top_k".to_owned(),
                    ParamValue::Int((n % 100 + 1) as i64),
                )]);
                registry.set(&name, scope, &values, &WriteOptions::by("bench"))?;
            }
        }
        Ok(())
    });
    outcome?;
    report.write_sets_s = ms / 1000.0;
    eprintln!(
        "{backend}: {} parameter sets written",
        names * (TYPES.len() + 1)
    );

    let with_results = (args.materials / 5).max(1);
    let (outcome, ms) = time(|| -> Result<(), kai_core::Error> {
        let mut random = Random(7);
        let mut batch = Vec::new();
        for r in 0..args.results {
            let n = random.below(names);
            let scope = random.below(TYPES.len() + 1);
            batch.push(NewResult {
                set: VersionRef {
                    name: format!("tier-{n:04}"),
                    scope: (scope > 0).then(|| TYPES[scope - 1].to_owned()),
                    version: 1,
                },
                material_id: format!("m{:06}", random.below(with_results)),
                metrics: BTreeMap::from([("score".to_owned(), random.below(1000) as f64 / 10.0)]),
            });
            if batch.len() == 10_000 || r + 1 == args.results {
                registry.record_batch(&batch)?;
                batch.clear();
            }
        }
        Ok(())
    });
    outcome?;
    report.record_results_s = ms / 1000.0;
    eprintln!("{backend}: {} results recorded", args.results);

    let mut random = Random(99);
    let queries: Vec<(String, usize)> = (0..args.queries)
        .map(|_| {
            let text = format!(
                "{} {}",
                WORDS[random.below(WORDS.len())],
                WORDS[random.below(WORDS.len())]
            );
            (text, random.below(args.materials))
        })
        .collect();
    // Loads the text model before the timed loops.
    catalog.text_embedder()?;

    let mut samples = Vec::new();
    for (text, _) in &queries {
        let query = SearchQuery {
            text: Some(text.clone()),
            top_k: 10,
            ..SearchQuery::default()
        };
        let (hits, ms) = time(|| catalog.search(&query));
        hits?;
        samples.push(ms);
    }
    report.search_hybrid = latency(samples);

    let mut samples = Vec::new();
    for (i, (text, _)) in queries.iter().enumerate() {
        let mut query = SearchQuery {
            text: Some(text.clone()),
            top_k: 10,
            ..SearchQuery::default()
        };
        query.filter.material_type = Some(TYPES[i % TYPES.len()].to_owned());
        let (hits, ms) = time(|| catalog.search(&query));
        hits?;
        samples.push(ms);
    }
    report.search_hybrid_filtered = latency(samples);

    let mut samples = Vec::new();
    let mut found = 0usize;
    let mut wanted = 0usize;
    for (i, (_, material)) in queries.iter().enumerate() {
        let query = vector(*material + 1, args.cluster_size * 3);
        let filter = (i % 2 == 1).then(|| Filter {
            material_type: Some(TYPES[i % TYPES.len()].to_owned()),
            ..Filter::default()
        });
        let (hits, ms) = time(|| catalog.text_index().search(&query, 10, filter.as_ref()));
        samples.push(ms);
        let exact = catalog
            .text_index()
            .search_exact(&query, 10, filter.as_ref())?;
        let hits = hits?;
        wanted += exact.len();
        found += exact
            .iter()
            .filter(|e| hits.iter().any(|h| h.id == e.id))
            .count();
    }
    report.search_vector = latency(samples);
    report.recall_at_10 = found as f64 / wanted.max(1) as f64;

    let mut samples = Vec::new();
    for (text, _) in &queries {
        let (hits, ms) = time(|| {
            catalog
                .storage()
                .keyword_search(text, &MaterialFilter::default(), 200)
        });
        hits?;
        samples.push(ms);
    }
    report.search_keyword = latency(samples);

    let mut samples = Vec::new();
    for (i, (_, material)) in queries.iter().enumerate() {
        let set = format!("tier-{:04}", i % names);
        let id = format!("m{material:06}");
        let (resolved, ms) = time(|| registry.resolve_for_material(&catalog, &id, Some(&set)));
        resolved?;
        samples.push(ms);
    }
    report.resolve = latency(samples);

    let mut samples = Vec::new();
    let mut evidence = 0usize;
    for (_, material) in &queries {
        let target = SuggestTarget::Material(format!("m{material:06}"));
        let (suggestion, ms) =
            time(|| registry.suggest(&catalog, &target, &SuggestOptions::default()));
        evidence += suggestion?.evidence.len();
        samples.push(ms);
    }
    report.suggest = latency(samples);
    report.suggest_evidence_mean = evidence as f64 / queries.len() as f64;
    Ok(report)
}

/// A database of the benchmark's own on the server, dropped when the value is dropped.
struct BenchDatabase {
    server: String,
    name: String,
    url: DatabaseUrl,
}

impl BenchDatabase {
    fn create(server: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let name = format!("kai_bench_{}", std::process::id());
        let mut client = postgres::Client::connect(server, postgres::NoTls)?;
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        client.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let (base, _) = server
            .rsplit_once('/')
            .ok_or("the database URL must end in /DATABASE")?;
        let url = DatabaseUrl::parse("--database-url", &format!("{base}/{name}"))?;
        Ok(Self {
            server: server.to_owned(),
            name,
            url,
        })
    }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.server, postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn ratio(sqlite: f64, postgres: f64) -> String {
    if sqlite > 0.0 {
        format!("{:.2}", postgres / sqlite)
    } else {
        "—".to_owned()
    }
}

/// Reads one figure of a backend's report.
type Measure = fn(&BackendReport) -> f64;

fn print_table(reports: &[BackendReport]) {
    println!(
        "| measure | {} | PostgreSQL / SQLite |",
        reports
            .iter()
            .map(|r| r.backend)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("| --- |{} ---: |", " ---: |".repeat(reports.len()));
    let rows: [(&str, Measure); 17] = [
        ("load materials (s)", |r| r.load_materials_s),
        ("write parameter sets (s)", |r| r.write_sets_s),
        ("record results (s)", |r| r.record_results_s),
        ("hybrid search p50 (ms)", |r| r.search_hybrid.p50_ms),
        ("hybrid search p95 (ms)", |r| r.search_hybrid.p95_ms),
        ("hybrid search, type filter p50 (ms)", |r| {
            r.search_hybrid_filtered.p50_ms
        }),
        ("hybrid search, type filter p95 (ms)", |r| {
            r.search_hybrid_filtered.p95_ms
        }),
        ("vector search top-10 p50 (ms)", |r| r.search_vector.p50_ms),
        ("vector search top-10 p95 (ms)", |r| r.search_vector.p95_ms),
        ("vector search recall@10", |r| r.recall_at_10),
        ("keyword search top-200 p50 (ms)", |r| {
            r.search_keyword.p50_ms
        }),
        ("keyword search top-200 p95 (ms)", |r| {
            r.search_keyword.p95_ms
        }),
        ("resolve p50 (ms)", |r| r.resolve.p50_ms),
        ("resolve p95 (ms)", |r| r.resolve.p95_ms),
        ("suggest p50 (ms)", |r| r.suggest.p50_ms),
        ("suggest p95 (ms)", |r| r.suggest.p95_ms),
        ("suggest evidence per query", |r| r.suggest_evidence_mean),
    ];
    for (name, value) in rows {
        let values: Vec<String> = reports.iter().map(|r| format!("{:.3}", value(r))).collect();
        let ratio = if reports.len() == 2 {
            ratio(value(&reports[0]), value(&reports[1]))
        } else {
            "—".to_owned()
        };
        println!("| {name} | {} | {ratio} |", values.join(" | "));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let work = match &args.work {
        Some(path) => {
            std::fs::create_dir_all(path)?;
            tempfile::tempdir_in(path)?
        }
        None => tempfile::tempdir()?,
    };
    let mut reports = vec![run_backend(
        &args,
        "SQLite",
        &work.path().join("sqlite"),
        None,
    )?];
    let server = args
        .database_url
        .clone()
        .or_else(|| std::env::var("KAI_TEST_DATABASE_URL").ok());
    match server {
        Some(server) => {
            let database = BenchDatabase::create(&server)?;
            reports.push(run_backend(
                &args,
                "PostgreSQL",
                &work.path().join("postgres"),
                Some(database.url.clone()),
            )?);
        }
        None => eprintln!(
            "PostgreSQL skipped: give --database-url or run `eval \"$(python3 scripts/postgres.py start)\"`"
        ),
    }
    print_table(&reports);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&reports)?)?;
    }
    Ok(())
}
