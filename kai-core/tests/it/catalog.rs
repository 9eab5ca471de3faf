//! The catalog on a real store folder: import, incremental re-import, bad records,
//! search, recognition, updates, deletes and model changes. Each test runs twice: on an
//! embedded store (SQLite and index files) and on PostgreSQL with pgvector.

use std::path::{Path, PathBuf};

use kai_core::catalog::{
    Catalog, EmbeddedMaterial, ExpectedVersion, MaterialFilter, MaterialInput, SearchQuery,
    StoreOptions,
};
use kai_core::image::{ImageLimits, open};
use kai_core::models::{Manifest, ModelState, verify};
use kai_core::recognize::RecognizeOptions;
use kai_core::{Device, ErrorKind, ModelStore};
use serde_json::json;

use crate::common::{self, TestDatabase};

/// Where a test keeps the catalog's records and vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite and index files in the store folder.
    Sqlite,
    /// The PostgreSQL test server, in a fresh database.
    Postgres,
}

/// One test's environment: the model store, and on PostgreSQL a fresh database.
pub struct Env {
    pub models: ModelStore,
    pub database: Option<TestDatabase>,
}

impl Env {
    /// Returns the environment when the models are fetched and, on PostgreSQL, the test
    /// server is running; otherwise prints why the calling test is skipped.
    pub fn new(backend: Backend) -> Option<Self> {
        let models = models()?;
        Self::with_models(backend, models)
    }

    /// Returns the environment for tests that load no model.
    pub fn without_models(backend: Backend) -> Option<Self> {
        Self::with_models(backend, ModelStore::from_env())
    }

    fn with_models(backend: Backend, models: ModelStore) -> Option<Self> {
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(common::postgres()?),
        };
        Some(Self { models, database })
    }

    /// Returns the options of the store at `root` on this backend.
    pub fn options(&self, root: &Path) -> StoreOptions {
        let options = StoreOptions::new(root, self.models.clone(), Device::Cpu);
        match &self.database {
            Some(database) => options.with_database(database.url.clone()),
            None => options,
        }
    }

    pub fn open(&self, root: &Path) -> Catalog {
        Catalog::open(self.options(root)).unwrap()
    }
}

/// Runs each listed test body, a `fn(Backend)`, once per backend as
/// `sqlite::NAME` and `postgres::NAME`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name($crate::catalog::Backend::Sqlite);
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                super::$name($crate::catalog::Backend::Postgres);
            })*
        }
    };
}

on_both_backends!(
    import_is_incremental,
    bad_records_are_reported_and_the_rest_imported,
    csv_import_matches_json,
    search_and_recognition_find_the_right_material,
    update_delete_and_history,
    another_model_needs_reindex,
    unreadable_database_is_a_storage_error,
    sample_catalog_recognizes_query_photos,
    second_writer_gets_a_conflict,
);

/// Returns the model store when both embedding models are fetched; otherwise prints why
/// the calling test is skipped.
fn models() -> Option<ModelStore> {
    let store = ModelStore::from_env();
    for name in ["all-minilm-l6-v2", "efficientnet-lite0"] {
        let manifest = Manifest::find(name).unwrap();
        if verify(&manifest, &store.folder(name)).ok() != Some(ModelState::Ready) {
            eprintln!("skipped: {name} is not fetched; run `python3 models/fetch.py` first");
            return None;
        }
    }
    Some(store)
}

fn photo(name: &str) -> PathBuf {
    photos().join(name)
}

/// Writes a catalog folder with the test photos: a cat, a coffee cup, a rocket, a brick
/// wall and a camera man.
pub fn write_catalog(folder: &Path, records: &serde_json::Value) {
    std::fs::create_dir_all(folder.join("images")).unwrap();
    for name in [
        "chelsea.jpg",
        "coffee.jpg",
        "rocket.jpg",
        "brick.png",
        "camera.png",
        "astronaut.jpg",
    ] {
        std::fs::copy(photo(name), folder.join("images").join(name)).unwrap();
    }
    std::fs::write(
        folder.join("catalog.json"),
        serde_json::to_vec_pretty(records).unwrap(),
    )
    .unwrap();
}

