//! Fetching built-in models with pip: download, verification, idempotence and repair.

use std::fs;
use std::path::PathBuf;

use kai_core::models::{FetchOptions, ModelState, verify};
use kai_core::{ErrorKind, ModelStore, fetch};

use crate::common::MODEL;

#[test]
fn fetch_is_idempotent_and_repairs_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let options = FetchOptions::default();

    // A folder left by a fetch killed two hours ago is removed by the next download.
    let stale = dir.path().join(".download-killed");
    fs::create_dir(&stale).unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    fs::File::open(&stale)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();

    let first = fetch(&store, MODEL, &options).unwrap();
    assert!(first.downloaded);
    assert!(!stale.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(first.path.join("config.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
    }
    assert!(first.written.iter().any(|f| f == "model.safetensors"));
    let manifest = kai_core::models::Manifest::find(MODEL).unwrap();
    assert_eq!(verify(&manifest, &first.path).unwrap(), ModelState::Ready);

    let second = fetch(&store, MODEL, &options).unwrap();
    assert!(!second.downloaded);
    assert!(second.written.is_empty());

    fs::write(first.path.join("tokenizer.json"), b"{}").unwrap();
    let repaired = fetch(&store, MODEL, &options).unwrap();
    assert!(repaired.downloaded);
    assert_eq!(verify(&manifest, &first.path).unwrap(), ModelState::Ready);

    // No staging files are left behind.
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != MODEL)
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn unknown_model_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let err = fetch(
        &ModelStore::new(dir.path()),
        "gpt-17",
        &FetchOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("gpt-17"), "{err}");
    assert!(err.to_string().contains(MODEL), "{err}");
}

#[test]
fn missing_python_names_kai_python() {
    let dir = tempfile::tempdir().unwrap();
    let options = FetchOptions {
        python: PathBuf::from("/nonexistent/python3"),
    };
    let err = fetch(&ModelStore::new(dir.path()), MODEL, &options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ModelNotFound);
    assert!(err.to_string().contains("KAI_PYTHON"), "{err}");
    assert!(!dir.path().join(MODEL).join("model.safetensors").exists());
}
