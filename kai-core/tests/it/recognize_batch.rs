//! Batch recognition and the model cache with real models. A batch gives each photo what
//! a recognition of that photo alone gives. The cache loads each model once and evicts
//! the least recently used, and a catalog can take its models from the cache.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kai_core::catalog::{Catalog, StoreOptions};
use kai_core::image::{ImageLimits, RgbImage, open};
use kai_core::models::{
    CacheEvent, DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, Manifest, ModelCache, ModelState, verify,
};
use kai_core::recognize::RecognizeOptions;
use kai_core::{Device, ErrorKind, ModelStore};

/// Records of the sample catalog imported by these tests; enough for several types.
const RECORDS: usize = 12;

fn models() -> Option<ModelStore> {
    let store = ModelStore::from_env();
    for name in [DEFAULT_TEXT_MODEL, DEFAULT_IMAGE_MODEL] {
        let manifest = Manifest::find(name).unwrap();
        if verify(&manifest, &store.folder(name)).ok() != Some(ModelState::Ready) {
            eprintln!("skipped: {name} is not fetched; run `python3 models/fetch.py` first");
            return None;
        }
    }
    Some(store)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn photo(name: &str) -> RgbImage {
    open(
        &repo().join("examples/queries").join(name),
        &ImageLimits::default(),
    )
    .unwrap()
}

/// Imports the first records of the sample catalog into a new store in `dir`.
fn small_catalog(dir: &Path, models: ModelStore) -> Catalog {
    let sample = repo().join("examples/catalog");
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(sample.join("catalog.json")).unwrap())
            .unwrap();
    let source = dir.join("source");
    std::fs::create_dir_all(&source).unwrap();
    std::os::unix::fs::symlink(sample.join("images"), source.join("images")).unwrap();
    let subset = &records[..RECORDS.min(records.len())];
    std::fs::write(
        source.join("catalog.json"),
        serde_json::to_string(subset).unwrap(),
    )
    .unwrap();
    let mut catalog =
        Catalog::open(StoreOptions::new(dir.join("store"), models, Device::Cpu)).unwrap();
    let report = catalog.import(&source, &mut |_| {}).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    catalog
}

#[test]
fn batch_matches_single_recognitions() {
    let Some(models) = models() else { return };
    let dir = tempfile::tempdir().unwrap();
    let catalog = small_catalog(dir.path(), models);
    let names = [
        "altered-red-brown-plank-floor.jpg",
        "heldout-cracked-grey-rock.jpg",
    ];
    let tiny = RgbImage::new(32, 32);
    let images = vec![photo(names[0]), tiny, photo(names[1])];
    let options = RecognizeOptions {
        top_k: 4,
        hint: Some("wooden floor".into()),
        ..Default::default()
    };
    let results = catalog.recognize_batch(&images, &options).unwrap();
    assert_eq!(results.len(), 3);

    let err = results[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("32×32"), "{err}");

    for index in [0, 2] {
        let batched = results[index].as_ref().unwrap();
        let alone = catalog.recognize(&images[index], &options).unwrap();
        let ids = |r: &kai_core::recognize::Recognition| -> Vec<String> {
            r.materials.iter().map(|m| m.id.clone()).collect()
        };
        assert_eq!(ids(batched), ids(&alone), "photo {index}");
        for (a, b) in batched.materials.iter().zip(&alone.materials) {
            assert!(
                (a.score - b.score).abs() < 1e-4,
                "{} vs {}",
                a.score,
                b.score
            );
        }
        assert_eq!(batched.classes.len(), alone.classes.len());
        for (a, b) in batched.classes.iter().zip(&alone.classes) {
            assert_eq!(a.material_type, b.material_type);
            assert!((a.confidence - b.confidence).abs() < 1e-4);
        }
        assert_eq!(batched.unknown, alone.unknown);
        assert_eq!(batched.classified_by, alone.classified_by);
        assert_eq!(batched.quality, alone.quality);
        assert!(batched.processing_time_ms > 0.0);
    }
}

