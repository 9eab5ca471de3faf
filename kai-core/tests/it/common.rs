//! Helpers shared by the integration tests.

use std::path::Path;
use std::sync::OnceLock;

use kai_core::models::{Manifest, ModelState, verify};
use kai_core::{Device, ModelStore, TextEmbedder};

pub const MODEL: &str = "all-minilm-l6-v2";

/// Returns the model store when all-MiniLM-L6-v2 is fetched and verified; otherwise prints
/// why the calling test is skipped and returns `None`.
pub fn store_with_model() -> Option<ModelStore> {
    let store = ModelStore::from_env();
    let manifest = Manifest::find(MODEL).expect("built-in manifest");
    match verify(&manifest, &store.folder(MODEL)) {
        Ok(ModelState::Ready) => Some(store),
        state => {
            eprintln!(
                "skipped: {MODEL} is not in {} ({state:?}); run `python3 models/fetch.py` \
                 or `kai models fetch` first",
                store.root().display()
            );
            None
        }
    }
}

/// Returns one embedder shared by every test in the binary, loaded on the CPU.
pub fn embedder() -> Option<&'static TextEmbedder> {
    static EMBEDDER: OnceLock<Option<TextEmbedder>> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let store = store_with_model()?;
            Some(TextEmbedder::from_store(&store, MODEL, &Device::Cpu).expect("model loads"))
        })
        .as_ref()
}

/// Copies a model folder, so a test can damage the copy.
pub fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Returns the path of a committed test photo in `tests/fixtures/photos`.
pub fn photo(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/photos")
        .join(name)
}

/// A fresh PostgreSQL database for one test, dropped when the value is dropped.
pub struct TestDatabase {
    pub url: kai_core::db::DatabaseUrl,
    server: String,
    name: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.server, postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Returns a new empty database on the test server named by `KAI_TEST_DATABASE_URL`.
///
/// Without the variable the calling test is skipped with a message naming the command that
/// starts the server, unless `KAI_REQUIRE_POSTGRES` is set (as `scripts/test` does), in
/// which case the test fails.
pub fn postgres() -> Option<TestDatabase> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let Some(server) = std::env::var("KAI_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        assert!(
            std::env::var_os("KAI_REQUIRE_POSTGRES").is_none(),
            "KAI_REQUIRE_POSTGRES is set but KAI_TEST_DATABASE_URL is not"
        );
        eprintln!(
            "skipped: no PostgreSQL test server; run `eval \"$(python3 scripts/postgres.py start)\"` \
             to start one and set KAI_TEST_DATABASE_URL"
        );
        return None;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!(
        "kai_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut client = postgres::Client::connect(&server, postgres::NoTls)
        .unwrap_or_else(|err| panic!("cannot connect to KAI_TEST_DATABASE_URL: {err}"));
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let (base, _) = server
        .rsplit_once('/')
        .expect("KAI_TEST_DATABASE_URL ends in /DATABASE");
    let url = kai_core::db::DatabaseUrl::parse("KAI_TEST_DATABASE_URL", &format!("{base}/{name}"))
        .unwrap();
    Some(TestDatabase { url, server, name })
}
