//! The inference routes: texture classes, recognition, text and image embeddings and
//! quality, their errors, and the dynamic batching of concurrent requests.

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use kai_core::image::{ImageLimits, RgbImage, open};
use kai_core::models::{DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL};
use kai_core::recognize::RecognizeOptions;
use kai_core::registry::WriteOptions;
use kai_server::server::batch::BatchKind;
use serde_json::{Value, json};

use crate::common::{self, TestServer};

/// Rate limits high enough that no test here reaches them.
const UNLIMITED: [(&str, &str); 2] = [
    ("ML_RATE_LIMIT", "100000"),
    ("DEFAULT_RATE_LIMIT", "100000"),
];

/// Builds a server with the default configuration and no rate limits in the way.
fn server(vars: &[(&str, &str)]) -> Option<TestServer> {
    let mut all: Vec<(&str, &str)> = UNLIMITED.to_vec();
    all.extend_from_slice(vars);
    common::server(&all)
}

fn photo_bytes(name: &str) -> Vec<u8> {
    std::fs::read(common::photo(name)).expect("the query photo exists")
}

fn decoded(path: &Path) -> RgbImage {
    open(path, &ImageLimits::default()).expect("the photo decodes")
}

/// Encodes a 24-bit BMP of `width`×`height` pixels with a colour gradient. `claimed`
/// replaces the size written in the header, for files whose header lies.
fn bmp(width: u32, height: u32, claimed: Option<(u32, u32)>) -> Vec<u8> {
    let row = (width * 3).div_ceil(4) * 4;
    let pixels = row * height;
    let (header_width, header_height) = claimed.unwrap_or((width, height));
    let mut out = Vec::new();
    out.extend_from_slice(b"BM");
    out.extend_from_slice(&(54 + pixels).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&54u32.to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&header_width.to_le_bytes());
    out.extend_from_slice(&header_height.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&24u16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&pixels.to_le_bytes());
    out.extend_from_slice(&2835u32.to_le_bytes());
    out.extend_from_slice(&2835u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for y in 0..height {
        for x in 0..width {
            out.extend_from_slice(&[(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8]);
        }
        out.resize(out.len() + (row - width * 3) as usize, 0);
    }
    out
}

/// Builds a multipart request with one photo and text fields.
fn upload(uri: &str, image: &[u8], fields: &[(&str, &str)]) -> Request<Body> {
    let mut parts: Vec<(&str, Option<&str>, &[u8])> = vec![("image", Some("photo.jpg"), image)];
    for (name, value) in fields {
        parts.push((*name, None, value.as_bytes()));
    }
    common::multipart(uri, &parts)
}

/// Sends every request at once and returns the responses in request order.
async fn send_all(app: &Router, requests: Vec<Request<Body>>) -> Vec<(StatusCode, Value)> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let app = app.clone();
            tokio::spawn(async move { common::send(&app, request).await })
        })
        .collect();
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.expect("the request task finishes"));
    }
    responses
}

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .expect("an array of numbers")
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

const STONE: &str = "heldout-cracked-grey-rock.jpg";
const WOOD: &str = "heldout-dark-brown-planks.jpg";
const RUG: &str = "heldout-blue-field-rug.jpg";
const METAL: &str = "heldout-rusted-metal-sheet.jpg";
/// A photo of a catalog material, so its class is known.
const PLANKS: &str = "altered-red-brown-plank-floor.jpg";

