//! `/api/materials`, `/api/heads` and `/api/catalog` against a copy of the sample store.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{self, error_message, get, json, multipart, photo, send};

/// Rate limits high enough for the many requests of one test.
pub const UNLIMITED: &[(&str, &str)] = &[
    ("DEFAULT_RATE_LIMIT", "100000"),
    ("ML_RATE_LIMIT", "100000"),
];

/// Sends `request` and returns the status, the headers and the body as JSON
/// (`Value::Null` when empty or not JSON).
pub async fn send_full(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("the body is readable")
        .to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A request with a method, optional headers and a JSON body.
pub fn json_with(method: &str, uri: &str, headers: &[(&str, &str)], body: &Value) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(Body::from(body.to_string()))
        .expect("valid request")
}

/// A multipart request with another method than `common::multipart`'s POST.
fn multipart_with(method: &str, uri: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Request<Body> {
    let mut request = multipart(uri, parts);
    *request.method_mut() = method.parse().expect("valid method");
    request
}

fn ids(body: &Value) -> Vec<String> {
    body.as_array()
        .expect("a JSON array")
        .iter()
        .map(|m| m["id"].as_str().expect("an id").to_owned())
        .collect()
}

fn new_record(id: &str) -> Value {
    json!({
        "id": id,
        "name": "Test slate",
        "materialType": "Stone",
        "collectionId": "tests",
        "tags": ["Dark", "flat"],
        "description": "A flat dark slate for the server tests",
        "properties": {"finish": "honed"}
    })
}

async fn material_count(app: &Router) -> usize {
    let (status, body) = send(app, get("/api/materials?limit=1000")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().expect("a list").len()
}

#[tokio::test]
async fn list_filters_and_pages() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;

    let (status, body) = send(app, get("/api/materials")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let all = ids(&body);
    assert_eq!(all.len(), 44);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "materials are listed in id order");
    assert_eq!(body[0]["version"], 1);
    assert!(body[0]["images"][0]["path"].is_string(), "{}", body[0]);

    let (status, body) = send(app, get("/api/materials?type=Brick")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body).len(), 5);
    for material in body.as_array().expect("a list") {
        assert_eq!(material["materialType"], "brick");
    }

    let (_, body) = send(app, get("/api/materials?tag=woven&tag=RED")).await;
    let found = ids(&body);
    assert!(found.contains(&"red-prayer-rug".to_owned()), "{found:?}");
    for material in body.as_array().expect("a list") {
        let tags = material["tags"].as_array().expect("tags");
        assert!(tags.contains(&json!("woven")), "{material}");
        assert!(tags.contains(&json!("red")), "{material}");
    }

    let (_, body) = send(
        app,
        get("/api/materials?collection=ufoai-trak&type=concrete"),
    )
    .await;
    assert_eq!(ids(&body).len(), 4);

    let (_, body) = send(app, get("/api/materials?offset=40&limit=10")).await;
    assert_eq!(ids(&body), all[40..].to_vec());
    let (_, body) = send(app, get("/api/materials?offset=3&limit=2")).await;
    assert_eq!(ids(&body), all[3..5].to_vec());
}

#[tokio::test]
async fn list_rejects_bad_query() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    for (uri, named) in [
        ("/api/materials?limit=0", "limit"),
        ("/api/materials?limit=1001", "limit"),
        ("/api/materials?limit=ten", "ten"),
        ("/api/materials?offset=-1", "offset"),
        ("/api/materials?colour=red", "colour"),
        ("/api/materials?type=wood&type=stone", "type"),
    ] {
        let (status, body) = send(app, get(uri)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let message = error_message(&body, "KAI_INVALID_INPUT");
        assert!(message.contains(named), "{uri}: {message}");
    }
}

