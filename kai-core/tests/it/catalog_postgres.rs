//! What only the PostgreSQL catalog has: recall of pgvector's approximate search,
//! concurrent writers in several catalog handles, and the copy from an embedded store.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Barrier};

use kai_core::ErrorKind;
use kai_core::catalog::{
    Catalog, EmbeddedMaterial, ExpectedVersion, SearchQuery, copy_to_postgres,
};
use kai_core::db::PgPool;
use kai_core::image::{ImageLimits, open};
use kai_core::index::Filter;
use kai_core::recognize::RecognizeOptions;

use crate::catalog::{Backend, Env, photos, records, write_catalog};
use crate::catalog_bulk::{open_synthetic, record};

/// A small deterministic generator (SplitMix64), so the seeded vectors are the same on
/// every run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a value uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn vector(&mut self, dimension: usize) -> Vec<f32> {
        (0..dimension).map(|_| self.unit()).collect()
    }
}

fn normalized(vector: &[f32]) -> Vec<f32> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    vector.iter().map(|x| x / norm).collect()
}

const TYPES: [&str; 4] = ["wood", "stone", "metal", "fabric"];
const TAGS: [&str; 3] = ["matte", "glossy", "textured"];

#[test]
fn pgvector_recall_at_10_against_exact() {
    let Some(env) = Env::without_models(Backend::Postgres) else {
        return;
    };
    const MATERIALS: usize = 5000;
    const DIMENSION: usize = 96;
    const QUERIES: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = open_synthetic(&env, dir.path());
    let mut random = SplitMix(7);
    let mut seeded = Vec::with_capacity(MATERIALS);
    for chunk in 0..MATERIALS / 1000 {
        let batch: Vec<EmbeddedMaterial> = (0..1000)
            .map(|i| {
                let n = chunk * 1000 + i;
                let material_type = TYPES[n % TYPES.len()];
                let tag = TAGS[(n / TYPES.len()) % TAGS.len()];
                EmbeddedMaterial {
                    record: record(&format!("m{n:05}"), material_type, &[tag], &[]),
                    text_vector: random.vector(DIMENSION),
                    image_vectors: Vec::new(),
                    expected: ExpectedVersion::Any,
                }
            })
            .collect();
        for (material, stored) in batch
            .iter()
            .zip(catalog.put_embedded(&batch, &photos()).unwrap())
        {
            seeded.push((
                stored.key,
                normalized(&material.text_vector),
                stored.material_type,
                stored.tags,
            ));
        }
    }

    let filters = [
        None,
        Some(Filter {
            material_type: Some("stone".into()),
            ..Filter::default()
        }),
        Some(Filter {
            material_type: Some("metal".into()),
            tags: vec!["glossy".into()],
            ..Filter::default()
        }),
    ];
    let (mut found, mut wanted) = (0usize, 0usize);
    for filter in &filters {
        let (mut filter_found, mut filter_wanted) = (0usize, 0usize);
        for _ in 0..QUERIES {
            let query = random.vector(DIMENSION);
            let unit = normalized(&query);
            let mut exact: Vec<(f32, u64)> = seeded
                .iter()
                .filter(|(_, _, material_type, tags)| {
                    filter.as_ref().is_none_or(|f| {
                        f.material_type.as_ref().is_none_or(|t| t == material_type)
                            && f.tags.iter().all(|t| tags.contains(t))
                    })
                })
                .map(|(key, vector, _, _)| {
                    let score: f32 = vector.iter().zip(&unit).map(|(a, b)| a * b).sum();
                    (score, *key)
                })
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            let truth: BTreeSet<u64> = exact.iter().take(10).map(|(_, key)| *key).collect();

            let approximate = catalog
                .text_index()
                .search(&query, 10, filter.as_ref())
                .unwrap();
            assert_eq!(approximate.len(), 10, "filter {filter:?}");
            let exact_hits = catalog
                .text_index()
                .search_exact(&query, 10, filter.as_ref())
                .unwrap();
            let exact_keys: BTreeSet<u64> = exact_hits.iter().map(|h| h.id).collect();
            assert_eq!(exact_keys, truth, "exact search, filter {filter:?}");
            filter_found += approximate.iter().filter(|h| truth.contains(&h.id)).count();
            filter_wanted += truth.len();
        }
        println!(
            "recall@10 with filter {filter:?}: {:.3}",
            filter_found as f64 / filter_wanted as f64
        );
        found += filter_found;
        wanted += filter_wanted;
    }
    let recall = found as f64 / wanted as f64;
    println!(
        "pgvector HNSW recall@10 against exact search: {recall:.3} ({MATERIALS} vectors of \
         {DIMENSION} dimensions, {} queries with and without filters)",
        QUERIES * filters.len()
    );
    assert!(recall >= 0.9, "recall@10 {recall:.3}");
}