#[tokio::test]
async fn classify_texture_returns_five_classes() {
    let Some(server) = server(&[]) else { return };
    let (status, body) = common::send(
        &server.app,
        upload("/api/classify-texture", &photo_bytes(PLANKS), &[]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let classes = body["classes"].as_array().expect("classes");
    assert_eq!(classes.len(), 5, "{body}");
    assert_eq!(classes[0]["materialType"], "wood", "{body}");
    let confidences: Vec<f64> = classes
        .iter()
        .map(|c| c["confidence"].as_f64().expect("confidence"))
        .collect();
    assert!(confidences.windows(2).all(|w| w[0] >= w[1]), "{body}");
    assert!(
        confidences.iter().all(|c| (0.0..=1.0).contains(c)),
        "{body}"
    );
    assert_eq!(body["unknown"], false);
    assert!(body["processingTimeMs"].as_f64().expect("time") > 0.0);
}

#[tokio::test]
async fn recognize_matches_the_library() {
    let Some(server) = server(&[]) else { return };
    let fields = [("topK", "3"), ("hint", "grey stone"), ("hintWeight", "0.5")];
    let (status, body) = common::send(
        &server.app,
        upload("/api/recognize", &photo_bytes(STONE), &fields),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for key in [
        "materials",
        "classes",
        "unknown",
        "processingTimeMs",
        "classifiedBy",
        "quality",
    ] {
        assert!(body.get(key).is_some(), "{key} missing in {body}");
    }

    let options = RecognizeOptions {
        top_k: 3,
        hint: Some("grey stone".into()),
        hint_weight: 0.5,
        ..Default::default()
    };
    let expected = server
        .state
        .catalog()
        .recognize(&decoded(&common::photo(STONE)), &options)
        .expect("the library recognizes the photo");

    let materials = body["materials"].as_array().expect("materials");
    assert_eq!(materials.len(), 3);
    for (got, want) in materials.iter().zip(&expected.materials) {
        assert_eq!(got["id"], want.id.as_str(), "{body}");
        let score = got["score"].as_f64().expect("score") as f32;
        assert!(
            (score - want.score).abs() < 1e-4,
            "{score} vs {}",
            want.score
        );
    }
    assert_eq!(
        body["classes"][0]["materialType"],
        expected.classes[0].material_type.as_str()
    );
    assert_eq!(body["classifiedBy"], expected.classified_by);
    assert!(body["quality"]["score"].is_number(), "{body}");
}

#[tokio::test]
async fn recognize_takes_options_from_the_registry() {
    let Some(server) = server(&[]) else { return };
    let registry = server.state.registry();
    let values = registry
        .parse_assignments(&["recognition.top_k=2"])
        .expect("valid assignment");
    registry
        .set("lean", None, &values, &WriteOptions::by("test"))
        .expect("the set is written");
    let image = photo_bytes(WOOD);

    let (status, body) = common::send(
        &server.app,
        upload("/api/recognize", &image, &[("parameterSet", "lean")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["materials"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );

    // A form field overrides the set's value.
    let fields = [("parameterSet", "lean"), ("topK", "4")];
    let (status, body) = common::send(&server.app, upload("/api/recognize", &image, &fields)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["materials"].as_array().map(Vec::len),
        Some(4),
        "{body}"
    );

    let (status, body) = common::send(
        &server.app,
        upload("/api/recognize", &image, &[("parameterSet", "no-such-set")]),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let message = common::error_message(&body, "KAI_NOT_FOUND");
    assert!(message.contains("no-such-set"), "{message}");
}

#[tokio::test]
async fn image_errors_name_the_value() {
    let Some(server) = server(&[
        ("KAI_MAX_IMAGE_BYTES", "100000"),
        ("KAI_MAX_IMAGE_PIXELS", "4000000"),
    ]) else {
        return;
    };
    let app = &server.app;
    let mut truncated = photo_bytes(WOOD);
    truncated.truncate(truncated.len() / 2);
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        ("empty", Vec::new(), StatusCode::BAD_REQUEST, "empty"),
        (
            "corrupt",
            b"not an image at all".to_vec(),
            StatusCode::BAD_REQUEST,
            "image",
        ),
        ("truncated", truncated, StatusCode::BAD_REQUEST, "image"),
        (
            "over the byte limit",
            vec![0u8; 100_001],
            StatusCode::PAYLOAD_TOO_LARGE,
            "KAI_MAX_IMAGE_BYTES",
        ),
        (
            "over the pixel limit",
            bmp(4, 4, Some((5000, 5000))),
            StatusCode::BAD_REQUEST,
            "pixels",
        ),
        (
            "below the minimum resolution",
            bmp(32, 32, None),
            StatusCode::BAD_REQUEST,
            "shorter side",
        ),
    ];
    for uri in ["/api/recognize", "/api/classify-texture"] {
        for (case, image, status, needle) in &cases {
            let (got, body) = common::send(app, upload(uri, image, &[])).await;
            assert_eq!(got, *status, "{uri} {case}: {body}");
            let message = common::error_message(&body, "KAI_INVALID_INPUT");
            assert!(message.contains(needle), "{uri} {case}: {message}");
        }
    }
}

#[tokio::test]
async fn form_errors_name_the_field() {
    let Some(server) = server(&[]) else { return };
    let app = &server.app;
    let image = photo_bytes(WOOD);

    let request = common::multipart("/api/recognize", &[("topK", None, b"3".as_slice())]);
    let (status, body) = common::send(app, request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(common::error_message(&body, "KAI_INVALID_INPUT").contains("`image`"));

    let (status, body) =
        common::send(app, upload("/api/recognize", &image, &[("colour", "red")])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(common::error_message(&body, "KAI_INVALID_INPUT").contains("colour"));

    for (field, value) in [
        ("topK", "three"),
        ("topK", "0"),
        ("hintWeight", "2"),
        ("minResolution", "-1"),
    ] {
        let (status, body) =
            common::send(app, upload("/api/recognize", &image, &[(field, value)])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}: {body}");
        let message = common::error_message(&body, "KAI_INVALID_INPUT");
        let snake = match field {
            "topK" => "top_k",
            "hintWeight" => "hint_weight",
            other => other,
        };
        assert!(
            message.contains(field) || message.contains(snake),
            "{field}: {message}"
        );
    }

    let two = common::multipart(
        "/api/recognize",
        &[
            ("image", Some("a.jpg"), image.as_slice()),
            ("image", Some("b.jpg"), image.as_slice()),
        ],
    );
    let (status, body) = common::send(app, two).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let not_multipart = common::json("POST", "/api/recognize", &json!({"image": "x"}));
    let (status, body) = common::send(app, not_multipart).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert!(common::error_message(&body, "KAI_INVALID_INPUT").contains("multipart"));
}

#[tokio::test]
async fn embed_text_matches_the_model() {
    let Some(server) = server(&[]) else { return };
    let texts = ["oak parquet flooring", "polished grey granite", ""];
    let (status, body) = common::send(
        &server.app,
        common::json("POST", "/api/embed/text", &json!({ "texts": texts })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["model"], DEFAULT_TEXT_MODEL);
    assert_eq!(body["dimension"], 384);
    let vectors = body["vectors"].as_array().expect("vectors");
    assert_eq!(vectors.len(), texts.len());
    let model = server
        .state
        .models()
        .text(DEFAULT_TEXT_MODEL)
        .expect("model");
    for (vector, text) in vectors.iter().zip(texts) {
        let expected = model.embed_one(text).expect("embeds");
        assert!(max_difference(&floats(vector), &expected) < 1e-4, "{text}");
    }

    let (status, body) = common::send(
        &server.app,
        common::json(
            "POST",
            "/api/embed/text",
            &json!({ "text": "brushed steel", "model": "ALL-MiniLM-L6-v2" }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["vectors"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["model"], DEFAULT_TEXT_MODEL);
}

#[tokio::test]
async fn embed_text_errors() {
    let Some(server) = server(&[]) else { return };
    let app = &server.app;
    let post = |body: Value| common::json("POST", "/api/embed/text", &body);
    let cases: Vec<(Request<Body>, StatusCode, &str, &str)> = vec![
        (
            post(json!({"texts": []})),
            StatusCode::BAD_REQUEST,
            "KAI_INVALID_INPUT",
            "texts",
        ),
        (
            post(json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "KAI_INVALID_INPUT",
            "texts",
        ),
        (
            post(json!({"texts": 5})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "KAI_INVALID_INPUT",
            "texts",
        ),
        (
            post(json!({"txts": ["a"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "KAI_INVALID_INPUT",
            "txts",
        ),
        (
            post(json!({"texts": vec!["a"; 257]})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "KAI_INVALID_INPUT",
            "256",
        ),
        (
            post(json!({"texts": ["x".repeat(70_000)]})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "KAI_INVALID_INPUT",
            "text 0",
        ),
        (
            post(json!({"text": "a", "model": "no-such-model"})),
            StatusCode::NOT_FOUND,
            "KAI_NOT_FOUND",
            "no-such-model",
        ),
        (
            post(json!({"text": "a", "model": DEFAULT_IMAGE_MODEL})),
            StatusCode::BAD_REQUEST,
            "KAI_INVALID_INPUT",
            "image-embedding",
        ),
        (
            post(json!({"text": "a", "model": "../models/all-minilm-l6-v2"})),
            StatusCode::BAD_REQUEST,
            "KAI_INVALID_INPUT",
            "path",
        ),
    ];
    for (request, status, code, needle) in cases {
        let (got, body) = common::send(app, request).await;
        assert_eq!(got, status, "{needle}: {body}");
        let message = common::error_message(&body, code);
        assert!(message.contains(needle), "{needle}: {message}");
    }

    let malformed = Request::post("/api/embed/text")
        .header("content-type", "application/json")
        .body(Body::from("{\"texts\": ["))
        .expect("valid request");
    let (status, body) = common::send(app, malformed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    common::error_message(&body, "KAI_INVALID_INPUT");
}

#[tokio::test]
async fn embed_image_returns_vectors_and_labels() {
    let Some(server) = server(&[]) else { return };
    let (stone, wood) = (photo_bytes(STONE), photo_bytes(WOOD));
    let request = common::multipart(
        "/api/embed/image",
        &[
            ("image", Some("a.jpg"), stone.as_slice()),
            ("image", Some("b.jpg"), wood.as_slice()),
            ("topK", None, b"2".as_slice()),
        ],
    );
    let (status, body) = common::send(&server.app, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["model"], DEFAULT_IMAGE_MODEL);
    let model = server
        .state
        .models()
        .image(DEFAULT_IMAGE_MODEL)
        .expect("model");
    assert_eq!(body["dimension"], model.dimension());
    let vectors = body["vectors"].as_array().expect("vectors");
    assert_eq!(vectors.len(), 2);
    for (vector, name) in vectors.iter().zip([STONE, WOOD]) {
        let expected = model
            .embed(&[decoded(&common::photo(name))])
            .expect("embeds");
        assert!(
            max_difference(&floats(vector), expected.as_slice()) < 1e-4,
            "{name}"
        );
    }
    let labels = body["labels"].as_array().expect("labels");
    assert_eq!(labels.len(), 2);
    for list in labels {
        assert_eq!(list.as_array().map(Vec::len), Some(2), "{body}");
        assert!(list[0]["label"].is_string(), "{body}");
        assert!(list[0]["score"].is_number(), "{body}");
    }

    let bad = common::multipart(
        "/api/embed/image",
        &[
            ("image", Some("a.jpg"), stone.as_slice()),
            ("image", Some("b.jpg"), b"garbage".as_slice()),
        ],
    );
    let (status, body) = common::send(&server.app, bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(common::error_message(&body, "KAI_INVALID_INPUT").contains("image 2"));

    let text_model = common::multipart(
        "/api/embed/image",
        &[
            ("image", Some("a.jpg"), stone.as_slice()),
            ("model", None, DEFAULT_TEXT_MODEL.as_bytes()),
        ],
    );
    let (status, body) = common::send(&server.app, text_model).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(common::error_message(&body, "KAI_INVALID_INPUT").contains("text-embedding"));

    let many: Vec<(&str, Option<&str>, &[u8])> = vec![("image", Some("a.jpg"), &stone[..]); 33];
    let (status, body) =
        common::send(&server.app, common::multipart("/api/embed/image", &many)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    common::error_message(&body, "KAI_INVALID_INPUT");
}

#[tokio::test]
async fn quality_reports_and_thresholds() {
    let Some(server) = server(&[]) else { return };
    let app = &server.app;
    let image = photo_bytes(WOOD);
    let (status, body) = common::send(app, upload("/api/quality", &image, &[])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for key in [
        "width",
        "height",
        "sharpness",
        "contrast",
        "noise",
        "score",
        "reasons",
        "passed",
    ] {
        assert!(body.get(key).is_some(), "{key} missing in {body}");
    }

    let (status, body) = common::send(
        app,
        upload("/api/quality", &image, &[("minShortSide", "60000")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["passed"], false, "{body}");
    assert!(
        body["reasons"]
            .as_array()
            .expect("reasons")
            .contains(&json!("low_resolution")),
        "{body}"
    );

    let registry = server.state.registry();
    let values = registry
        .parse_assignments(&["quality.min_short_side=60000"])
        .expect("valid assignment");
    registry
        .set("strict", None, &values, &WriteOptions::by("test"))
        .expect("the set is written");
    let (status, body) = common::send(
        app,
        upload("/api/quality", &image, &[("parameterSet", "strict")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["passed"], false, "{body}");

    for (field, value, needle) in [
        ("maxNoise", "loud", "maxNoise"),
        ("minShortSide", "1.5", "quality thresholds"),
        ("maxNoise", "-1", "maxNoise"),
        ("minSharpness", "-1", "minSharpness"),
    ] {
        let (status, body) =
            common::send(app, upload("/api/quality", &image, &[(field, value)])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}: {body}");
        let message = common::error_message(&body, "KAI_INVALID_INPUT");
        assert!(message.contains(needle), "{field}={value}: {message}");
        assert!(!message.contains('_'), "{field}={value}: {message}");
    }
}

#[tokio::test]
async fn missing_model_files_are_503() {
    let empty = tempfile::tempdir().expect("temporary folder");
    let model_dir = empty.path().to_string_lossy().into_owned();
    let Some(server) = server(&[("MODEL_DIR", &model_dir)]) else {
        return;
    };
    let (status, body) = common::send(
        &server.app,
        common::json("POST", "/api/embed/text", &json!({"text": "oak"})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = common::error_message(&body, "KAI_MODEL_NOT_FOUND");
    assert!(message.contains("kai models fetch"), "{message}");

    let (status, body) = common::send(
        &server.app,
        upload("/api/recognize", &photo_bytes(WOOD), &[]),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    common::error_message(&body, "KAI_MODEL_NOT_FOUND");
}

#[tokio::test]
async fn concurrent_texts_share_one_batch() {
    const N: usize = 6;
    let Some(server) = server(&[("MAX_BATCH_SIZE", "6"), ("KAI_BATCH_WINDOW_MS", "5000")]) else {
        return;
    };
    // The model loads before the requests, so none of them waits for the load.
    let model = server
        .state
        .models()
        .text(DEFAULT_TEXT_MODEL)
        .expect("model");
    let texts: Vec<String> = (0..N)
        .map(|i| format!("sample {i}: {}", "oak plank ".repeat(i + 1)))
        .collect();
    let requests = texts
        .iter()
        .map(|text| common::json("POST", "/api/embed/text", &json!({ "text": text })))
        .collect();
    let responses = send_all(&server.app, requests).await;

    let stats = server.state.batch_stats(BatchKind::Text);
    assert_eq!(stats.batches, 1, "{stats:?}");
    assert_eq!(stats.largest, N, "{stats:?}");
    for ((status, body), text) in responses.iter().zip(&texts) {
        assert_eq!(*status, StatusCode::OK, "{body}");
        let alone = model.embed_one(text).expect("embeds");
        assert!(
            max_difference(&floats(&body["vectors"][0]), &alone) < 1e-4,
            "{text}"
        );
    }
}

#[tokio::test]
async fn concurrent_photos_share_one_batch() {
    let Some(server) = server(&[("MAX_BATCH_SIZE", "4"), ("KAI_BATCH_WINDOW_MS", "5000")]) else {
        return;
    };
    server
        .state
        .models()
        .image(DEFAULT_IMAGE_MODEL)
        .expect("model");
    let good = [STONE, WOOD, RUG];
    let tiny = bmp(32, 32, None);
    let mut requests: Vec<Request<Body>> = good
        .iter()
        .map(|name| upload("/api/recognize", &photo_bytes(name), &[]))
        .collect();
    // Decodes, so it joins the batch, but fails its resolution check there.
    requests.push(upload("/api/recognize", &tiny, &[]));
    // Fails to decode, so it never reaches the batch.
    requests.push(upload("/api/recognize", b"corrupt bytes", &[]));
    let responses = send_all(&server.app, requests).await;

    let stats = server.state.batch_stats(BatchKind::Recognition);
    assert_eq!(stats.batches, 1, "{stats:?}");
    assert_eq!(stats.largest, 4, "{stats:?}");
    let catalog = server.state.catalog();
    for ((status, body), name) in responses.iter().zip(good) {
        assert_eq!(*status, StatusCode::OK, "{name}: {body}");
        let alone = catalog
            .recognize(&decoded(&common::photo(name)), &RecognizeOptions::default())
            .expect("recognizes alone");
        let ids: Vec<&str> = body["materials"]
            .as_array()
            .expect("materials")
            .iter()
            .map(|m| m["id"].as_str().expect("id"))
            .collect();
        let expected: Vec<&str> = alone.materials.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, expected, "{name}");
        let score = body["materials"][0]["score"].as_f64().expect("score") as f32;
        assert!((score - alone.materials[0].score).abs() < 1e-4, "{name}");
        assert_eq!(
            body["classes"][0]["materialType"],
            alone.classes[0].material_type.as_str()
        );
    }
    let (status, body) = &responses[3];
    assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
    assert!(common::error_message(body, "KAI_INVALID_INPUT").contains("shorter side"));
    let (status, body) = &responses[4];
    assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
    common::error_message(body, "KAI_INVALID_INPUT");
}

#[tokio::test]
async fn concurrent_image_embeddings_share_one_batch() {
    let Some(server) = server(&[("MAX_BATCH_SIZE", "3"), ("KAI_BATCH_WINDOW_MS", "5000")]) else {
        return;
    };
    let model = server
        .state
        .models()
        .image(DEFAULT_IMAGE_MODEL)
        .expect("model");
    let names = [STONE, WOOD, METAL];
    let top_ks = ["1", "3", "0"];
    let requests = names
        .iter()
        .zip(top_ks)
        .map(|(name, top_k)| upload("/api/embed/image", &photo_bytes(name), &[("topK", top_k)]))
        .collect();
    let responses = send_all(&server.app, requests).await;

    let stats = server.state.batch_stats(BatchKind::Image);
    assert_eq!(stats.batches, 1, "{stats:?}");
    assert_eq!(stats.largest, 3, "{stats:?}");
    for (((status, body), name), top_k) in responses.iter().zip(names).zip(top_ks) {
        assert_eq!(*status, StatusCode::OK, "{name}: {body}");
        let alone = model
            .embed(&[decoded(&common::photo(name))])
            .expect("embeds");
        assert!(
            max_difference(&floats(&body["vectors"][0]), alone.as_slice()) < 1e-4,
            "{name}"
        );
        let labels = body["labels"][0].as_array().expect("labels").len();
        assert_eq!(labels.to_string(), top_k, "{name}: {body}");
    }
}

#[tokio::test]
async fn batching_off_runs_each_request_alone() {
    let Some(server) = server(&[("MAX_BATCH_SIZE", "1"), ("KAI_BATCH_WINDOW_MS", "5000")]) else {
        return;
    };
    let requests = (0..3)
        .map(|i| {
            common::json(
                "POST",
                "/api/embed/text",
                &json!({ "text": format!("text {i}") }),
            )
        })
        .collect();
    let responses = send_all(&server.app, requests).await;
    for (status, body) in &responses {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    let stats = server.state.batch_stats(BatchKind::Text);
    assert_eq!(stats.batches, 3, "{stats:?}");
    assert_eq!(stats.largest, 1, "{stats:?}");
}

#[tokio::test]
async fn openapi_documents_the_routes() {
    let Some(server) = server(&[]) else { return };
    let (status, doc) = common::send(&server.app, common::get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    for (path, method) in [
        ("/api/classify-texture", "post"),
        ("/api/recognize", "post"),
        ("/api/embed/text", "post"),
        ("/api/embed/image", "post"),
        ("/api/quality", "post"),
        ("/api/models", "get"),
        ("/api/models/{name}/load", "post"),
        ("/api/models/{name}/unload", "post"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    let recognize = &doc["paths"]["/api/recognize"]["post"];
    let form = &recognize["requestBody"]["content"]["multipart/form-data"]["schema"];
    assert!(form["properties"]["image"].is_object(), "{recognize}");
    assert!(form["properties"]["topK"].is_object(), "{recognize}");
}

#[tokio::test]
async fn recognize_names_fields_in_camel_case() {
    let Some(server) = server(&[]) else { return };
    let image = photo_bytes(WOOD);
    for (field, value) in [
        ("topK", "0"),
        ("hintWeight", "2"),
        ("unknownThreshold", "3"),
    ] {
        let request = upload("/api/recognize", &image, &[(field, value)]);
        let (status, body) = common::send(&server.app, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}: {body}");
        let message = common::error_message(&body, "KAI_INVALID_INPUT");
        assert!(message.contains(field), "{field}={value}: {message}");
    }
}

#[tokio::test]
async fn exact_matches_score_at_most_one() {
    let Some(server) = server(&[]) else { return };
    let catalog = common::repo().join("examples/catalog");
    let records: Value = serde_json::from_slice(
        &std::fs::read(catalog.join("catalog.json")).expect("the catalog file"),
    )
    .expect("the catalog is JSON");
    let requests: Vec<Request<Body>> = records
        .as_array()
        .expect("a list of records")
        .iter()
        .take(12)
        .map(|record| {
            let path = record["images"][0].as_str().expect("an image path");
            let bytes = std::fs::read(catalog.join(path)).expect("the catalog photo");
            upload("/api/recognize", &bytes, &[])
        })
        .collect();
    for (status, body) in send_all(&server.app, requests).await {
        assert_eq!(status, StatusCode::OK, "{body}");
        let best = body["materials"][0]["score"].as_f64().expect("a score");
        assert!(best <= 1.0, "{body}");
        assert!(best > 0.99, "a catalog photo matches itself: {body}");
    }
}

#[tokio::test]
async fn decodes_wait_for_a_permit() {
    let Some(server) = server(&[]) else { return };
    let app = &server.app;
    let limit = server.state.decode_limit();
    let capacity = limit.counts().capacity;
    assert!(capacity >= 2, "{:?}", limit.counts());

    // The test holds every permit, so each request below must wait before it decodes.
    let held: Vec<_> = (0..capacity).map(|_| limit.acquire()).collect();
    let image = photo_bytes(WOOD);
    let record =
        json!({"id": "decoded-planks", "name": "Planks", "materialType": "wood"}).to_string();
    let requests = vec![
        upload("/api/recognize", &image, &[]),
        upload("/api/classify-texture", &image, &[]),
        upload("/api/quality", &image, &[]),
        upload("/api/embed/image", &image, &[]),
        upload("/api/materials/search", &image, &[]),
        common::multipart(
            "/api/materials",
            &[
                ("record", None, record.as_bytes()),
                ("image", Some("planks.jpg"), &image),
            ],
        ),
    ];
    let count = requests.len();
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let app = app.clone();
            tokio::spawn(async move { common::send(&app, request).await })
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while limit.counts().waiting < count {
        assert!(
            std::time::Instant::now() < deadline,
            "the requests never waited for a permit: {:?}",
            limit.counts()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let counts = limit.counts();
    assert_eq!(counts.running, capacity, "{counts:?}");
    assert_eq!(counts.waiting, count, "{counts:?}");
    assert!(tasks.iter().all(|task| !task.is_finished()));

    drop(held);
    for task in tasks {
        let (status, body) = task.await.expect("the request task finishes");
        assert!(status.is_success(), "{status}: {body}");
    }
    let counts = limit.counts();
    assert_eq!(counts.running, 0, "{counts:?}");
    assert_eq!(counts.waiting, 0, "{counts:?}");
    assert_eq!(counts.peak, capacity, "{counts:?}");
}

#[tokio::test]
async fn rejected_uploads_still_get_their_answer() {
    let vars = [
        ("KAI_MAX_IMAGE_BYTES", "100000"),
        UNLIMITED[0],
        UNLIMITED[1],
    ];
    let Some(server) = common::server(&vars) else {
        return;
    };
    let address = serve_locally(&server).await;
    // A photo 120 times over the limit: the server rejects it after the first 100 kB and
    // must still read the rest, or the client's pending data resets the connection and
    // the 413 is lost.
    let (sent, read, text) = raw_upload(address, 12_000_000).await;
    assert!(sent, "the upload was cut off: {text}");
    assert!(read, "the connection was reset: {text}");
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("KAI_MAX_IMAGE_BYTES"), "{text}");
}

#[tokio::test]
async fn rate_limited_uploads_still_get_their_answer() {
    let Some(server) = common::server(&[("ML_RATE_LIMIT", "1")]) else {
        return;
    };
    let address = serve_locally(&server).await;
    let (_, _, first) = raw_upload(address, 1_000).await;
    assert!(first.starts_with("HTTP/1.1 400"), "{first}");
    // The second is over the budget before its body is read.
    let (sent, read, text) = raw_upload(address, 12_000_000).await;
    assert!(sent, "the upload was cut off: {text}");
    assert!(read, "the connection was reset: {text}");
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after"), "{text}");
}

/// Serves the test server's state on a free port of 127.0.0.1.
async fn serve_locally(server: &TestServer) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let address = listener.local_addr().expect("the bound address");
    let app = kai_server::server::router(server.state.clone())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// Posts a multipart photo of `size` filler bytes to /api/quality over a real socket and
/// returns whether the whole upload was sent, whether the response was read without a
/// reset, and the raw response.
async fn raw_upload(address: std::net::SocketAddr, size: usize) -> (bool, bool, String) {
    let boundary = "kai-drain-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend(std::iter::repeat_n(0xAB_u8, size));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let head = format!(
        "POST /api/quality HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; \
         boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(address).expect("connects");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .expect("read timeout");
        stream.write_all(head.as_bytes()).expect("head sent");
        let sent = stream.write_all(&body);
        let mut response = Vec::new();
        let read = stream.read_to_end(&mut response);
        (
            sent.is_ok(),
            read.is_ok(),
            String::from_utf8_lossy(&response).into_owned(),
        )
    })
    .await
    .expect("the client thread finishes")
}