#[tokio::test]
async fn get_returns_material_and_etag() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let (status, headers, body) =
        send_full(&server.app, get("/api/materials/dark-red-brick")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "dark-red-brick");
    assert_eq!(body["materialType"], "brick");
    assert_eq!(body["collectionId"], "ufoai-trak");
    assert_eq!(headers[header::ETAG], "\"1\"");

    let (status, body) = send(&server.app, get("/api/materials/no-such-material")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_message(&body, "KAI_NOT_FOUND").contains("no-such-material"));
}

#[tokio::test]
async fn create_from_json() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let (status, headers, body) = send_full(
        app,
        json("POST", "/api/materials", &new_record("test-slate")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(headers[header::LOCATION], "/api/materials/test-slate");
    assert_eq!(headers[header::ETAG], "\"1\"");
    assert_eq!(body["version"], 1);
    assert_eq!(body["materialType"], "stone");
    assert_eq!(body["tags"], json!(["dark", "flat"]));
    assert_eq!(body["images"], json!([]));

    let (status, body) = send(app, get("/api/materials/test-slate")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["properties"]["finish"], "honed");

    // The new material is found by its words and by its collection.
    let search = json!({"query": "test slate for the server tests", "topK": 3});
    let (status, body) = send(app, json("POST", "/api/materials/search", &search)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let found: Vec<&str> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].as_str().expect("an id"))
        .collect();
    assert!(found.contains(&"test-slate"), "{body}");
    let search = json!({"query": "slate", "collection": "tests"});
    let (_, body) = send(app, json("POST", "/api/materials/search", &search)).await;
    assert_eq!(
        body["results"].as_array().expect("results").len(),
        1,
        "{body}"
    );
    assert_eq!(body["results"][0]["id"], "test-slate");
}

#[tokio::test]
async fn failed_creates_change_nothing() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let before = material_count(app).await;

    let mut existing = new_record("dark-red-brick");
    existing["name"] = json!("Overwritten");
    let (status, body) = send(app, json("POST", "/api/materials", &existing)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(error_message(&body, "KAI_CONFLICT").contains("dark-red-brick"));
    let (_, stored) = send(app, get("/api/materials/dark-red-brick")).await;
    assert_eq!(stored["name"], "Dark red brick", "{stored}");
    assert_eq!(stored["version"], 1);

    let mut bad_id = new_record("bad id");
    bad_id["name"] = json!("Bad");
    let (status, body) = send(app, json("POST", "/api/materials", &bad_id)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body, "KAI_INVALID_INPUT").contains("`bad id`"));

    let mut with_path = new_record("path-record");
    with_path["images"] = json!(["../../etc/passwd"]);
    let (status, body) = send(app, json("POST", "/api/materials", &with_path)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let mut with_path = new_record("path-record");
    with_path["images"] = json!(["images/a.jpg"]);
    let (status, body) = send(app, json("POST", "/api/materials", &with_path)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body, "KAI_INVALID_INPUT").contains("images/a.jpg"));

    let mut unknown_field = new_record("colour-record");
    unknown_field["colour"] = json!("red");
    let (status, body) = send(app, json("POST", "/api/materials", &unknown_field)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(error_message(&body, "KAI_INVALID_INPUT").contains("colour"));

    let (status, body) = send(app, json("POST", "/api/materials", &json!({"id": "x"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(error_message(&body, "KAI_INVALID_INPUT").contains("name"));

    let malformed = Request::post("/api/materials")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"id\": "))
        .expect("valid request");
    let (status, body) = send(app, malformed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body, "KAI_INVALID_INPUT").contains("JSON"));

    let text = Request::post("/api/materials")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("slate"))
        .expect("valid request");
    let (status, body) = send(app, text).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(error_message(&body, "KAI_INVALID_INPUT").contains("multipart/form-data"));

    let corrupt = multipart(
        "/api/materials",
        &[
            (
                "record",
                None,
                new_record("corrupt-photo").to_string().as_bytes(),
            ),
            ("image", Some("broken.jpg"), b"\xff\xd8\xff\xe0 not a jpeg"),
        ],
    );
    let (status, body) = send(app, corrupt).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body, "KAI_INVALID_INPUT").contains("broken.jpg"));
    let (status, _) = send(app, get("/api/materials/corrupt-photo")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    assert_eq!(material_count(app).await, before);
}

