//! `/api/models`: the listing, loading and unloading, and the LRU cache behind them, which
//! the catalog and the embedding routes share.

use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kai_core::models::{DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, REQUIRED_FILES};
use serde_json::{Value, json};

use crate::common::{self, TestServer};

/// Rate limits high enough that no test here reaches them.
const UNLIMITED: [(&str, &str); 2] = [
    ("ML_RATE_LIMIT", "100000"),
    ("DEFAULT_RATE_LIMIT", "100000"),
];

fn server(vars: &[(&str, &str)]) -> Option<TestServer> {
    let mut all: Vec<(&str, &str)> = UNLIMITED.to_vec();
    all.extend_from_slice(vars);
    common::server(&all)
}

fn post(uri: &str) -> Request<Body> {
    Request::post(uri)
        .body(Body::empty())
        .expect("valid request")
}

/// Names in the `loaded` list of `GET /api/models`, most recently used first.
async fn loaded_names(server: &TestServer) -> Vec<String> {
    let (status, body) = common::send(&server.app, common::get("/api/models")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["loaded"]
        .as_array()
        .expect("loaded list")
        .iter()
        .map(|m| m["name"].as_str().expect("name").to_owned())
        .collect()
}

/// Builds a model directory with links to the fetched default models and a third model,
/// `my-bert`, which is a Hugging Face folder with the text model's files under another
/// name.
fn model_dir_with_extra_folder() -> Option<tempfile::TempDir> {
    let models = common::models()?;
    let dir = tempfile::tempdir().expect("temporary folder");
    for name in [DEFAULT_TEXT_MODEL, DEFAULT_IMAGE_MODEL] {
        std::os::unix::fs::symlink(models.folder(name), dir.path().join(name))
            .expect("link the model folder");
    }
    let extra = dir.path().join("my-bert");
    std::fs::create_dir(&extra).expect("create folder");
    for file in REQUIRED_FILES {
        std::os::unix::fs::symlink(
            models.folder(DEFAULT_TEXT_MODEL).join(file),
            extra.join(file),
        )
        .expect("link the model file");
    }
    Some(dir)
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn listing_shows_models_and_the_cache() {
    let Some(server) = server(&[]) else { return };
    let (status, body) = common::send(&server.app, common::get("/api/models")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cacheSize"], 5);
    assert!(body["modelDir"].is_string(), "{body}");
    let text = body["models"]
        .as_array()
        .expect("models")
        .iter()
        .find(|m| m["name"] == DEFAULT_TEXT_MODEL)
        .expect("the text model is listed")
        .clone();
    assert_eq!(text["state"], "ready", "{text}");
    assert_eq!(text["task"], "text-embedding", "{text}");
    assert_eq!(text["loaded"], false, "{text}");
    assert_eq!(body["loaded"], json!([]));

    let (status, _) = common::send(
        &server.app,
        common::json("POST", "/api/embed/text", &json!({"text": "oak"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = common::send(&server.app, common::get("/api/models")).await;
    let loaded = body["loaded"].as_array().expect("loaded");
    assert_eq!(loaded.len(), 1, "{body}");
    assert_eq!(loaded[0]["name"], DEFAULT_TEXT_MODEL);
    assert_eq!(loaded[0]["dimension"], 384);
    assert!(
        loaded[0]["loadSeconds"].as_f64().expect("seconds") > 0.0,
        "{body}"
    );
    let listed = body["models"]
        .as_array()
        .expect("models")
        .iter()
        .find(|m| m["name"] == DEFAULT_TEXT_MODEL)
        .expect("listed");
    assert_eq!(listed["loaded"], true, "{body}");
}

#[tokio::test]
async fn load_and_unload() {
    let Some(server) = server(&[]) else { return };
    let app = &server.app;
    let uri = format!("/api/models/{DEFAULT_TEXT_MODEL}/load");
    let (status, body) = common::send(app, post(&uri)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["alreadyLoaded"], false, "{body}");
    assert_eq!(body["model"]["name"], DEFAULT_TEXT_MODEL);
    assert_eq!(body["model"]["task"], "text-embedding");
    assert_eq!(body["loaded"], json!([DEFAULT_TEXT_MODEL]));

    let (status, body) = common::send(app, post(&uri)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["alreadyLoaded"], true, "{body}");

    let unload = format!("/api/models/{DEFAULT_TEXT_MODEL}/unload");
    let (status, body) = common::send(app, post(&unload)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["unloaded"], true, "{body}");
    assert!(loaded_names(&server).await.is_empty());
    let (status, body) = common::send(app, post(&unload)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["unloaded"], false, "{body}");

    for uri in [
        "/api/models/no-such-model/load",
        "/api/models/no-such-model/unload",
    ] {
        let (status, body) = common::send(app, post(uri)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
        let message = common::error_message(&body, "KAI_NOT_FOUND");
        assert!(message.contains("no-such-model"), "{message}");
    }
    let (status, body) = common::send(app, post("/api/models/.hidden/load")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    common::error_message(&body, "KAI_INVALID_INPUT");
}

#[tokio::test]
async fn missing_model_files_are_503() {
    let Some(_) = common::models() else { return };
    let dir = tempfile::tempdir().expect("temporary folder");
    std::fs::create_dir(dir.path().join(DEFAULT_TEXT_MODEL)).expect("create folder");
    let model_dir = path_text(dir.path());
    let Some(server) = server(&[("MODEL_DIR", &model_dir)]) else {
        return;
    };
    let (status, body) = common::send(
        &server.app,
        post(&format!("/api/models/{DEFAULT_TEXT_MODEL}/load")),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = common::error_message(&body, "KAI_MODEL_NOT_FOUND");
    assert!(message.contains("model.safetensors"), "{message}");
    assert!(loaded_names(&server).await.is_empty());
}

#[tokio::test]
async fn cache_evicts_the_least_recently_used() {
    let Some(models) = model_dir_with_extra_folder() else {
        return;
    };
    let model_dir = path_text(models.path());
    let Some(server) = server(&[("MODEL_DIR", &model_dir), ("MODEL_CACHE_SIZE", "2")]) else {
        return;
    };
    let app = &server.app;
    let load = |name: &str| post(&format!("/api/models/{name}/load"));
    for name in [DEFAULT_TEXT_MODEL, DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL] {
        let (status, body) = common::send(app, load(name)).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
    }
    assert_eq!(
        loaded_names(&server).await,
        [DEFAULT_TEXT_MODEL, DEFAULT_IMAGE_MODEL]
    );

    // The embedding route loads a model folder on demand; the image model is now the
    // least recently used and leaves the cache.
    let (status, body) = common::send(
        app,
        common::json(
            "POST",
            "/api/embed/text",
            &json!({"text": "oak", "model": "my-bert"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["model"], "my-bert");
    assert_eq!(loaded_names(&server).await, ["my-bert", DEFAULT_TEXT_MODEL]);

    let (_, body) = common::send(app, common::get("/api/models")).await;
    let listed: Vec<(&str, bool)> = body["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| (m["name"].as_str().expect("name"), m["loaded"] == true))
        .collect();
    assert!(listed.contains(&("my-bert", true)), "{body}");
    assert!(listed.contains(&(DEFAULT_IMAGE_MODEL, false)), "{body}");
}

#[tokio::test]
async fn catalog_takes_models_from_the_cache() {
    let Some(server) = server(&[]) else { return };
    let app = &server.app;
    let photo = std::fs::read(common::photo("altered-red-brick-white-mortar.jpg")).expect("photo");
    let recognize = || {
        common::multipart(
            "/api/recognize",
            &[("image", Some("photo.jpg"), photo.as_slice())],
        )
    };
    let (status, body) = common::send(app, recognize()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(loaded_names(&server).await, [DEFAULT_IMAGE_MODEL]);

    // After an unload, the catalog loads the model again through the cache.
    let (status, body) = common::send(
        app,
        post(&format!("/api/models/{DEFAULT_IMAGE_MODEL}/unload")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(loaded_names(&server).await.is_empty());
    let (status, body) = common::send(app, recognize()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = common::send(app, common::get("/api/models")).await;
    let loaded: &Vec<Value> = body["loaded"].as_array().expect("loaded");
    assert_eq!(loaded.len(), 1, "{body}");
    assert_eq!(loaded[0]["name"], DEFAULT_IMAGE_MODEL);
}
