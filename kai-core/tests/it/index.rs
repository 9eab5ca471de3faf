//! Vector index: HNSW recall against exact search, filters, updates, persistence and
//! input checks.

use std::collections::HashSet;
use std::path::Path;

use kai_core::ErrorKind;
use kai_core::index::{Filter, HnswConfig, IndexConfig, Metadata, Metric, VectorIndex};

const DIMENSION: usize = 64;

/// A seeded xorshift64* generator with Box-Muller normals, so the data is the same on
/// every run.
struct Generator(u64);

impl Generator {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

/// Returns `count` row-major vectors around 64 random centres, the clustered shape of
/// embeddings. The centres are the same for every seed, so queries drawn with another
/// seed come from the same distribution as the indexed vectors.
fn clustered(count: usize, seed: u64) -> Vec<f32> {
    let mut centre_generator = Generator(0x00c0_ffee);
    let centres: Vec<f32> = (0..64 * DIMENSION)
        .map(|_| centre_generator.normal())
        .collect();
    let mut generator = Generator(seed);
    let mut vectors = Vec::with_capacity(count * DIMENSION);
    for _ in 0..count {
        let centre = (generator.next_u64() % 64) as usize;
        for d in 0..DIMENSION {
            vectors.push(centres[centre * DIMENSION + d] + 0.5 * generator.normal());
        }
    }
    vectors
}

/// Returns the metadata of vector `id`: one of 10 collections, one of 3 material types,
/// the tag `even` on every second id and the tag `rare` on 1 in 100.
fn metadata_of(id: u64) -> Metadata {
    let mut tags = vec![format!("batch-{}", id % 7)];
    if id.is_multiple_of(2) {
        tags.push("even".to_owned());
    }
    if id % 100 == 3 {
        tags.push("rare".to_owned());
    }
    Metadata {
        material_type: Some(["wood", "stone", "tile"][(id % 3) as usize].to_owned()),
        collection: Some(format!("collection-{}", id % 10)),
        tags,
    }
}

fn build(metric: Metric, count: usize, config: IndexConfig) -> VectorIndex {
    let vectors = clustered(count, 42);
    let ids: Vec<u64> = (0..count as u64).collect();
    let metadata: Vec<Metadata> = ids.iter().map(|&id| metadata_of(id)).collect();
    let mut index = VectorIndex::new(DIMENSION, metric, config).unwrap();
    index.upsert_batch(&ids, &vectors, Some(&metadata)).unwrap();
    index
}

fn hnsw(count: usize, metric: Metric) -> VectorIndex {
    let config = HnswConfig {
        ef_construction: 100,
        ..HnswConfig::default()
    };
    build(metric, count, IndexConfig::hnsw(config))
}

fn ids(hits: &[kai_core::index::Hit]) -> Vec<u64> {
    hits.iter().map(|hit| hit.id).collect()
}

/// Returns the share of the exact top-k ids that the approximate searches found.
fn recall(index: &VectorIndex, queries: &[f32], k: usize, filter: Option<&Filter>) -> f64 {
    let approximate = index.search_batch(queries, k, filter).unwrap();
    let exact = index.search_exact_batch(queries, k, filter).unwrap();
    let mut found = 0;
    let mut total = 0;
    for (approximate, exact) in approximate.iter().zip(&exact) {
        let truth: HashSet<u64> = ids(exact).into_iter().collect();
        found += approximate
            .iter()
            .filter(|hit| truth.contains(&hit.id))
            .count();
        total += truth.len();
    }
    found as f64 / total as f64
}

#[test]
fn hnsw_recall_at_10_for_each_metric() {
    let queries = clustered(200, 7);
    for metric in Metric::ALL {
        let index = hnsw(20_000, metric);
        assert_eq!(index.len(), 20_000);
        let recall = recall(&index, &queries, 10, None);
        assert!(recall >= 0.95, "{metric}: recall@10 {recall:.3}");
    }
}

#[test]
fn filtered_search_returns_only_matches() {
    let index = hnsw(20_000, Metric::Cosine);
    let queries = clustered(100, 8);
    // At 20,000 vectors with ef_search 64 and m 16, filters that can match more than
    // 6,400 vectors walk the graph and the others scan the matches.
    let filters = [
        Filter {
            tags: vec!["even".into()],
            ..Filter::default()
        },
        Filter {
            material_type: Some("wood".into()),
            ..Filter::default()
        },
        Filter {
            collection: Some("collection-4".into()),
            ..Filter::default()
        },
        Filter {
            tags: vec!["rare".into()],
            ..Filter::default()
        },
        // Two conditions, about 3.3 %.
        Filter {
            material_type: Some("stone".into()),
            collection: Some("collection-1".into()),
            ..Filter::default()
        },
    ];
    for filter in &filters {
        for hits in index.search_batch(&queries, 10, Some(filter)).unwrap() {
            assert_eq!(hits.len(), 10, "{filter:?}");
            for hit in &hits {
                let metadata = index.get(hit.id).unwrap().metadata;
                assert!(filter.matches(&metadata), "{filter:?} returned {}", hit.id);
            }
        }
        let recall = recall(&index, &queries, 10, Some(filter));
        assert!(recall >= 0.95, "{filter:?}: recall@10 {recall:.3}");
    }
    let nothing = Filter {
        tags: vec!["no-such-tag".into()],
        ..Filter::default()
    };
    assert!(
        index
            .search(&queries[..DIMENSION], 10, Some(&nothing))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn upsert_replaces_vector_and_metadata() {
    for config in [IndexConfig::exact(), IndexConfig::default()] {
        let mut index = build(Metric::L2, 500, config);
        let target: Vec<f32> = vec![100.0; DIMENSION];
        let tagged = Metadata {
            tags: vec!["moved".into()],
            ..Metadata::default()
        };
        index.upsert(17, &target, tagged.clone()).unwrap();

        assert_eq!(index.len(), 500);
        assert_eq!(index.get(17).unwrap().vector, &target[..]);
        assert_eq!(index.get(17).unwrap().metadata, tagged);
        let hits = index.search(&target, 1, None).unwrap();
        assert_eq!(hits[0].id, 17);
        assert_eq!(hits[0].score, 0.0);
        let old_collection = Filter {
            collection: Some("collection-7".into()),
            ..Filter::default()
        };
        let hits = index
            .search_exact(&target, 500, Some(&old_collection))
            .unwrap();
        assert!(!ids(&hits).contains(&17));
    }
}

#[test]
fn remove_hides_vector_and_compaction_keeps_results() {
    let mut index = build(Metric::InnerProduct, 2_000, IndexConfig::default());
    let query = index.get(5).unwrap().vector.to_vec();
    assert_eq!(index.search(&query, 1, None).unwrap()[0].id, 5);

    assert!(index.remove(5));
    assert!(!index.remove(5));
    assert!(index.get(5).is_none());
    assert_eq!(index.len(), 1_999);
    assert_eq!(index.deleted_count(), 1);
    for hits in [
        index.search(&query, 50, None).unwrap(),
        index.search_exact(&query, 50, None).unwrap(),
    ] {
        assert!(!ids(&hits).contains(&5));
    }

    // The default configuration compacts when more than a quarter of the slots are
    // tombstones: the 501st removal of 2,000.
    for id in 0..500 {
        index.remove(id);
    }
    assert_eq!(index.deleted_count(), 500);
    index.remove(500);
    assert_eq!(index.len(), 1_499);
    assert_eq!(index.deleted_count(), 0, "compaction ran");
    let queries = clustered(50, 9);
    assert!(recall(&index, &queries, 10, None) >= 0.95);
    let hits = index.search_exact(&query, 1_499, None).unwrap();
    assert_eq!(hits.len(), 1_499);
    assert!(hits.iter().all(|hit| hit.id > 500));
}

#[test]
fn exact_and_hnsw_batches_equal_single_searches() {
    let queries = clustered(20, 10);
    let filter = Filter {
        collection: Some("collection-2".into()),
        ..Filter::default()
    };
    for config in [IndexConfig::exact(), IndexConfig::default()] {
        let index = build(Metric::Cosine, 3_000, config);
        for filter in [None, Some(&filter)] {
            let batch = index.search_batch(&queries, 7, filter).unwrap();
            for (query, hits) in queries.chunks_exact(DIMENSION).zip(&batch) {
                assert_eq!(*hits, index.search(query, 7, filter).unwrap());
            }
        }
    }
}

#[test]
fn save_load_round_trip_gives_identical_results() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("space.kvi");
    let mut index = build(Metric::Cosine, 3_000, IndexConfig::default())
        .with_model("all-minilm-l6-v2")
        .unwrap();
    for id in [3, 30, 300] {
        index.remove(id);
    }
    index.set_ef_search(40).unwrap();
    index.save(&path).unwrap();
    let mut loaded = VectorIndex::load(&path).unwrap();

    assert_eq!(loaded.model(), "all-minilm-l6-v2");
    assert_eq!(loaded.config(), index.config());
    assert_eq!(loaded.len(), index.len());
    assert_eq!(loaded.deleted_count(), 3);
    assert_eq!(loaded.get(7), index.get(7));
    let queries = clustered(30, 11);
    let filter = Filter {
        collection: Some("collection-3".into()),
        ..Filter::default()
    };
    for filter in [None, Some(&filter)] {
        assert_eq!(
            loaded.search_batch(&queries, 10, filter).unwrap(),
            index.search_batch(&queries, 10, filter).unwrap()
        );
    }

    // The level generator's state is saved too, so later inserts link the same way.
    let more = clustered(200, 12);
    let more_ids: Vec<u64> = (10_000..10_200).collect();
    index.upsert_batch(&more_ids, &more, None).unwrap();
    loaded.upsert_batch(&more_ids, &more, None).unwrap();
    assert_eq!(
        loaded.search_batch(&queries, 10, None).unwrap(),
        index.search_batch(&queries, 10, None).unwrap()
    );
    let exact = VectorIndex::new(4, Metric::L2, IndexConfig::exact()).unwrap();
    exact.save(&path).unwrap();
    assert_eq!(
        VectorIndex::load(&path).unwrap().config(),
        &IndexConfig::exact()
    );
}

/// Saves a small index and returns the file's bytes.
fn saved_bytes(folder: &Path) -> Vec<u8> {
    let path = folder.join("good.kvi");
    build(Metric::L2, 300, IndexConfig::default())
        .save(&path)
        .unwrap();
    std::fs::read(&path).unwrap()
}

/// Writes `bytes` and returns the message of loading them, which must fail as a storage
/// error naming the file.
fn load_error(folder: &Path, bytes: &[u8]) -> String {
    let path = folder.join("bad.kvi");
    std::fs::write(&path, bytes).unwrap();
    let err = VectorIndex::load(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
    let message = err.to_string();
    assert!(message.contains("bad.kvi"), "{message}");
    message
}

#[test]
fn corrupt_files_are_rejected_with_reasons() {
    let folder = tempfile::tempdir().unwrap();
    let good = saved_bytes(folder.path());

    let truncated = load_error(folder.path(), &good[..good.len() / 2]);
    assert!(truncated.contains("truncated"), "{truncated}");
    let header_only = load_error(folder.path(), &good[..20]);
    assert!(
        header_only.contains("too short") || header_only.contains("truncated"),
        "{header_only}"
    );

    let mut flipped = good.clone();
    flipped[good.len() / 3] ^= 0x10;
    let checksum = load_error(folder.path(), &flipped);
    assert!(checksum.contains("checksum"), "{checksum}");

    let mut magic = good.clone();
    magic[..8].copy_from_slice(b"NOTANIDX");
    let magic = load_error(folder.path(), &magic);
    assert!(magic.contains("not a kai vector index"), "{magic}");

    let mut version = good.clone();
    version[8..12].copy_from_slice(&99u32.to_le_bytes());
    let version = load_error(folder.path(), &version);
    assert!(version.contains("format version 99"), "{version}");

    // The slot count sits at byte 52, after the fixed-size configuration.
    let mut absurd = good.clone();
    absurd[52..60].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let absurd = load_error(folder.path(), &absurd);
    assert!(
        absurd.contains("slot count 1099511627776 exceeds"),
        "{absurd}"
    );
    let mut large = good.clone();
    large[52..60].copy_from_slice(&4_000_000u64.to_le_bytes());
    large[60..68].copy_from_slice(&0u64.to_le_bytes());
    let large = load_error(folder.path(), &large);
    assert!(large.contains("the vectors need"), "{large}");

    let missing = VectorIndex::load(folder.path().join("missing.kvi")).unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::Storage);
}

#[test]
fn save_replaces_file_atomically() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("space.kvi");
    build(Metric::L2, 100, IndexConfig::exact())
        .save(&path)
        .unwrap();
    build(Metric::L2, 200, IndexConfig::exact())
        .save(&path)
        .unwrap();
    assert_eq!(VectorIndex::load(&path).unwrap().len(), 200);
    let leftovers: Vec<_> = std::fs::read_dir(folder.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "temporary files remain: {leftovers:?}");

    let unwritable = folder.path().join("no-such-folder").join("space.kvi");
    let err = build(Metric::L2, 10, IndexConfig::exact())
        .save(&unwritable)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage);
}