pub fn records() -> serde_json::Value {
    json!([
        {"id": "tabby-fur", "name": "Tabby fur", "materialType": "fabric", "collectionId": "soft",
         "tags": ["striped", "grey"], "description": "Soft striped grey fur fabric",
         "properties": {"finish": "soft"}, "images": ["images/chelsea.jpg"]},
        {"id": "espresso-ceramic", "name": "Espresso ceramic", "materialType": "ceramic",
         "tags": ["white", "glazed"], "description": "Glazed white porcelain cup on a wooden table",
         "images": ["images/coffee.jpg"]},
        {"id": "launch-steel", "name": "Launch steel", "materialType": "metal",
         "tags": ["white"], "description": "Painted steel rocket body", "images": ["images/rocket.jpg"]},
        {"id": "red-brick", "name": "Red brick wall", "materialType": "brick", "collectionId": "masonry",
         "tags": ["wall"], "description": "Brick wall laid in running bond with mortar joints",
         "images": ["images/brick.png"]}
    ])
}

/// Returns the photo folder of the catalog tests.
pub fn photos() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos")
}

fn import_is_incremental(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("catalog");
    write_catalog(&folder, &records());
    let store = dir.path().join("store");

    let mut catalog = env.open(&store);
    let mut calls = 0;
    let report = catalog.import(&folder, &mut |_| calls += 1).unwrap();
    assert_eq!(report.created.len(), 4, "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(calls, 4);
    assert_eq!(catalog.image_index().len().unwrap(), 4);
    assert_eq!(catalog.text_index().len().unwrap(), 4);
    let calibration = report.calibration.unwrap();
    assert_eq!(calibration.samples, 4);
    assert!(store.join("calibration.json").is_file());

    // A second import of the same folder changes nothing.
    let report = catalog.import(&folder, &mut |_| {}).unwrap();
    assert_eq!(report.unchanged.len(), 4);
    assert!(report.created.is_empty());
    assert!(report.updated.is_empty());

    // Editing one record updates only that one and keeps its history.
    let mut changed = records();
    changed[1]["description"] = json!("Glazed porcelain espresso cup");
    write_catalog(&folder, &changed);
    drop(catalog);
    let mut catalog = env.open(&store);
    let report = catalog.import(&folder, &mut |_| {}).unwrap();
    assert_eq!(report.updated, ["espresso-ceramic"]);
    assert_eq!(report.unchanged.len(), 3);
    let history = catalog.history("espresso-ceramic").unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        catalog.history_or_not_found("espresso-ceramic").unwrap(),
        history
    );
    assert!(catalog.history("never-stored").unwrap().is_empty());
    let err = catalog.history_or_not_found("never-stored").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("never-stored"), "{err}");
    assert_eq!(catalog.get("espresso-ceramic").unwrap().unwrap().version, 2);
    assert_eq!(catalog.image_index().len().unwrap(), 4);
}

fn bad_records_are_reported_and_the_rest_imported(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("catalog");
    let mut bad = records();
    let list = bad.as_array_mut().unwrap();
    list.push(json!({"id": "missing-photo", "name": "Missing", "materialType": "wood", "images": ["images/nope.jpg"]}));
    list.push(json!({"id": "broken-photo", "name": "Broken", "materialType": "wood", "images": ["images/broken.jpg"]}));
    list.push(json!({"id": "red-brick", "name": "Again", "materialType": "brick", "images": ["images/brick.png"]}));
    list.push(json!({"id": "no type", "name": "Bad id", "materialType": "wood"}));
    list.push(json!({"id": "empty-type", "name": "No type", "materialType": " "}));
    write_catalog(&folder, &bad);
    std::fs::write(
        folder.join("images/broken.jpg"),
        b"\xff\xd8\xff\xe0 not really a JPEG",
    )
    .unwrap();

    let mut catalog = env.open(&dir.path().join("store"));
    let report = catalog.import(&folder, &mut |_| {}).unwrap();
    assert_eq!(report.created.len(), 4);
    let failed: Vec<&str> = report.failed.iter().map(|f| f.record.as_str()).collect();
    for id in [
        "missing-photo",
        "broken-photo",
        "red-brick",
        "no type",
        "empty-type",
    ] {
        assert!(failed.contains(&id), "{id} not in {failed:?}");
    }
    let message = |id: &str| {
        &report
            .failed
            .iter()
            .find(|f| f.record == id)
            .unwrap()
            .message
    };
    assert!(
        message("missing-photo").contains("nope.jpg"),
        "{}",
        message("missing-photo")
    );
    assert!(
        message("broken-photo").contains("broken.jpg"),
        "{}",
        message("broken-photo")
    );
    assert!(message("red-brick").contains("duplicate id"));
    assert!(message("empty-type").contains("materialType"));
    assert_eq!(catalog.storage().count().unwrap(), 4);
    assert_eq!(catalog.image_index().len().unwrap(), 4);
}