#[tokio::test]
async fn create_multipart_with_photo() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let bytes = std::fs::read(photo("heldout-grey-brick-wall.jpg")).expect("photo");
    let record = new_record("uploaded-wall").to_string();
    let request = multipart(
        "/api/materials",
        &[
            ("record", None, record.as_bytes()),
            ("image", Some("wall.jpg"), &bytes),
        ],
    );
    let (status, body) = send(app, request).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["images"].as_array().expect("images").len(), 1);
    assert!(body["images"][0]["width"].as_u64().expect("a width") > 0);

    // Searching by the same photo finds it first.
    let request = multipart("/api/materials/search", &[("image", Some("q.jpg"), &bytes)]);
    let (status, body) = send(app, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["id"], "uploaded-wall", "{body}");

    for (parts, named) in [
        (vec![("image", Some("wall.jpg"), &bytes[..])], "record"),
        (
            vec![
                ("record", None, record.as_bytes()),
                ("photo", Some("a.jpg"), &bytes[..]),
            ],
            "photo",
        ),
    ] {
        let (status, body) = send(app, multipart("/api/materials", &parts)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            error_message(&body, "KAI_INVALID_INPUT").contains(named),
            "{body}"
        );
    }
    let (status, body) = send(
        app,
        multipart("/api/materials", &[("record", None, b"{\"id\": 3}")]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(error_message(&body, "KAI_INVALID_INPUT").contains("record"));
}

#[tokio::test]
async fn replace_honours_versions() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let uri = "/api/materials/grey-gravel";
    let (_, original) = send(app, get(uri)).await;
    let image_path = original["images"][0]["path"]
        .as_str()
        .expect("a path")
        .to_owned();

    let mut record = json!({
        "name": "Grey gravel, washed",
        "materialType": "gravel",
        "tags": ["grey", "washed"],
        "description": "Washed angular grey gravel"
    });
    let (status, headers, body) = send_full(app, json_with("PUT", uri, &[], &record)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 2);
    assert_eq!(headers[header::ETAG], "\"2\"");
    assert_eq!(
        body["images"][0]["path"],
        image_path.as_str(),
        "the photo is kept"
    );

    // A write based on version 1 conflicts and leaves version 2 as it was.
    record["name"] = json!("Stale name");
    for request in [
        json_with("PUT", uri, &[("if-match", "\"1\"")], &record),
        json_with("PUT", &format!("{uri}?expectVersion=1"), &[], &record),
    ] {
        let (status, body) = send(app, request).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            error_message(&body, "KAI_CONFLICT").contains("version 2"),
            "{body}"
        );
    }
    let (_, stored) = send(app, get(uri)).await;
    assert_eq!(stored["name"], "Grey gravel, washed");
    assert_eq!(stored["version"], 2);

    record["name"] = json!("Grey gravel, sieved");
    let request = json_with(
        "PUT",
        &format!("{uri}?expectVersion=2"),
        &[("If-Match", "W/\"2\"")],
        &record,
    );
    let (status, body) = send(app, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 3);

    // A new photo after the kept one.
    let bytes = std::fs::read(photo("heldout-cracked-grey-rock.jpg")).expect("photo");
    record["images"] = json!([image_path]);
    let text = record.to_string();
    let request = multipart_with(
        "PUT",
        uri,
        &[
            ("record", None, text.as_bytes()),
            ("image", Some("rock.jpg"), &bytes),
        ],
    );
    let (status, body) = send(app, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 4);
    let images = body["images"].as_array().expect("images");
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["path"], image_path.as_str());

    let (_, history) = send(app, get(&format!("{uri}/history"))).await;
    let changes: Vec<&str> = history
        .as_array()
        .expect("a history")
        .iter()
        .map(|v| v["change"].as_str().expect("a change"))
        .collect();
    assert_eq!(changes, ["created", "updated", "updated", "updated"]);
}