#[test]
fn concurrent_writers_lose_no_update() {
    let Some(env) = Env::without_models(Backend::Postgres) else {
        return;
    };
    const THREADS: usize = 4;
    const ROUNDS: usize = 15;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let mut first = open_synthetic(&env, &root);
    let seed = |id: &str| EmbeddedMaterial {
        record: record(id, "wood", &[], &[]),
        text_vector: vec![1.0, 0.0, 0.0],
        image_vectors: Vec::new(),
        expected: ExpectedVersion::Absent,
    };
    first
        .put_embedded(&[seed("shared"), seed("contested")], &photos())
        .unwrap();

    let env = Arc::new(env);
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (env, barrier, root) = (Arc::clone(&env), Arc::clone(&barrier), root.clone());
            std::thread::spawn(move || {
                let mut catalog = open_synthetic(&env, &root);
                let mut accepted = Vec::new();
                let mut conflicts = 0;
                barrier.wait();
                for round in 0..ROUNDS {
                    let vector = vec![thread as f32 + 1.0, round as f32, 1.0];
                    let own = EmbeddedMaterial {
                        record: record(&format!("t{thread}-{round}"), "stone", &[], &[]),
                        text_vector: vector.clone(),
                        image_vectors: Vec::new(),
                        expected: ExpectedVersion::Absent,
                    };
                    catalog.put_embedded(&[own], &photos()).unwrap();

                    // Every write of `shared` replaces whatever is there, so all succeed.
                    let mut shared = record("shared", "wood", &[], &[]);
                    shared.name = format!("shared by {thread} in {round}");
                    let write = EmbeddedMaterial {
                        record: shared,
                        text_vector: vector.clone(),
                        image_vectors: Vec::new(),
                        expected: ExpectedVersion::Any,
                    };
                    catalog.put_embedded(&[write], &photos()).unwrap();
                    accepted.push(format!("shared by {thread} in {round}"));

                    // Writes of `contested` expect the version read just before, so a
                    // concurrent writer makes them stale.
                    let version = catalog.get("contested").unwrap().unwrap().version;
                    let mut contested = record("contested", "wood", &[], &[]);
                    contested.name = format!("contested by {thread} in {round}");
                    let write = EmbeddedMaterial {
                        record: contested,
                        text_vector: vector,
                        image_vectors: Vec::new(),
                        expected: ExpectedVersion::Exactly(version),
                    };
                    match catalog.put_embedded(&[write], &photos()) {
                        Ok(stored) => {
                            assert_eq!(stored[0].version, version + 1);
                            accepted.push(format!("contested by {thread} in {round}"));
                        }
                        Err(err) => {
                            assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
                            conflicts += 1;
                        }
                    }
                }
                (accepted, conflicts)
            })
        })
        .collect();
    let mut accepted: HashMap<String, usize> = HashMap::new();
    let mut conflicts = 0;
    for handle in handles {
        let (names, thread_conflicts) = handle.join().unwrap();
        for name in names {
            *accepted.entry(name).or_default() += 1;
        }
        conflicts += thread_conflicts;
    }
    println!("contested writes rejected as stale: {conflicts}");

    let catalog = open_synthetic(&env, &root);
    assert_eq!(catalog.storage().count().unwrap(), THREADS * ROUNDS + 2);
    assert_eq!(catalog.text_index().len().unwrap(), THREADS * ROUNDS + 2);
    for id in ["shared", "contested"] {
        let history = catalog.history(id).unwrap();
        let versions: Vec<u32> = history.iter().map(|v| v.version).collect();
        let expected: Vec<u32> = (1..=history.len() as u32).collect();
        assert_eq!(versions, expected, "{id}: versions are consecutive");
        // Every accepted write is in the history exactly once, and nothing else is.
        let mut written: HashMap<String, usize> = HashMap::new();
        for version in &history[1..] {
            let name = version.record["name"].as_str().unwrap().to_owned();
            *written.entry(name).or_default() += 1;
        }
        let accepted_here: HashMap<String, usize> = accepted
            .iter()
            .filter(|(name, _)| name.starts_with(id))
            .map(|(name, count)| (name.clone(), *count))
            .collect();
        assert_eq!(written, accepted_here, "{id}");
        let current = catalog.get(id).unwrap().unwrap();
        assert_eq!(current.version as usize, history.len());
        assert_eq!(
            current.name,
            history.last().unwrap().record["name"].as_str().unwrap()
        );
    }
    assert_eq!(
        catalog.history("shared").unwrap().len(),
        THREADS * ROUNDS + 1
    );
    assert_eq!(
        catalog.history("contested").unwrap().len() + conflicts,
        THREADS * ROUNDS + 1
    );
}

