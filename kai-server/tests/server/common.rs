//! Helpers shared by the server tests: a server over a temporary store with the sample
//! catalog, and requests sent through the router without a socket.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use kai_core::catalog::{Catalog, StoreOptions};
use kai_core::models::{DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, Manifest, ModelState, verify};
use kai_core::{Device, ModelStore};
use kai_server::server::{AppState, ServerConfig, router};
use serde_json::Value;
use tower::ServiceExt;

/// Returns the repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Returns the path of a photo in examples/queries.
pub fn photo(name: &str) -> PathBuf {
    repo().join("examples/queries").join(name)
}

/// Returns the model store when both default models are fetched; otherwise prints why the
/// calling test is skipped and returns `None`.
pub fn models() -> Option<ModelStore> {
    let store = ModelStore::from_env();
    for model in [DEFAULT_TEXT_MODEL, DEFAULT_IMAGE_MODEL] {
        let manifest = Manifest::find(model).expect("built-in manifest");
        if !matches!(
            verify(&manifest, &store.folder(model)),
            Ok(ModelState::Ready)
        ) {
            eprintln!(
                "skipped: {model} is not in {}; run `python3 models/fetch.py` first",
                store.root().display()
            );
            return None;
        }
    }
    Some(store)
}

/// Returns a store folder with the sample catalog imported. It is built once per test
/// run, and each test writes to a copy of it.
fn sample_store() -> Option<&'static Path> {
    static STORE: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
    STORE
        .get_or_init(|| {
            let models = models()?;
            let dir = tempfile::tempdir().expect("temporary folder");
            let root = dir.path().join("store");
            let mut catalog =
                Catalog::open(StoreOptions::new(&root, models, Device::Cpu)).expect("store opens");
            catalog
                .import(&repo().join("examples/catalog"), &mut |_| {})
                .expect("the sample catalog imports");
            Some((dir, root))
        })
        .as_ref()
        .map(|(_, root)| root.as_path())
}

/// A running application over its own copy of the sample store.
pub struct TestServer {
    pub app: Router,
    pub state: AppState,
    pub store: PathBuf,
    _dir: tempfile::TempDir,
}

/// Builds a server over a copy of the sample store with the default configuration plus
/// `vars`; `None` (after printing why) when the models are absent.
pub fn server(vars: &[(&str, &str)]) -> Option<TestServer> {
    let sample = sample_store()?;
    let dir = tempfile::tempdir().expect("temporary folder");
    let store = dir.path().join("store");
    copy_folder(sample, &store);
    let state = AppState::open(config(&store, vars)).expect("the server state opens");
    Some(TestServer {
        app: app(state.clone()),
        state,
        store,
        _dir: dir,
    })
}

/// Builds the configuration of a test server over `store`: `MODEL_DIR` from the
/// environment, the CPU, then `vars`. Other variables of the test process are ignored.
pub fn config(store: &Path, vars: &[(&str, &str)]) -> ServerConfig {
    let store = store.to_string_lossy().into_owned();
    ServerConfig::from_vars(|name| {
        if let Some((_, value)) = vars.iter().find(|(k, _)| *k == name) {
            return Some((*value).to_owned());
        }
        match name {
            "KAI_DATA_DIR" => Some(store.clone()),
            "KAI_DEVICE" => Some("cpu".to_owned()),
            "MODEL_DIR" => std::env::var(name).ok(),
            // The test process's own settings of everything else are ignored, so a
            // developer's environment cannot change the results.
            _ => None,
        }
    })
    .expect("the test configuration is valid")
}

/// Builds the router of `state` with a fixed client address, as the TCP listener sets.
pub fn app(state: AppState) -> Router {
    router(state).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))))
}

/// Sends `request` and returns the status and the body as JSON (`Value::Null` when the
/// body is empty or not JSON).
pub async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("the body is readable")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Builds a GET request.
pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .body(Body::empty())
        .expect("valid request")
}

/// Builds a request with a JSON body.
pub fn json(method: &str, uri: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("valid request")
}

/// Builds a multipart request: `(field name, file name or None, content)` per part.
pub fn multipart(uri: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Request<Body> {
    let boundary = "kai-test-boundary-7d1c";
    let mut body = Vec::new();
    for (name, file, content) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(file) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Request::post(uri)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .expect("valid request")
}

/// Copies a folder tree.
pub fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read folder") {
        let entry = entry.expect("folder entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy file");
        }
    }
}

/// Asserts that `body` is an error response with `code`, returning its message.
pub fn error_message(body: &Value, code: &str) -> String {
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"]
        .as_str()
        .expect("the error has a message")
        .to_owned()
}