#[test]
fn invalid_inputs_name_the_value() {
    let mut index = VectorIndex::new(4, Metric::Cosine, IndexConfig::default()).unwrap();

    let err = index
        .upsert(1, &[1.0, 2.0, 3.0], Metadata::default())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let message = err.to_string();
    assert!(
        message.contains("3 components") && message.contains("dimension is 4"),
        "{message}"
    );

    let message = index
        .upsert(1, &[1.0, 2.0, f32::NAN, 0.0], Metadata::default())
        .unwrap_err()
        .to_string();
    assert!(message.contains("component 2 is NaN"), "{message}");
    let message = index
        .upsert(1, &[0.0; 4], Metadata::default())
        .unwrap_err()
        .to_string();
    assert!(message.contains("zero length"), "{message}");
    assert!(index.is_empty(), "rejected vectors must not be stored");

    let message = index.search(&[1.0; 5], 3, None).unwrap_err().to_string();
    assert!(
        message.contains("query") && message.contains("5 components"),
        "{message}"
    );
    let message = index.search(&[1.0; 4], 0, None).unwrap_err().to_string();
    assert!(
        message.contains("k") && message.contains("at least 1"),
        "{message}"
    );
    let message = index
        .search(&[1.0; 4], 10_000_000, None)
        .unwrap_err()
        .to_string();
    assert!(message.contains("10000000 exceeds"), "{message}");
    let message = index
        .search_batch(&[1.0, 1.0, 1.0, 1.0, 1.0, f32::INFINITY, 1.0, 1.0], 3, None)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("queries[1]") && message.contains("component 1 is inf"),
        "{message}"
    );
    let message = index
        .upsert_batch(&[1, 1], &[1.0; 8], None)
        .unwrap_err()
        .to_string();
    assert!(message.contains("id 1 appears more than once"), "{message}");

    let message = VectorIndex::new(0, Metric::L2, IndexConfig::exact())
        .unwrap_err()
        .to_string();
    assert!(message.contains("dimension"), "{message}");
    let mut exact = VectorIndex::new(4, Metric::L2, IndexConfig::exact()).unwrap();
    let message = exact.set_ef_search(10).unwrap_err().to_string();
    assert!(message.contains("ef_search"), "{message}");
}