#[test]
fn concurrent_bulk_loads_take_turns() {
    let Some(env) = Env::without_models(Backend::Postgres) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let env = Arc::new(env);
    let barrier = Arc::new(Barrier::new(2));
    // Batches this large into a small space rebuild its index instead of inserting.
    let handles: Vec<_> = (0..2)
        .map(|thread| {
            let (env, barrier, root) = (Arc::clone(&env), Arc::clone(&barrier), root.clone());
            std::thread::spawn(move || {
                let mut catalog = open_synthetic(&env, &root);
                let mut random = SplitMix(thread);
                let batch: Vec<EmbeddedMaterial> = (0..1000)
                    .map(|i| EmbeddedMaterial {
                        record: record(&format!("t{thread}-{i}"), TYPES[i % 4], &[], &[]),
                        text_vector: random.vector(16),
                        image_vectors: Vec::new(),
                        expected: ExpectedVersion::Absent,
                    })
                    .collect();
                barrier.wait();
                catalog.put_embedded(&batch, &photos()).unwrap().len()
            })
        })
        .collect();
    let stored: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(stored, 2000);
    let catalog = open_synthetic(&env, &root);
    assert_eq!(catalog.storage().count().unwrap(), 2000);
    assert_eq!(catalog.text_index().len().unwrap(), 2000);
    let query = SplitMix(9).vector(16);
    let hits = catalog.text_index().search(&query, 10, None).unwrap();
    assert_eq!(hits.len(), 10);
}

