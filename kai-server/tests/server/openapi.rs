//! `/openapi.json`: a valid OpenAPI 3 document that describes every REST route.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;

use crate::common::{self, get, send};

/// Every REST operation the router serves, as (path, method).
const OPERATIONS: &[(&str, &str)] = &[
    ("/health", "get"),
    ("/ready", "get"),
    ("/api/classify-texture", "post"),
    ("/api/recognize", "post"),
    ("/api/embed/text", "post"),
    ("/api/embed/image", "post"),
    ("/api/quality", "post"),
    ("/api/models", "get"),
    ("/api/models/{name}/load", "post"),
    ("/api/models/{name}/unload", "post"),
    ("/api/materials", "get"),
    ("/api/materials", "post"),
    ("/api/materials/{id}", "get"),
    ("/api/materials/{id}", "put"),
    ("/api/materials/{id}", "delete"),
    ("/api/materials/{id}/history", "get"),
    ("/api/materials/search", "post"),
    ("/api/heads", "get"),
    ("/api/heads", "post"),
    ("/api/catalog", "get"),
    ("/api/catalog/reindex", "post"),
    ("/api/catalog/calibration", "get"),
    ("/api/catalog/calibrate", "post"),
    ("/api/parameters", "get"),
    ("/api/parameters/sets/{name}", "get"),
    ("/api/parameters/sets/{name}", "put"),
    ("/api/parameters/sets/{name}/history", "get"),
    ("/api/parameters/sets/{name}/diff", "get"),
    ("/api/parameters/sets/{name}/rollback", "post"),
    ("/api/parameters/results", "post"),
    ("/api/parameters/resolve", "get"),
    ("/api/parameters/suggest", "post"),
    ("/api/parameters/purge", "post"),
    ("/api/parameters/schema", "get"),
    ("/api/parameters/schema", "put"),
    ("/api/recon/jobs", "get"),
    ("/api/recon/jobs", "post"),
    ("/api/recon/jobs/{id}", "get"),
    ("/api/recon/jobs/{id}/files/{name}", "get"),
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document() -> Option<Value> {
    let server = common::server(&[])?;
    let (status, body) = send(&server.app, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    Some(body)
}

/// Returns the operation at `path` and `method`.
fn operation<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    let operation = &doc["paths"][path][method];
    assert!(operation.is_object(), "no {method} {path} in the document");
    operation
}

/// Collects every `$ref` in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item) {
                    ("$ref", Value::String(target)) => found.push(target.clone()),
                    _ => references(item, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

#[tokio::test]
async fn document_describes_the_api() {
    let Some(doc) = document().await else { return };
    let version = doc["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3."), "{version}");
    assert_eq!(doc["info"]["title"], "kai-server");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(doc["info"]["description"].is_string());

    let mut listed = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("a paths object") {
        assert!(path.starts_with('/'), "{path}");
        for method in METHODS {
            if item.get(method).is_some() {
                listed.insert((path.clone(), method.to_owned()));
            }
        }
    }
    let expected: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|(path, method)| ((*path).to_owned(), (*method).to_owned()))
        .collect();
    let missing: Vec<_> = expected.difference(&listed).collect();
    let unexpected: Vec<_> = listed.difference(&expected).collect();
    assert!(missing.is_empty(), "not in the document: {missing:?}");
    assert!(
        unexpected.is_empty(),
        "not in the expected list: {unexpected:?}"
    );

    for (path, method) in OPERATIONS {
        let responses = operation(&doc, path, method)["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path} has no responses"));
        assert!(!responses.is_empty(), "{method} {path}");
        // Every operation parameter in the path is declared.
        for segment in path.split('/').filter(|s| s.starts_with('{')) {
            let name = segment.trim_matches(['{', '}']);
            let declared = operation(&doc, path, method)["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
            assert!(declared, "{method} {path} does not declare {name}");
        }
    }
}

#[tokio::test]
async fn references_resolve_to_components() {
    let Some(doc) = document().await else { return };
    let schemas = doc["components"]["schemas"]
        .as_object()
        .expect("component schemas");
    let mut found = Vec::new();
    references(&doc, &mut found);
    assert!(!found.is_empty());
    for target in found {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{target} is not a component schema"));
        assert!(schemas.contains_key(name), "{target} does not resolve");
    }
}