#[test]
fn empty_index_returns_no_hits() {
    for config in [IndexConfig::exact(), IndexConfig::default()] {
        let index = VectorIndex::new(3, Metric::L2, config).unwrap();
        assert!(index.search(&[1.0, 2.0, 3.0], 5, None).unwrap().is_empty());
        assert_eq!(
            index.search_batch(&[0.0; 6], 5, None).unwrap(),
            vec![vec![], vec![]]
        );
        let filter = Filter {
            tags: vec!["x".into()],
            ..Filter::default()
        };
        assert!(
            index
                .search_exact(&[1.0, 2.0, 3.0], 5, Some(&filter))
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn scores_are_higher_for_better_matches() {
    let query = [1.0, 0.0];
    for metric in Metric::ALL {
        let mut index = VectorIndex::new(2, metric, IndexConfig::exact()).unwrap();
        index.upsert(1, &[2.0, 0.0], Metadata::default()).unwrap();
        index.upsert(2, &[0.0, 1.0], Metadata::default()).unwrap();
        let hits = index.search(&query, 2, None).unwrap();
        assert_eq!(ids(&hits), [1, 2], "{metric}");
        assert!(hits[0].score > hits[1].score, "{metric}");
        let expected = match metric {
            Metric::Cosine => 1.0,
            Metric::InnerProduct => 2.0,
            Metric::L2 => -1.0,
        };
        assert_eq!(hits[0].score, expected, "{metric}");
    }
}