#[test]
fn copy_from_an_embedded_store() {
    let Some(sqlite) = Env::new(Backend::Sqlite) else {
        return;
    };
    let Some(postgres) = Env::new(Backend::Postgres) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("catalog");
    write_catalog(&folder, &records());
    let store = dir.path().join("store");
    let mut source = sqlite.open(&store);
    source.import(&folder, &mut |_| {}).unwrap();
    let mut changed = records();
    changed[1]["description"] = serde_json::json!("Glazed porcelain espresso cup");
    write_catalog(&folder, &changed);
    source.import(&folder, &mut |_| {}).unwrap();
    assert!(source.delete("launch-steel").unwrap());

    let url = postgres.database.as_ref().unwrap().url.clone();
    let pool = PgPool::open(&url).unwrap();
    let report = copy_to_postgres(&source, &pool).unwrap();
    assert_eq!(report.materials, 3);
    assert_eq!(report.images, 3);
    assert_eq!(report.text_vectors, 3);
    assert_eq!(report.image_vectors, 3);
    assert_eq!(report.versions, 6);

    // A second copy finds the materials and refuses.
    let err = copy_to_postgres(&source, &pool).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("already has 3 materials"), "{err}");

    let copy = Catalog::with_pool(postgres.options(&store), pool).unwrap();
    assert_eq!(copy.image_index().model(), source.image_index().model());
    assert_eq!(copy.text_index().model(), source.text_index().model());
    for id in ["tabby-fur", "espresso-ceramic", "launch-steel", "red-brick"] {
        assert_eq!(copy.get(id).unwrap(), source.get(id).unwrap(), "{id}");
        assert_eq!(
            copy.history(id).unwrap(),
            source.history(id).unwrap(),
            "{id}"
        );
    }

    let ids = |hits: Vec<kai_core::catalog::SearchHit>| -> BTreeSet<String> {
        hits.into_iter().map(|h| h.id).collect()
    };
    for text in ["porcelain cup", "brick wall", "striped fur"] {
        let query = SearchQuery {
            text: Some(text.into()),
            top_k: 10,
            ..SearchQuery::default()
        };
        assert_eq!(
            ids(copy.search(&query).unwrap()),
            ids(source.search(&query).unwrap()),
            "{text}"
        );
    }
    let brick = open(&photos().join("brick.png"), &ImageLimits::default()).unwrap();
    let recognized = |catalog: &Catalog| -> BTreeSet<String> {
        let result = catalog
            .recognize(&brick, &RecognizeOptions::default())
            .unwrap();
        assert_eq!(result.materials[0].id, "red-brick");
        result.materials.into_iter().map(|m| m.id).collect()
    };
    assert_eq!(recognized(&copy), recognized(&source));

    // New records continue after the copied keys.
    let mut copy = copy;
    let report = copy.import(&folder, &mut |_| {}).unwrap();
    assert_eq!(report.created, ["launch-steel"], "{report:?}");
    assert_eq!(report.unchanged.len(), 3, "{report:?}");
    let recreated = copy.get("launch-steel").unwrap().unwrap();
    assert_eq!(recreated.version, 3);
    assert!(copy.get("red-brick").unwrap().unwrap().key < recreated.key);
}

#[test]
fn handles_see_each_others_writes() {
    let Some(env) = Env::without_models(Backend::Postgres) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Both handles open before anything is stored, as two server processes would.
    let mut writer = open_synthetic(&env, dir.path());
    let reader = open_synthetic(&env, dir.path());
    assert!(reader.get("oak").unwrap().is_none());
    let material = EmbeddedMaterial {
        record: record("oak", "wood", &["brown"], &[]),
        text_vector: vec![1.0, 0.0, 0.0, 0.0],
        image_vectors: Vec::new(),
        expected: ExpectedVersion::Any,
    };
    writer.put_embedded(&[material], &photos()).unwrap();

    assert_eq!(reader.get("oak").unwrap().unwrap().version, 1);
    assert_eq!(reader.text_index().len().unwrap(), 1);
    assert_eq!(reader.text_index().dimension().unwrap(), Some(4));
    let hits = reader
        .text_index()
        .search(&[1.0, 0.0, 0.0, 0.0], 5, None)
        .unwrap();
    assert_eq!(hits.len(), 1);
    let stored = reader.storage().get_by_key(hits[0].id).unwrap().unwrap();
    assert_eq!(stored.id, "oak");

    writer.delete("oak").unwrap();
    assert!(reader.get("oak").unwrap().is_none());
    assert!(
        reader
            .text_index()
            .search(&[1.0, 0.0, 0.0, 0.0], 5, None)
            .unwrap()
            .is_empty()
    );
}