#[tokio::test]
async fn responses_reference_handler_types() {
    let Some(doc) = document().await else { return };
    let schema_of = |path: &str, method: &str, status: &str| -> String {
        let response = &operation(&doc, path, method)["responses"][status];
        let schema = &response["content"]["application/json"]["schema"];
        let target = schema["$ref"]
            .as_str()
            .or_else(|| schema["items"]["$ref"].as_str())
            .unwrap_or_else(|| panic!("{method} {path} {status}: {response}"));
        target
            .trim_start_matches("#/components/schemas/")
            .to_owned()
    };
    for (path, method, status, schema) in [
        ("/api/materials", "get", "200", "Material"),
        ("/api/materials/{id}", "get", "200", "Material"),
        ("/api/materials/{id}", "get", "404", "ErrorBody"),
        ("/api/materials", "post", "201", "Material"),
        ("/api/materials", "post", "409", "ErrorBody"),
        (
            "/api/materials/{id}/history",
            "get",
            "200",
            "MaterialVersion",
        ),
        ("/api/materials/search", "post", "200", "SearchResults"),
        ("/api/heads", "post", "200", "HeadManifest"),
        ("/api/catalog", "get", "200", "CatalogSummary"),
        ("/api/parameters", "get", "200", "SetSummary"),
        ("/api/parameters/sets/{name}", "put", "200", "ParameterSet"),
        ("/api/parameters/sets/{name}", "put", "409", "ErrorBody"),
        (
            "/api/parameters/sets/{name}/diff",
            "get",
            "200",
            "ValueChange",
        ),
        ("/api/parameters/resolve", "get", "200", "Resolution"),
        ("/api/parameters/suggest", "post", "200", "Suggestion"),
        ("/api/parameters/purge", "post", "200", "PurgeReport"),
        ("/api/parameters/schema", "get", "200", "Schema"),
        ("/health", "get", "200", "Health"),
        ("/ready", "get", "503", "Readiness"),
    ] {
        assert_eq!(
            schema_of(path, method, status),
            schema,
            "{method} {path} {status}"
        );
    }

    // Writes that take photos describe their multipart form as well as the JSON body.
    for (path, method) in [
        ("/api/materials", "post"),
        ("/api/materials/{id}", "put"),
        ("/api/materials/search", "post"),
    ] {
        let content = &operation(&doc, path, method)["requestBody"]["content"];
        assert!(content["application/json"]["schema"].is_object(), "{path}");
        let form = &content["multipart/form-data"]["schema"];
        assert!(form["$ref"].is_string(), "{method} {path}: {content}");
    }
    let upload = &doc["components"]["schemas"]["MaterialUpload"]["properties"];
    assert_eq!(upload["image"]["items"]["format"], "binary", "{upload}");

    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert!(error["properties"]["error"].is_object(), "{error}");
}

#[tokio::test]
async fn every_documented_path_is_routed() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    let (_, doc) = send(&server.app, get("/openapi.json")).await;
    let paths: BTreeSet<&str> = OPERATIONS.iter().map(|(path, _)| *path).collect();
    for path in paths {
        let uri = path
            .replace("{id}", "no-such-material")
            .replace("{name}", "no-such-name");
        // A method the path does not serve: the router returns 405 for a routed path and
        // 404 for an unknown one, without running a handler.
        let unused = METHODS
            .iter()
            .find(|m| doc["paths"][path].get(**m).is_none() && **m != "head" && **m != "options")
            .expect("an unused method");
        let request = Request::builder()
            .method(unused.to_uppercase().as_str())
            .uri(&uri)
            .body(Body::empty())
            .expect("valid request");
        let (status, _) = send(&server.app, request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{unused} {uri}");
    }
    let (status, _) = send(&server.app, get("/api/no-such-route")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn document_passes_a_validator() {
    let Some(doc) = document().await else { return };
    let check = "import json, sys\n\
                 from openapi_spec_validator import validate\n\
                 validate(json.load(sys.stdin))";
    // scripts/test installs the validator into its own environment and names its Python
    // in KAI_TEST_PYTHON.
    let python = std::env::var("KAI_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = std::process::Command::new(&python)
        .args(["-c", "import openapi_spec_validator"])
        .output();
    if !probe.is_ok_and(|output| output.status.success()) {
        eprintln!(
            "skipped: the OpenAPI validator is not installed for {python}; run \
             `scripts/test` (or `pip install openapi-spec-validator`) to check the document \
             against the specification"
        );
        return;
    }
    let mut child = std::process::Command::new(&python)
        .args(["-c", check])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 starts");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(doc.to_string().as_bytes())
            .expect("the document is written");
    }
    let output = child.wait_with_output().expect("the validator ends");
    assert!(
        output.status.success(),
        "the document is not valid OpenAPI: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
