//! `/api/recon/jobs` and the reconstruction MCP tools: rejected submits, a synthetic scene
//! polled to a finished model, file downloads and unknown jobs.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use kai_core::recon::synthetic::{SceneOptions, SyntheticScene};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{self, error_message, get, multipart, send};
use crate::mcp;

/// How long a test waits for a job to finish.
const JOB_TIMEOUT: Duration = Duration::from_secs(300);
const JOBS: &str = "/api/recon/jobs";

/// Renders a small synthetic scene once per run and returns its photos as (name, PNG
/// bytes).
fn scene_photos() -> &'static [(String, Vec<u8>)] {
    static PHOTOS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    PHOTOS.get_or_init(|| {
        let scene = SyntheticScene::generate(&SceneOptions {
            images: 8,
            width: 400,
            height: 300,
            seed: 3,
            arc_degrees: 80.0,
            ..SceneOptions::default()
        })
        .expect("the scene renders");
        let dir = tempfile::tempdir().expect("temporary folder");
        let paths: Vec<PathBuf> = scene.write_images(dir.path()).expect("photos written");
        scene
            .names
            .iter()
            .zip(paths)
            .map(|(name, path)| (name.clone(), std::fs::read(path).expect("photo readable")))
            .collect()
    })
}

/// Two photos whose PNG header is intact but whose pixel data is cut off.
fn truncated_photos() -> Vec<(String, Vec<u8>)> {
    scene_photos()[..2]
        .iter()
        .map(|(name, bytes)| (format!("cut_{name}"), bytes[..60].to_vec()))
        .collect()
}

/// Builds the submit request of `photos`, plus `extra` text fields.
fn submit(photos: &[(String, Vec<u8>)], extra: &[(&str, &str)]) -> Request<Body> {
    let mut parts: Vec<(&str, Option<&str>, &[u8])> = photos
        .iter()
        .map(|(name, bytes)| ("images", Some(name.as_str()), bytes.as_slice()))
        .collect();
    for (name, value) in extra {
        parts.push((name, None, value.as_bytes()));
    }
    multipart(JOBS, &parts)
}

/// Polls the job until it is finished and returns it.
async fn wait_until_finished(app: &Router, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let (status, job) = send(app, get(&format!("{JOBS}/{id}"))).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if job["status"] == "succeeded" || job["status"] == "failed" {
            return job;
        }
        assert!(
            start.elapsed() < JOB_TIMEOUT,
            "job {id} did not finish within {JOB_TIMEOUT:?}: {job}"
        );
        // Once a second stays under the default limit of 100 requests a minute, since a
        // job that runs the whole pipeline takes a minute or more.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn submit_without_photos_is_422() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    let (status, body) = send(&server.app, submit(&[], &[("parameterSet", "standard")])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = error_message(&body, "KAI_INVALID_INPUT");
    assert!(message.contains("missing field `images`"), "{message}");

    let unknown = multipart(JOBS, &[("image", Some("a.png"), b"x")]);
    let (status, body) = send(&server.app, unknown).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = error_message(&body, "KAI_INVALID_INPUT");
    assert!(message.contains("unknown field `image`"), "{message}");
}

