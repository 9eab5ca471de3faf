//! `/health` and `/ready`.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use kai_core::models::{DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL};
use kai_server::server::routes::health::warm_up;
use serde_json::Value;

use crate::common::{self, get, send};

fn component<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["components"]
        .as_array()
        .expect("a component list")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no component {name} in {body}"))
}

#[tokio::test]
async fn health_reports_version_and_uptime() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    let (status, body) = send(&server.app, get("/health")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["uptimeSeconds"].as_f64().expect("uptime") >= 0.0);
}

#[tokio::test]
async fn ready_checks_every_component() {
    let Some(server) = common::server(&[("KAI_READY_TIMEOUT_MS", "60000")]) else {
        return;
    };
    let (status, body) = send(&server.app, get("/ready")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    for name in ["text-model", "image-model", "catalog", "registry"] {
        let check = component(&body, name);
        assert_eq!(check["status"], "ok", "{check}");
        assert!(check["durationMs"].as_f64().expect("a duration") >= 0.0);
    }
    assert_eq!(
        component(&body, "text-model")["message"],
        DEFAULT_TEXT_MODEL
    );
    assert_eq!(
        component(&body, "image-model")["message"],
        DEFAULT_IMAGE_MODEL
    );
    assert_eq!(component(&body, "catalog")["message"], "44 materials");
}

#[tokio::test]
async fn ready_times_out_behind_catalog_lock() {
    let Some(server) = common::server(&[("KAI_READY_TIMEOUT_MS", "300")]) else {
        return;
    };
    // Loads the models first, so only the catalog is slow below.
    warm_up(&server.state).await.expect("the warm-up task ends");

    let (locked, lock_taken) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let state = server.state.clone();
    let holder = std::thread::spawn(move || {
        let _catalog = state.catalog();
        locked.send(()).expect("the test waits");
        // Held until the test has its response, as a long write would hold it.
        let _ = released.recv_timeout(Duration::from_secs(30));
    });
    lock_taken.recv().expect("the lock is taken");

    let started = Instant::now();
    let (status, body) = send(&server.app, get("/ready")).await;
    let waited = started.elapsed();
    release.send(()).expect("the holder waits");
    holder.join().expect("the holder ends");

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "not ready");
    let catalog = component(&body, "catalog");
    assert_eq!(catalog["status"], "timeout", "{catalog}");
    assert!(
        catalog["message"]
            .as_str()
            .expect("a message")
            .contains("300 ms"),
        "{catalog}"
    );
    assert_eq!(component(&body, "registry")["status"], "ok");
    assert_eq!(component(&body, "text-model")["status"], "ok");
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");

    // Once the lock is free the catalog responds again.
    let (status, body) = send(&server.app, get("/ready")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn ready_fails_without_models() {
    let empty = tempfile::tempdir().expect("temporary folder");
    let models = empty.path().to_string_lossy().into_owned();
    let Some(server) = common::server(&[("MODEL_DIR", &models)]) else {
        return;
    };
    let (status, body) = send(&server.app, get("/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    for (name, model) in [
        ("text-model", DEFAULT_TEXT_MODEL),
        ("image-model", DEFAULT_IMAGE_MODEL),
    ] {
        let check = component(&body, name);
        assert_eq!(check["status"], "failed", "{check}");
        let message = check["message"].as_str().expect("a message");
        assert!(message.contains(model), "{message}");
    }
    assert_eq!(component(&body, "catalog")["status"], "ok");
    assert_eq!(component(&body, "registry")["status"], "ok");

    // Liveness does not depend on the models.
    let (status, _) = send(&server.app, get("/health")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn warm_up_loads_default_models() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    assert!(
        server.state.models().loaded().is_empty(),
        "nothing loaded yet"
    );
    warm_up(&server.state).await.expect("the warm-up task ends");
    let loaded: Vec<String> = server
        .state
        .models()
        .loaded()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert!(
        loaded.contains(&DEFAULT_TEXT_MODEL.to_owned()),
        "{loaded:?}"
    );
    assert!(
        loaded.contains(&DEFAULT_IMAGE_MODEL.to_owned()),
        "{loaded:?}"
    );
}