fn csv_import_matches_json(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("catalog");
    write_catalog(&folder, &json!([]));
    std::fs::remove_file(folder.join("catalog.json")).unwrap();
    std::fs::write(
        folder.join("catalog.csv"),
        "id,name,materialType,tags,description,image\n\
         red-brick,Red brick wall,brick,wall;red,Brick wall,images/brick.png\n\
         red-brick,Red brick wall,brick,wall;red,Brick wall,images/camera.png\n\
         espresso-ceramic,Espresso ceramic,ceramic,white,Glazed cup,images/coffee.jpg\n",
    )
    .unwrap();
    let mut catalog = env.open(&dir.path().join("store"));
    let report = catalog.import(&folder, &mut |_| {}).unwrap();
    assert_eq!(report.created.len(), 2, "{report:?}");
    let brick = catalog.get("red-brick").unwrap().unwrap();
    assert_eq!(brick.images.len(), 2);
    assert_eq!(brick.tags, ["wall", "red"]);
}

fn search_and_recognition_find_the_right_material(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("catalog");
    write_catalog(&folder, &records());
    let mut catalog = env.open(&dir.path().join("store"));
    catalog.import(&folder, &mut |_| {}).unwrap();

    let query = SearchQuery {
        text: Some("porcelain cup".into()),
        top_k: 3,
        ..Default::default()
    };
    let hits = catalog.search(&query).unwrap();
    match backend {
        Backend::Sqlite => assert_eq!(hits[0].id, "espresso-ceramic", "{hits:?}"),
        // Full-text ranking differs between SQLite's BM25 and PostgreSQL's ts_rank_cd.
        Backend::Postgres => assert!(hits.iter().any(|h| h.id == "espresso-ceramic"), "{hits:?}"),
    }
    assert_eq!(hits.len(), 3, "{hits:?}");

    let filtered = SearchQuery {
        text: Some("wall".into()),
        filter: MaterialFilter {
            material_type: Some("metal".into()),
            ..Default::default()
        },
        top_k: 10,
        ..Default::default()
    };
    let hits = catalog.search(&filtered).unwrap();
    assert!(hits.iter().all(|h| h.material_type == "metal"), "{hits:?}");

    // A crop of the brick photo is not a catalog file, yet it is recognised as the brick.
    let brick = open(&photo("brick.png"), &ImageLimits::default()).unwrap();
    let crop = image::imageops::crop_imm(&brick, 60, 40, 380, 400).to_image();
    let result = catalog
        .recognize(&crop, &RecognizeOptions::default())
        .unwrap();
    assert_eq!(result.materials[0].id, "red-brick", "{result:?}");
    assert_eq!(result.classes[0].material_type, "brick");
    let total: f32 = result.classes.iter().map(|c| c.confidence).sum();
    assert!((total - 1.0).abs() < 1e-4);
    assert!(!result.unknown);

    // A text hint joins the ranking: it moves the scores but not the clear winner.
    let hinted = RecognizeOptions {
        hint: Some("red brick wall with mortar".into()),
        ..Default::default()
    };
    let with_hint = catalog.recognize(&crop, &hinted).unwrap();
    assert_eq!(with_hint.materials[0].id, "red-brick");
    assert_ne!(with_hint.materials[0].score, result.materials[0].score);

    let by_image = SearchQuery {
        image: Some(crop),
        top_k: 2,
        ..Default::default()
    };
    assert_eq!(catalog.search(&by_image).unwrap()[0].id, "red-brick");

    let tiny = image::RgbImage::new(20, 20);
    let err = catalog
        .recognize(&tiny, &RecognizeOptions::default())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("20×20"), "{err}");
    let err = catalog
        .search(&SearchQuery {
            top_k: 3,
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

fn update_delete_and_history(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("catalog");
    write_catalog(&folder, &records());
    let mut catalog = env.open(&dir.path().join("store"));
    catalog.import(&folder, &mut |_| {}).unwrap();

    let mut record: MaterialInput = serde_json::from_value(records()[2].clone()).unwrap();
    record.name = "Launch aluminium".into();
    record.images.clear();
    let updated = catalog.update(&record, &folder).unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.images.len(), 1);

    assert!(catalog.delete("launch-steel").unwrap());
    assert!(!catalog.delete("launch-steel").unwrap());
    assert!(catalog.get("launch-steel").unwrap().is_none());
    assert_eq!(catalog.image_index().len().unwrap(), 3);
    let history = catalog.history("launch-steel").unwrap();
    let changes: Vec<&str> = history.iter().map(|v| v.change.as_str()).collect();
    assert_eq!(changes, ["created", "updated", "deleted"]);

    record.id = "unknown-id".into();
    let err = catalog.update(&record, &folder).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

fn another_model_needs_reindex(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("catalog");
    write_catalog(&folder, &records());
    let store = dir.path().join("store");
    env.open(&store).import(&folder, &mut |_| {}).unwrap();

    // The texts space records all-MiniLM-L6-v2; configuring another model is rejected.
    let mut options = env.options(&store);
    options.text_model = "efficientnet-lite0".into();
    let err = Catalog::open(options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("kai reindex"), "{err}");

    // Index files out of step with the database (an interrupted import) also need it.
    // PostgreSQL commits records and vectors together, so it has no such state.
    if backend == Backend::Sqlite {
        std::fs::remove_file(store.join("index/texts.kvi")).unwrap();
        let err = Catalog::open(env.options(&store)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Storage);
        assert!(err.to_string().contains("kai reindex"), "{err}");
    }

    let mut catalog = Catalog::open_for_reindex(env.options(&store)).unwrap();
    assert_eq!(catalog.reindex(&mut |_| {}).unwrap(), 4);
    assert_eq!(catalog.image_index().len().unwrap(), 4);
    assert_eq!(catalog.text_index().len().unwrap(), 4);
    drop(catalog);
    let catalog = Catalog::open(env.options(&store)).unwrap();
    let brick = open(&photo("brick.png"), &ImageLimits::default()).unwrap();
    let result = catalog
        .recognize(&brick, &RecognizeOptions::default())
        .unwrap();
    assert_eq!(result.materials[0].id, "red-brick", "{result:?}");
}

fn unreadable_database_is_a_storage_error(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let options = match backend {
        Backend::Sqlite => {
            std::fs::write(dir.path().join("kai.db"), vec![b'x'; 4096]).unwrap();
            env.options(dir.path())
        }
        // Nothing listens on port 1 of the loopback interface.
        Backend::Postgres => {
            let url =
                kai_core::db::DatabaseUrl::parse("url", "postgres://kai@127.0.0.1:1/kai").unwrap();
            env.options(dir.path()).with_database(url)
        }
    };
    let err = Catalog::open(options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Expected {
    file: String,
    material_type: String,
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn sample_catalog_recognizes_query_photos(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut catalog = env.open(dir.path());
    let report = catalog
        .import(&examples().join("catalog"), &mut |_| {})
        .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.created.len() >= 30);
    let types = catalog.material_types().unwrap();
    assert!(types.len() >= 6, "{types:?}");

    let queries = examples().join("queries");
    let expected: Vec<Expected> =
        serde_json::from_slice(&std::fs::read(queries.join("expected.json")).unwrap()).unwrap();
    let (mut top1, mut top5) = (0, 0);
    for query in &expected {
        let photo = open(&queries.join(&query.file), &ImageLimits::default()).unwrap();
        let result = catalog
            .recognize(&photo, &RecognizeOptions::default())
            .unwrap();
        assert_eq!(result.classified_by, "neighbours");
        assert!(
            !result.unknown,
            "{}: {:?}",
            query.file,
            result.materials.first()
        );
        let rank = result
            .classes
            .iter()
            .position(|c| c.material_type == query.material_type);
        top1 += usize::from(rank == Some(0));
        top5 += usize::from(rank.is_some_and(|r| r < 5));
    }
    // The quickstart measured 17/20 and 20/20; these bounds catch a real regression.
    assert!(
        top1 * 10 >= expected.len() * 7,
        "top-1 {top1}/{}",
        expected.len()
    );
    assert!(
        top5 * 10 >= expected.len() * 9,
        "top-5 {top5}/{}",
        expected.len()
    );

    // A photo of a cat is no material of the catalog.
    let cat = open(&photo("chelsea.jpg"), &ImageLimits::default()).unwrap();
    assert!(
        catalog
            .recognize(&cat, &RecognizeOptions::default())
            .unwrap()
            .unknown
    );

    // A material-type head, once trained, gives the class confidences.
    let spec = kai_core::recognize::HeadSpec {
        domain: "material-type".into(),
        label: "materialType".into(),
        material_type: None,
    };
    let manifest = catalog.train_head(&spec).unwrap();
    assert_eq!(manifest.classes, types);
    assert!(manifest.heldout_images > 0);
    assert!(manifest.training_images > manifest.heldout_images);
    assert!(
        manifest.heldout_accuracy > 1.0 / types.len() as f32,
        "{manifest:?}"
    );
    assert_eq!(catalog.heads().unwrap().len(), 1);
    let photo = open(&queries.join(&expected[0].file), &ImageLimits::default()).unwrap();
    let result = catalog
        .recognize(&photo, &RecognizeOptions::default())
        .unwrap();
    assert_eq!(result.classified_by, "head");
    let total: f32 = result.classes.iter().map(|c| c.confidence).sum();
    assert!((total - 1.0).abs() < 1e-4);

    let bad = kai_core::recognize::HeadSpec {
        domain: "../x".into(),
        ..spec
    };
    assert_eq!(
        catalog.train_head(&bad).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

fn second_writer_gets_a_conflict(backend: Backend) {
    let Some(env) = Env::new(backend) else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("catalog");
    write_catalog(&folder, &records());
    let store = dir.path().join("store");
    let mut catalog = env.open(&store);
    catalog.import(&folder, &mut |_| {}).unwrap();

    if backend == Backend::Sqlite {
        // Another process holding the lock: a second open file description of write.lock.
        let held = std::fs::File::open(store.join("write.lock")).unwrap();
        held.lock().unwrap();
        let err = catalog.delete("red-brick").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        assert!(err.to_string().contains("another writer"), "{err}");
        assert!(catalog.get("red-brick").unwrap().is_some());
        held.unlock().unwrap();
    }

    // A write prepared from version 1 after another handle wrote version 2 is stale.
    let mut other = env.open(&store);
    let record: MaterialInput = serde_json::from_value(records()[2].clone()).unwrap();
    let text = catalog
        .text_index()
        .get(catalog.get("launch-steel").unwrap().unwrap().key);
    let text_vector = text.unwrap().unwrap();
    let mut renamed = record.clone();
    renamed.name = "Launch aluminium".into();
    renamed.images.clear();
    let updated = other.update(&renamed, &folder).unwrap();
    assert_eq!(updated.version, 2);
    let stale = EmbeddedMaterial {
        record: MaterialInput {
            images: Vec::new(),
            ..record
        },
        text_vector,
        image_vectors: Vec::new(),
        expected: ExpectedVersion::Exactly(1),
    };
    let err = catalog
        .put_embedded(std::slice::from_ref(&stale), &folder)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("launch-steel"), "{err}");
    let stored = catalog.get("launch-steel").unwrap().unwrap();
    assert_eq!(stored.name, "Launch aluminium");
    assert_eq!(stored.version, 2);
    assert_eq!(catalog.history("launch-steel").unwrap().len(), 2);
    assert!(catalog.delete("red-brick").unwrap());
}