#[test]
fn batch_errors_and_empty_batches() {
    let Some(models) = models() else { return };
    let dir = tempfile::tempdir().unwrap();
    let empty = Catalog::open(StoreOptions::new(dir.path(), models, Device::Cpu)).unwrap();
    let options = RecognizeOptions::default();

    assert!(empty.recognize_batch(&[], &options).unwrap().is_empty());

    // A photo below the minimum resolution gets its own error even with no catalog images
    // to compare with. A valid photo then fails the whole batch.
    let tiny = [RgbImage::new(8, 8)];
    let results = empty.recognize_batch(&tiny, &options).unwrap();
    assert_eq!(
        results[0].as_ref().unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let valid = [photo("heldout-blue-field-rug.jpg")];
    let err = empty.recognize_batch(&valid, &options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    let invalid = RecognizeOptions {
        top_k: 0,
        ..Default::default()
    };
    let err = empty.recognize_batch(&valid, &invalid).unwrap_err();
    assert!(err.to_string().contains("top_k"), "{err}");
}

#[test]
fn cache_evicts_least_recently_used() {
    let Some(models) = models() else { return };
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&events);
    let cache = ModelCache::new(models, Device::Cpu, 1)
        .unwrap()
        .with_observer(Arc::new(move |event: &CacheEvent<'_>| {
            let line = match *event {
                CacheEvent::Hit { name } => format!("hit {name}"),
                CacheEvent::Miss { name } => format!("miss {name}"),
                CacheEvent::Loaded { name, count, .. } => format!("loaded {name} {count}"),
                CacheEvent::Removed {
                    name,
                    evicted,
                    count,
                } => format!("removed {name} evicted={evicted} {count}"),
            };
            sink.lock().unwrap().push(line);
        }));

    let first = cache.text(DEFAULT_TEXT_MODEL).unwrap();
    let again = cache.text("ALL-MINILM-L6-V2").unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "a hit returns the loaded model"
    );
    assert_eq!(cache.loaded()[0].hits, 1);
    assert!(cache.loaded()[0].load_seconds > 0.0);

    let image = cache.image(DEFAULT_IMAGE_MODEL).unwrap();
    assert_eq!(image.name(), DEFAULT_IMAGE_MODEL);
    let names: Vec<String> = cache.loaded().into_iter().map(|m| m.name).collect();
    assert_eq!(names, [DEFAULT_IMAGE_MODEL]);
    // An evicted model stays usable through the references callers still keep.
    assert_eq!(first.embed_one("oak").unwrap().len(), 384);

    let err = cache.text(DEFAULT_IMAGE_MODEL).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(cache.unload(DEFAULT_IMAGE_MODEL).unwrap());
    assert!(cache.is_empty());
    assert!(cache.get(DEFAULT_IMAGE_MODEL).unwrap().is_none());

    let events = events.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            format!("miss {DEFAULT_TEXT_MODEL}"),
            format!("loaded {DEFAULT_TEXT_MODEL} 1"),
            format!("hit {DEFAULT_TEXT_MODEL}"),
            format!("miss {DEFAULT_IMAGE_MODEL}"),
            format!("loaded {DEFAULT_IMAGE_MODEL} 1"),
            format!("removed {DEFAULT_TEXT_MODEL} evicted=true 1"),
            format!("hit {DEFAULT_IMAGE_MODEL}"),
            format!("removed {DEFAULT_IMAGE_MODEL} evicted=false 0"),
        ]
    );
}

#[test]
fn concurrent_lookups_count_one_miss() {
    let Some(models) = models() else { return };
    let misses = Arc::new(Mutex::new(0_usize));
    let hits = Arc::new(Mutex::new(0_usize));
    let (miss_sink, hit_sink) = (Arc::clone(&misses), Arc::clone(&hits));
    let cache = ModelCache::new(models, Device::Cpu, 2)
        .unwrap()
        .with_observer(Arc::new(move |event: &CacheEvent<'_>| match event {
            CacheEvent::Miss { .. } => *miss_sink.lock().unwrap() += 1,
            CacheEvent::Hit { .. } => *hit_sink.lock().unwrap() += 1,
            _ => {}
        }));

    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| cache.text(DEFAULT_TEXT_MODEL).unwrap());
        }
    });
    // One caller loads the model; the others find it loaded, before or after waiting.
    assert_eq!(*misses.lock().unwrap(), 1);
    assert_eq!(*hits.lock().unwrap(), 3);
}

#[test]
fn catalog_takes_models_from_the_cache() {
    let Some(models) = models() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut catalog =
        Catalog::open(StoreOptions::new(dir.path(), models.clone(), Device::Cpu)).unwrap();
    let elsewhere = ModelCache::new(ModelStore::new(dir.path()), Device::Cpu, 2).unwrap();
    let err = catalog.use_model_cache(Arc::new(elsewhere)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    let cache = Arc::new(ModelCache::new(models, Device::Cpu, 2).unwrap());
    catalog.use_model_cache(Arc::clone(&cache)).unwrap();
    let from_catalog = catalog.text_embedder().unwrap();
    let from_cache = cache.text(DEFAULT_TEXT_MODEL).unwrap();
    assert!(Arc::ptr_eq(&from_catalog, &from_cache));
    assert_eq!(cache.len(), 1);
}