#[tokio::test]
async fn failed_replaces_change_nothing() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let uri = "/api/materials/beach-pebbles";
    let (_, original) = send(app, get(uri)).await;
    let record = json!({"name": "Pebbles", "materialType": "gravel"});

    let cases = [
        (
            json_with(
                "PUT",
                uri,
                &[],
                &json!({"id": "other", "name": "Pebbles", "materialType": "gravel"}),
            ),
            StatusCode::BAD_REQUEST,
            "other",
        ),
        (
            json_with(
                "PUT",
                uri,
                &[],
                &json!({"name": "Pebbles", "materialType": "gravel", "images": ["ab/not-stored.png"]}),
            ),
            StatusCode::BAD_REQUEST,
            "not-stored",
        ),
        (
            json_with("PUT", uri, &[("If-Match", "latest")], &record),
            StatusCode::BAD_REQUEST,
            "If-Match",
        ),
        (
            json_with(
                "PUT",
                &format!("{uri}?expectVersion=2"),
                &[("If-Match", "\"1\"")],
                &record,
            ),
            StatusCode::BAD_REQUEST,
            "If-Match",
        ),
        (
            json_with(
                "PUT",
                uri,
                &[],
                &json!({"name": "", "materialType": "gravel"}),
            ),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            json_with("PUT", uri, &[], &json!(["not", "an", "object"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "object",
        ),
        (
            json_with("PUT", "/api/materials/no-such-material", &[], &record),
            StatusCode::NOT_FOUND,
            "no-such-material",
        ),
    ];
    for (request, expected, named) in cases {
        let (status, body) = send(app, request).await;
        assert_eq!(status, expected, "{body}");
        let message = body["error"]["message"].as_str().expect("an error message");
        assert!(message.contains(named), "{message}");
    }
    let (_, stored) = send(app, get(uri)).await;
    assert_eq!(stored, original);
    let (status, _) = send(app, get("/api/materials/no-such-material")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a replace never creates");
}

#[tokio::test]
async fn delete_keeps_history() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let delete = || {
        Request::delete("/api/materials/fine-dark-grit")
            .body(Body::empty())
            .expect("valid request")
    };
    let (status, body) = send(app, delete()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = send(app, get("/api/materials/fine-dark-grit")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = send(app, delete()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    error_message(&body, "KAI_NOT_FOUND");
    assert_eq!(material_count(app).await, 43);

    let (status, body) = send(app, get("/api/materials/fine-dark-grit/history")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["change"], "created");
    assert_eq!(body[1]["change"], "deleted");
    assert_eq!(body[1]["record"]["name"], "Fine dark grit", "{body}");

    let (status, body) = send(app, get("/api/materials/never-existed/history")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    error_message(&body, "KAI_NOT_FOUND");

    // Searches no longer find it.
    let search = json!({"query": "fine dark grit", "topK": 44});
    let (_, body) = send(app, json("POST", "/api/materials/search", &search)).await;
    let found: Vec<&str> = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].as_str().expect("an id"))
        .collect();
    assert!(!found.contains(&"fine-dark-grit"), "{found:?}");
}

#[tokio::test]
async fn search_filters_and_pages() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let search = |body: Value| json("POST", "/api/materials/search", &body);

    let (status, body) = send(app, search(json!({"query": "red brick wall", "topK": 3}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["materialType"], "brick", "{body}");
    for key in ["id", "name", "materialType", "score"] {
        assert!(!results[0][key].is_null(), "{key} in {}", results[0]);
    }

    let request = json!({"query": "red", "materialType": "Carpet", "tags": ["Woven"], "topK": 10});
    let (_, body) = send(app, search(request)).await;
    let results = body["results"].as_array().expect("results");
    assert!(!results.is_empty());
    for result in results {
        assert_eq!(result["materialType"], "carpet");
    }

    let (_, first_two) = send(app, search(json!({"query": "grey stone", "topK": 2}))).await;
    let (_, second) = send(
        app,
        search(json!({"query": "grey stone", "topK": 1, "offset": 1})),
    )
    .await;
    assert_eq!(second["results"][0]["id"], first_two["results"][1]["id"]);

    let (_, body) = send(
        app,
        search(json!({"query": "grey", "collection": "libreoffice-standard", "topK": 44})),
    )
    .await;
    for result in body["results"].as_array().expect("results") {
        let id = result["id"].as_str().expect("an id");
        let (_, material) = send(app, get(&format!("/api/materials/{id}"))).await;
        assert_eq!(material["collectionId"], "libreoffice-standard");
    }

    for (request, expected, named) in [
        (json!({"topK": 3}), StatusCode::BAD_REQUEST, "query"),
        (
            json!({"query": "x", "topK": 0}),
            StatusCode::BAD_REQUEST,
            "topK",
        ),
        (
            json!({"query": "x", "topK": 5000}),
            StatusCode::BAD_REQUEST,
            "topK",
        ),
        (
            json!({"query": "x", "topk": 3}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "topk",
        ),
        (
            json!({"query": "x", "tags": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "tags",
        ),
        (
            json!({"query": "x", "weights": {"text": -1}}),
            StatusCode::BAD_REQUEST,
            "weights.text",
        ),
    ] {
        let (status, body) = send(app, search(request.clone())).await;
        assert_eq!(status, expected, "{request}: {body}");
        let message = error_message(&body, "KAI_INVALID_INPUT");
        assert!(message.contains(named), "{request}: {message}");
    }
}

#[tokio::test]
async fn search_by_photo_multipart() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let bytes = std::fs::read(photo("altered-red-persian-medallion-rug.jpg")).expect("photo");
    let request = multipart(
        "/api/materials/search",
        &[
            ("image", Some("rug.jpg"), &bytes),
            ("materialType", None, b"carpet"),
            ("topK", None, b"3"),
        ],
    );
    let (status, body) = send(app, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    let top: Vec<&str> = results
        .iter()
        .map(|r| r["id"].as_str().expect("an id"))
        .collect();
    assert!(top.contains(&"red-persian-medallion-rug"), "{top:?}");

    for (parts, expected, named) in [
        (
            vec![("image", Some("a.jpg"), &b"not an image"[..])],
            StatusCode::BAD_REQUEST,
            "image",
        ),
        (
            vec![
                ("image", Some("a.jpg"), &bytes[..]),
                ("topK", None, &b"many"[..]),
            ],
            StatusCode::BAD_REQUEST,
            "topK",
        ),
        (
            vec![
                ("image", Some("a.jpg"), &bytes[..]),
                ("image", Some("b.jpg"), &bytes[..]),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
            "image",
        ),
        (
            vec![
                ("image", Some("a.jpg"), &bytes[..]),
                ("topK", None, &b"2"[..]),
                ("topK", None, &b"3"[..]),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
            "topK",
        ),
        (
            vec![("photo", Some("a.jpg"), &bytes[..])],
            StatusCode::UNPROCESSABLE_ENTITY,
            "photo",
        ),
    ] {
        let (status, body) = send(app, multipart("/api/materials/search", &parts)).await;
        assert_eq!(status, expected, "{body}");
        assert!(
            error_message(&body, "KAI_INVALID_INPUT").contains(named),
            "{body}"
        );
    }
}

#[tokio::test]
async fn catalog_summary_and_reindex() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let (status, body) = send(app, get("/api/catalog")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["materials"], 44);
    assert_eq!(body["images"], 44);
    assert_eq!(body["storage"], "sqlite");
    assert_eq!(body["textModel"], "all-minilm-l6-v2");
    assert_eq!(body["imageModel"], "efficientnet-lite0");
    let types = body["materialTypes"].as_array().expect("types");
    assert_eq!(types.len(), 9);
    assert!(types.contains(&json!("carpet")));

    let request = Request::post("/api/catalog/reindex")
        .body(Body::empty())
        .expect("valid request");
    let (status, body) = send(app, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reindexed"], 44);

    // Search still works on the rebuilt vector spaces.
    let search = json!({"query": "red brick wall", "topK": 1});
    let (_, body) = send(app, json("POST", "/api/materials/search", &search)).await;
    assert_eq!(body["results"][0]["materialType"], "brick", "{body}");
}

#[tokio::test]
async fn calibration_read_and_refit() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let (status, stored) = send(app, get("/api/catalog/calibration")).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    // The import of the sample catalog fitted it on every catalog image.
    assert_eq!(stored["samples"], 44, "{stored}");
    assert!(
        stored["temperature"].as_f64().is_some_and(|t| t > 0.0),
        "{stored}"
    );

    let request = Request::post("/api/catalog/calibrate")
        .body(Body::empty())
        .expect("valid request");
    let (status, refit) = send(app, request).await;
    assert_eq!(status, StatusCode::OK, "{refit}");
    // The same catalog gives the same fit.
    assert_eq!(refit, stored);
}

#[tokio::test]
async fn heads_train_and_list() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let (status, body) = send(app, get("/api/heads")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!([]));

    let (status, body) = send(app, json("POST", "/api/heads", &json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["spec"]["domain"], "material-type");
    assert_eq!(body["spec"]["label"], "materialType");
    assert_eq!(body["classes"].as_array().expect("classes").len(), 9);
    assert!(body["heldoutImages"].as_u64().expect("a count") > 0);

    let (_, body) = send(app, get("/api/heads")).await;
    assert_eq!(body[0]["spec"]["domain"], "material-type", "{body}");

    for (request, expected, named) in [
        (
            json!({"label": "colour"}),
            StatusCode::BAD_REQUEST,
            "colour",
        ),
        (
            json!({"domain": "../escape"}),
            StatusCode::BAD_REQUEST,
            "escape",
        ),
        (
            json!({"materialType": "brick", "label": "property:none"}),
            StatusCode::BAD_REQUEST,
            "class",
        ),
        (
            json!({"domains": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "domains",
        ),
    ] {
        let (status, body) = send(app, json("POST", "/api/heads", &request)).await;
        assert_eq!(status, expected, "{request}: {body}");
        assert!(
            error_message(&body, "KAI_INVALID_INPUT").contains(named),
            "{body}"
        );
    }
    let (_, body) = send(app, get("/api/heads")).await;
    assert_eq!(
        body.as_array().expect("heads").len(),
        1,
        "failed trainings save nothing"
    );
}

#[tokio::test]
async fn bodies_over_limit_are_rejected() {
    let Some(server) = common::server(&[
        ("KAI_MAX_BODY_BYTES", "4096"),
        ("DEFAULT_RATE_LIMIT", "100000"),
        ("ML_RATE_LIMIT", "100000"),
    ]) else {
        return;
    };
    let app = &server.app;
    let bytes = std::fs::read(photo("heldout-grey-brick-wall.jpg")).expect("photo");
    assert!(bytes.len() > 4096);
    let [upload, search] = photo_uploads("too-large", &bytes);
    let mut long_record = new_record("too-large");
    long_record["description"] = json!("slate ".repeat(1000));
    let long_json = json("POST", "/api/materials", &long_record);
    for request in [upload, search, long_json] {
        let (status, body) = send(app, request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        let message = error_message(&body, "KAI_INVALID_INPUT");
        assert!(message.contains("KAI_MAX_BODY_BYTES"), "{message}");
    }
    let (status, _) = send(app, get("/api/materials/too-large")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn multipart_photos_over_limit_are_413() {
    let Some(server) = common::server(&[
        ("KAI_MAX_IMAGE_BYTES", "4096"),
        ("DEFAULT_RATE_LIMIT", "100000"),
        ("ML_RATE_LIMIT", "100000"),
    ]) else {
        return;
    };
    let app = &server.app;
    let bytes = std::fs::read(photo("heldout-grey-brick-wall.jpg")).expect("photo");
    assert!(bytes.len() > 4096);
    for request in photo_uploads("large-photo", &bytes) {
        let (status, body) = send(app, request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        let message = error_message(&body, "KAI_INVALID_INPUT");
        assert!(message.contains("KAI_MAX_IMAGE_BYTES"), "{message}");
    }
    let (status, _) = send(app, get("/api/materials/large-photo")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let record = new_record("large-photo").to_string();
    let twice = multipart(
        "/api/materials",
        &[
            ("record", None, record.as_bytes()),
            ("record", None, record.as_bytes()),
        ],
    );
    let (status, body) = send(app, twice).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(error_message(&body, "KAI_INVALID_INPUT").contains("`record`"));
}

/// Builds a multipart create of material `id` and a multipart search, each with the photo
/// `bytes`.
fn photo_uploads(id: &str, bytes: &[u8]) -> [Request<Body>; 2] {
    let record = new_record(id).to_string();
    let upload = multipart(
        "/api/materials",
        &[
            ("record", None, record.as_bytes()),
            ("image", Some("wall.jpg"), bytes),
        ],
    );
    let search = multipart(
        "/api/materials/search",
        &[("image", Some("wall.jpg"), bytes)],
    );
    [upload, search]
}

fn delete_request(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::delete(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::empty()).expect("valid request")
}

#[tokio::test]
async fn delete_honours_versions() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let uri = "/api/materials/fine-dark-grit";
    let cases = [
        (
            delete_request(uri, &[("If-Match", "\"2\"")]),
            StatusCode::CONFLICT,
            "version 1",
        ),
        (
            delete_request(&format!("{uri}?expectVersion=2"), &[]),
            StatusCode::CONFLICT,
            "version 1",
        ),
        (
            delete_request(uri, &[("If-Match", "latest")]),
            StatusCode::BAD_REQUEST,
            "If-Match",
        ),
        (
            delete_request(&format!("{uri}?version=1"), &[]),
            StatusCode::BAD_REQUEST,
            "version",
        ),
    ];
    for (request, expected, named) in cases {
        let (status, body) = send(app, request).await;
        assert_eq!(status, expected, "{body}");
        let message = body["error"]["message"].as_str().expect("an error message");
        assert!(message.contains(named), "{message}");
    }
    let (status, _) = send(app, get(uri)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a rejected delete keeps the material"
    );

    let (status, body) = send(app, delete_request(uri, &[("If-Match", "W/\"1\"")])).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = send(app, delete_request(uri, &[("If-Match", "*")])).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let other = "/api/materials/grey-gravel";
    let (status, body) = send(app, delete_request(other, &[("If-Match", "*")])).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(material_count(app).await, 42);
}

#[tokio::test]
async fn replace_accepts_if_match_any() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let record = json!({"name": "Pebbles", "materialType": "gravel"});
    let uri = "/api/materials/beach-pebbles";
    let (status, body) = send(app, json_with("PUT", uri, &[("If-Match", "*")], &record)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 2);
    let absent = "/api/materials/no-such-material";
    let (status, body) = send(app, json_with("PUT", absent, &[("If-Match", "*")], &record)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn empty_image_list_removes_photos() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let fields = json!({"name": "Grey gravel", "materialType": "gravel"});
    let uri = "/api/materials/grey-gravel";
    let (status, body) = send(app, json("PUT", uri, &fields)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["images"].as_array().expect("images").len(), 1);

    let mut listed = fields.clone();
    listed["images"] = json!([]);
    let (status, body) = send(app, json("PUT", uri, &listed)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["images"], json!([]));
    let (_, stored) = send(app, get(uri)).await;
    assert_eq!(stored["images"], json!([]));

    let uri = "/api/materials/beach-pebbles";
    let text = json!({"name": "Pebbles", "materialType": "gravel", "images": []}).to_string();
    let request = multipart_with("PUT", uri, &[("record", None, text.as_bytes())]);
    let (status, body) = send(app, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["images"], json!([]));
}

#[tokio::test]
async fn create_rejects_unusable_ids() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    for id in [".", "..", " lead"] {
        let (status, body) = send(app, json("POST", "/api/materials", &new_record(id))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{id}: {body}");
        let message = error_message(&body, "KAI_INVALID_INPUT");
        assert!(message.contains(&format!("`{id}`")), "{message}");
    }
    let (status, _) = send(app, get("/api/materials/lead")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(material_count(app).await, 44);
}

#[tokio::test]
async fn search_rejects_zero_weights() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let search = json!({
        "query": "grey gravel",
        "weights": {"keyword": 0, "text": 0, "image": 0}
    });
    let (status, body) = send(app, json("POST", "/api/materials/search", &search)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = error_message(&body, "KAI_INVALID_INPUT");
    assert!(message.contains("weights"), "{message}");

    // An unused signal may weigh 0.
    let search = json!({"query": "grey gravel", "weights": {"image": 0}});
    let (status, body) = send(app, json("POST", "/api/materials/search", &search)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn reindex_accepts_stored_images_over_limits() {
    let Some(server) = common::server(&[
        ("DEFAULT_RATE_LIMIT", "100000"),
        ("ML_RATE_LIMIT", "100000"),
        ("KAI_MAX_IMAGE_BYTES", "1000"),
    ]) else {
        return;
    };
    let app = &server.app;
    let (status, body) = send(app, post("/api/catalog/reindex")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reindexed"], 44);

    // An error about a stored image names it inside the store, not on the server's disk.
    let (_, material) = send(app, get("/api/materials/grey-gravel")).await;
    let image = material["images"][0]["path"].as_str().expect("a path");
    std::fs::remove_file(server.store.join("images").join(image)).expect("remove the photo");
    let (status, body) = send(app, post("/api/catalog/reindex")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = error_message(&body, "KAI_STORAGE");
    assert!(message.contains(&format!("images/{image}")), "{message}");
    let root = server.store.to_string_lossy().into_owned();
    assert!(!message.contains(&root), "{message}");
}

fn post(uri: &str) -> Request<Body> {
    Request::post(uri)
        .body(Body::empty())
        .expect("valid request")
}

#[tokio::test]
async fn write_routes_reject_query_parameters() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let record = new_record("query-slate");
    let requests = [
        json("POST", "/api/materials?colour=red", &record),
        json(
            "POST",
            "/api/materials/search?colour=red",
            &json!({"query": "slate"}),
        ),
        post("/api/catalog/reindex?colour=red"),
        post("/api/catalog/calibrate?colour=red"),
        json("POST", "/api/heads?colour=red", &json!({})),
        post(&format!(
            "/api/models/{}/load?colour=red",
            "all-minilm-l6-v2"
        )),
        post(&format!(
            "/api/models/{}/unload?colour=red",
            "all-minilm-l6-v2"
        )),
        json(
            "POST",
            "/api/embed/text?colour=red",
            &json!({"text": "slate"}),
        ),
        multipart(
            "/api/recognize?colour=red",
            &[("image", Some("a.jpg"), b"x")],
        ),
        multipart("/api/quality?colour=red", &[("image", Some("a.jpg"), b"x")]),
        multipart(
            "/api/classify-texture?colour=red",
            &[("image", Some("a.jpg"), b"x")],
        ),
        multipart(
            "/api/embed/image?colour=red",
            &[("image", Some("a.jpg"), b"x")],
        ),
    ];
    for request in requests {
        let uri = request.uri().to_string();
        let (status, body) = send(app, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let message = error_message(&body, "KAI_INVALID_INPUT");
        assert!(message.contains("`colour`"), "{uri}: {message}");
    }
    let (status, _) = send(app, get("/api/materials/query-slate")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the create was rejected");
}