#[tokio::test]
async fn submit_rejects_bad_photos() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    let photos = scene_photos();

    let (status, body) = send(&server.app, submit(&photos[..1], &[])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = error_message(&body, "KAI_INVALID_INPUT");
    assert!(message.contains("at least 2 photos, got 1"), "{message}");

    let mut garbage = photos[..2].to_vec();
    garbage[1] = ("notes.png".to_owned(), b"these are not pixels".to_vec());
    let (status, body) = send(&server.app, submit(&garbage, &[])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = error_message(&body, "KAI_INVALID_INPUT");
    assert!(message.contains("photo `notes.png`"), "{message}");

    let mut twice = photos[..2].to_vec();
    twice[1].0 = twice[0].0.clone();
    let (status, body) = send(&server.app, submit(&twice, &[])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = error_message(&body, "KAI_INVALID_INPUT");
    assert!(message.contains("given twice"), "{message}");

    let (status, body) = send(
        &server.app,
        submit(&photos[..2], &[("parameterSet", "no-such-set")]),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let message = error_message(&body, "KAI_NOT_FOUND");
    assert!(message.contains("no-such-set"), "{message}");

    let (status, body) = send(&server.app, get(JOBS)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["jobs"], json!([]), "rejected submits leave no job");
}

#[tokio::test]
async fn submit_over_max_images_is_413() {
    let Some(server) = common::server(&[("KAI_RECON_MAX_IMAGES", "2")]) else {
        return;
    };
    let (status, body) = send(&server.app, submit(&scene_photos()[..3], &[])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let message = error_message(&body, "KAI_INVALID_INPUT");
    assert!(message.contains("KAI_RECON_MAX_IMAGES"), "{message}");
    assert!(message.contains("at most 2 photos"), "{message}");
}

#[tokio::test]
async fn unknown_jobs_and_files_are_404() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    let unknown = "0b7e1f2a-9c3d-4e5f-8a6b-7c8d9e0f1a2b";
    for uri in [
        format!("{JOBS}/{unknown}"),
        format!("{JOBS}/not-a-job"),
        format!("{JOBS}/{unknown}/files/cameras.txt"),
        format!("{JOBS}/..%2F..%2Fkai.db/files/cameras.txt"),
    ] {
        let (status, body) = send(&server.app, get(&uri)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
        error_message(&body, "KAI_NOT_FOUND");
    }
}

#[tokio::test]
async fn corrupt_photos_fail_the_job() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    let (status, job) = send(&server.app, submit(&truncated_photos(), &[])).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().expect("an id").to_owned();

    let job = wait_until_finished(&server.app, &id).await;
    assert_eq!(job["status"], "failed", "{job}");
    let message = job["error"]["message"].as_str().expect("a message");
    assert!(!message.is_empty(), "{job}");
    assert!(job["result"].is_null(), "{job}");
    assert_eq!(job["files"], json!([]), "{job}");

    let (status, body) = send(&server.app, get(&format!("{JOBS}/{id}/files/points.ply"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn synthetic_scene_reconstructs_and_downloads() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    let response = server
        .app
        .clone()
        .oneshot(submit(scene_photos(), &[("parameterSet", "standard")]))
        .await
        .expect("the router answers");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()[header::LOCATION]
        .to_str()
        .expect("an ASCII location")
        .to_owned();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let job: Value = serde_json::from_slice(&bytes).expect("JSON");
    let id = job["id"].as_str().expect("an id").to_owned();
    assert_eq!(location, format!("{JOBS}/{id}"));
    assert!(
        job["status"] == "queued" || job["status"] == "running",
        "{job}"
    );
    assert!(job["createdAt"].is_string(), "{job}");

    let job = wait_until_finished(&server.app, &id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["progress"], 1.0, "{job}");
    let result = &job["result"];
    assert_eq!(result["images"], 8, "{job}");
    let registered = result["registeredImages"].as_u64().expect("a count");
    assert!(registered >= 7, "{job}");
    let error = result["meanReprojectionError"].as_f64().expect("a number");
    assert!(error < 1.0, "{job}");
    let model = &result["model"];
    assert!(model["densePoints"].as_u64() > Some(1000), "{job}");
    let levels = model["levels"].as_array().expect("levels");
    assert_eq!(levels.len(), 3, "{job}");
    assert_eq!(levels[0]["file"], "model.glb", "{job}");
    assert_eq!(
        job["files"],
        json!([
            "model.glb",
            "model.lod1.glb",
            "model.lod2.glb",
            "cameras.txt",
            "images.txt",
            "points3D.txt",
            "points.ply",
            "dense.ply",
            "mesh.ply"
        ])
    );

    for (name, content_type) in [
        ("model.glb", "model/gltf-binary"),
        ("model.lod2.glb", "model/gltf-binary"),
        ("mesh.ply", "application/octet-stream"),
        ("cameras.txt", "text/plain; charset=utf-8"),
        ("images.txt", "text/plain; charset=utf-8"),
        ("points3D.txt", "text/plain; charset=utf-8"),
        ("points.ply", "application/octet-stream"),
    ] {
        let response = server
            .app
            .clone()
            .oneshot(get(&format!("{JOBS}/{id}/files/{name}")))
            .await
            .expect("the router answers");
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            content_type,
            "{name}"
        );
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        assert!(!bytes.is_empty(), "{name} is empty");
        if name.ends_with(".glb") {
            assert_eq!(&bytes[..4], b"glTF", "{name}");
        }
        if name == "images.txt" {
            let text = String::from_utf8_lossy(&bytes);
            assert!(text.contains(&scene_photos()[0].0), "{text}");
        }
    }
    for name in ["job.json", "images", "..%2Fjob.json"] {
        let (status, body) = send(&server.app, get(&format!("{JOBS}/{id}/files/{name}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}: {body}");
    }

    let (status, list) = send(&server.app, get(JOBS)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["jobs"][0]["id"], id.as_str(), "{list}");

    // MCP returns the same files as base64.
    let file = mcp::call(
        &server.app,
        "get_reconstruction_file",
        json!({"id": id, "name": "model.lod2.glb"}),
    )
    .await;
    assert_ne!(file["isError"], true, "{file}");
    let output = &file["structuredContent"];
    assert_eq!(output["mimeType"], "model/gltf-binary", "{output}");
    let data = output["dataBase64"].as_str().expect("base64");
    // "glT", the first three bytes of every GLB, in base64.
    assert!(data.starts_with("Z2xU"), "{}", &data[..16.min(data.len())]);
    assert_eq!(
        output["size"].as_u64(),
        Some(data.len() as u64 / 4 * 3 - data.matches('=').count() as u64)
    );
    for (arguments, expected) in [
        (json!({"id": id, "name": "job.json"}), "job.json"),
        (json!({"id": id}), "name"),
        (json!({"id": "nope", "name": "model.glb"}), "not found"),
    ] {
        let failed = mcp::call(&server.app, "get_reconstruction_file", arguments.clone()).await;
        assert_eq!(failed["isError"], true, "{arguments}: {failed}");
        assert!(
            mcp::text(&failed).contains(expected),
            "{arguments}: {failed}"
        );
    }
}

#[tokio::test]
async fn mcp_tools_submit_and_report_jobs() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    let bad = mcp::call(
        &server.app,
        "submit_reconstruction",
        json!({"images": [{"name": "a.png", "data": "***"}, {"name": "b.png", "data": "***"}]}),
    )
    .await;
    assert_eq!(bad["isError"], true, "{bad}");
    assert!(mcp::text(&bad).contains("images[0].data"), "{bad}");

    let unknown = mcp::call(
        &server.app,
        "get_reconstruction_job",
        json!({"id": "0b7e1f2a-9c3d-4e5f-8a6b-7c8d9e0f1a2b"}),
    )
    .await;
    assert_eq!(unknown["isError"], true, "{unknown}");
    assert!(mcp::text(&unknown).contains("not found"), "{unknown}");

    let images: Vec<Value> = truncated_photos()
        .iter()
        .map(|(name, bytes)| json!({"name": name, "data": mcp::base64(bytes)}))
        .collect();
    let submitted = mcp::call(
        &server.app,
        "submit_reconstruction",
        json!({"images": images, "set": "standard"}),
    )
    .await;
    assert_ne!(submitted["isError"], true, "{submitted}");
    let id = submitted["structuredContent"]["id"]
        .as_str()
        .expect("an id")
        .to_owned();

    let start = Instant::now();
    let job = loop {
        let result = mcp::call(&server.app, "get_reconstruction_job", json!({"id": id})).await;
        assert_ne!(result["isError"], true, "{result}");
        let job = result["structuredContent"].clone();
        if job["status"] == "failed" || job["status"] == "succeeded" {
            break job;
        }
        assert!(start.elapsed() < JOB_TIMEOUT, "{job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job["error"]["code"].is_string(), "{job}");

    // The REST route reads the same queue.
    let (status, body) = send(&server.app, get(&format!("{JOBS}/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
}
