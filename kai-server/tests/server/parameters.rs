//! `/api/parameters` against the registry of a copy of the sample store.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};

use crate::common::{self, error_message, get, json, send};
use crate::materials::{UNLIMITED, json_with, send_full};

const PREMIUM: &str = "/api/parameters/sets/premium";

fn post_empty(uri: &str) -> Request<Body> {
    Request::post(uri)
        .body(Body::empty())
        .expect("valid request")
}

#[tokio::test]
async fn list_and_show_sets() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let (status, body) = send(app, get("/api/parameters")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| s["name"].as_str().expect("a name"))
        .collect();
    for name in ["standard", "premium", "enterprise"] {
        assert!(names.contains(&name), "{names:?}");
    }
    assert_eq!(body[0]["version"], 1);
    assert!(body[0]["updatedAt"].is_string(), "{body}");

    let (status, headers, body) = send_full(app, get("/api/parameters/sets/enterprise")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::ETAG], "\"1\"");
    assert_eq!(body["name"], "enterprise");
    assert_eq!(body["version"], 1);
    assert_eq!(body["scope"], Value::Null);
    assert_eq!(body["values"]["recognition.top_k"], 10);
    assert_eq!(body["author"], "kai");
    assert!(body["createdAt"].is_string());

    for (uri, expected, named) in [
        (
            "/api/parameters/sets/enterprise?version=7",
            StatusCode::NOT_FOUND,
            "version 7",
        ),
        (
            "/api/parameters/sets/no-such-set",
            StatusCode::NOT_FOUND,
            "no-such-set",
        ),
        (
            "/api/parameters/sets/enterprise?scope=wood",
            StatusCode::NOT_FOUND,
            "wood",
        ),
        ("/api/parameters/sets/a%20b", StatusCode::BAD_REQUEST, "a b"),
        (
            "/api/parameters/sets/enterprise?version=latest",
            StatusCode::BAD_REQUEST,
            "version",
        ),
        (
            "/api/parameters/sets/enterprise?scop=wood",
            StatusCode::BAD_REQUEST,
            "scop",
        ),
    ] {
        let (status, body) = send(app, get(uri)).await;
        assert_eq!(status, expected, "{uri}: {body}");
        let message = body["error"]["message"].as_str().expect("an error message");
        assert!(message.contains(named), "{uri}: {message}");
    }
}

#[tokio::test]
async fn write_validates_and_versions() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let change = json!({
        "values": {"recognition.top_k": 8, "quality.min_sharpness": 120},
        "author": "ana",
        "note": "more candidates",
        "expectVersion": 1
    });
    let (status, headers, body) = send_full(app, json("PUT", PREMIUM, &change)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::ETAG], "\"2\"");
    assert_eq!(body["version"], 2);
    assert_eq!(body["values"]["recognition.top_k"], 8);
    assert_eq!(body["values"]["quality.min_sharpness"], 120.0);
    assert_eq!(
        body["values"]["quality.max_noise"], 8.0,
        "other values are kept"
    );
    assert_eq!(body["author"], "ana");
    assert_eq!(body["note"], "more candidates");

    let failures = [
        (
            json!({"values": {"recognition.top_k": 500}}),
            &[][..],
            StatusCode::BAD_REQUEST,
            "recognition.top_k",
            "500",
        ),
        (
            json!({"values": {"recognition.top_k": "many"}}),
            &[][..],
            StatusCode::BAD_REQUEST,
            "recognition.top_k",
            "many",
        ),
        (
            json!({"values": {"recognition.colour": 1}}),
            &[][..],
            StatusCode::BAD_REQUEST,
            "recognition.colour",
            "schema",
        ),
        (
            json!({"values": {}}),
            &[][..],
            StatusCode::BAD_REQUEST,
            "changes",
            "KEY=VALUE",
        ),
        (
            json!({"values": {"recognition.top_k": 3}, "expectVersion": 1}),
            &[][..],
            StatusCode::CONFLICT,
            "version 2",
            "not 1",
        ),
        (
            json!({"values": {"recognition.top_k": 3}}),
            &[("If-Match", "\"1\"")][..],
            StatusCode::CONFLICT,
            "version 2",
            "not 1",
        ),
        (
            json!({"values": {"recognition.top_k": 3}, "author": "a\nb"}),
            &[][..],
            StatusCode::BAD_REQUEST,
            "author",
            "control character",
        ),
        (
            json!({"value": {"recognition.top_k": 3}}),
            &[][..],
            StatusCode::UNPROCESSABLE_ENTITY,
            "value",
            "request body",
        ),
    ];
    for (request, headers, expected, first, second) in failures {
        let (status, body) = send(app, json_with("PUT", PREMIUM, headers, &request)).await;
        assert_eq!(status, expected, "{request}: {body}");
        let message = body["error"]["message"].as_str().expect("an error message");
        assert!(message.contains(first), "{request}: {message}");
        assert!(message.contains(second), "{request}: {message}");
    }
    let (_, body) = send(app, get(PREMIUM)).await;
    assert_eq!(body["version"], 2, "failed writes store nothing");
    assert_eq!(body["values"]["recognition.top_k"], 8);

    // A new set starts from the schema's defaults; expectVersion 0 requires it to be new.
    let new_set = json!({"values": {"recognition.top_k": 4}, "expectVersion": 0});
    let uri = "/api/parameters/sets/field-survey";
    let (status, body) = send(app, json("PUT", uri, &new_set)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 1);
    assert_eq!(body["author"], "unknown");
    let (status, body) = send(app, json("PUT", uri, &new_set)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    error_message(&body, "KAI_CONFLICT");
}

#[tokio::test]
async fn history_diff_and_rollback() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let change = json!({"values": {"recognition.top_k": 7}, "author": "ana"});
    let (status, _) = send(app, json("PUT", PREMIUM, &change)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = send(app, get(&format!("{PREMIUM}/history"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let versions: Vec<u64> = body
        .as_array()
        .expect("a history")
        .iter()
        .map(|s| s["version"].as_u64().expect("a version"))
        .collect();
    assert_eq!(versions, [1, 2]);

    let (status, body) = send(app, get(&format!("{PREMIUM}/diff?from=1&to=2"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!([{"parameter": "recognition.top_k", "from": 5, "to": 7}])
    );

    for (uri, expected, named) in [
        (
            format!("{PREMIUM}/diff?from=1"),
            StatusCode::BAD_REQUEST,
            "to",
        ),
        (
            format!("{PREMIUM}/diff?from=1&to=9"),
            StatusCode::NOT_FOUND,
            "version 9",
        ),
        (
            "/api/parameters/sets/nothing/history".to_owned(),
            StatusCode::NOT_FOUND,
            "nothing",
        ),
    ] {
        let (status, body) = send(app, get(&uri)).await;
        assert_eq!(status, expected, "{uri}: {body}");
        let message = body["error"]["message"].as_str().expect("an error message");
        assert!(message.contains(named), "{uri}: {message}");
    }

    let rollback = format!("{PREMIUM}/rollback");
    let (status, body) = send(app, json("POST", &rollback, &json!({"to": 9}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let stale = json!({"to": 1, "expectVersion": 1});
    let (status, body) = send(app, json("POST", &rollback, &stale)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = send(app, json("POST", &rollback, &json!({"version": 1}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let request = json_with(
        "POST",
        &rollback,
        &[("If-Match", "\"2\"")],
        &json!({"to": 1}),
    );
    let (status, headers, body) = send_full(app, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::ETAG], "\"3\"");
    assert_eq!(body["version"], 3);
    assert_eq!(body["values"]["recognition.top_k"], 5);
    assert_eq!(body["note"], "rollback to version 1");
}

#[tokio::test]
async fn resolve_by_material_and_scope() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let scoped = json!({"values": {"recognition.top_k": 3}, "scope": "Wood"});
    let (status, body) = send(app, json("PUT", PREMIUM, &scoped)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "wood");
    assert_eq!(body["version"], 1);

    let uri = "/api/parameters/resolve?set=premium&materialId=dark-knotty-boards";
    let (status, body) = send(app, get(uri)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["materialId"], "dark-knotty-boards");
    assert_eq!(body["scope"], "wood");
    assert_eq!(body["fallback"], false);
    assert_eq!(body["values"]["recognition.top_k"], 3);

    let uri = "/api/parameters/resolve?set=premium&materialId=dark-red-brick";
    let (_, body) = send(app, get(uri)).await;
    assert_eq!(body["scope"], Value::Null);
    assert_eq!(body["fallback"], true);
    assert_eq!(body["tried"], json!(["brick", "ufoai-trak"]));

    let (_, body) = send(
        app,
        get("/api/parameters/resolve?set=premium&scope=stone&scope=wood"),
    )
    .await;
    assert_eq!(body["scope"], "wood", "{body}");
    assert_eq!(body["tried"], json!(["stone", "wood"]));

    let (status, body) = send(app, get("/api/parameters/resolve")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "standard", "DEFAULT_PARAMETER_SET applies");

    for (uri, expected, named) in [
        (
            "/api/parameters/resolve?materialId=nothing-here",
            StatusCode::NOT_FOUND,
            "nothing-here",
        ),
        (
            "/api/parameters/resolve?set=absent-set",
            StatusCode::NOT_FOUND,
            "absent-set",
        ),
        (
            "/api/parameters/resolve?materialId=dark-red-brick&scope=wood",
            StatusCode::BAD_REQUEST,
            "materialId",
        ),
    ] {
        let (status, body) = send(app, get(uri)).await;
        assert_eq!(status, expected, "{uri}: {body}");
        let message = body["error"]["message"].as_str().expect("an error message");
        assert!(message.contains(named), "{uri}: {message}");
    }
}

#[tokio::test]
async fn record_results_one_and_batch() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let results = "/api/parameters/results";
    let one = json!({
        "set": "premium",
        "materialId": "dark-red-brick",
        "metrics": {"score": 0.9, "accuracy": 0.8}
    });
    let (status, body) = send(app, json("POST", results, &one)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["set"], "premium");
    assert_eq!(body["version"], 1);
    assert_eq!(body["materialId"], "dark-red-brick");
    assert_eq!(body["metrics"]["score"], 0.9);
    assert!(body["recordedAt"].is_string());

    let batch = json!({"results": [
        {"set": "premium", "materialId": "grey-mossy-brick", "metrics": {"score": 0.7}},
        {"set": "enterprise", "version": 1, "materialId": "grey-washed-brick", "metrics": {"score": 0.95}}
    ]});
    let (status, body) = send(app, json("POST", results, &batch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"recorded": 2}));

    let stored = |ids: &[&str]| {
        let ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
        server
            .state
            .registry()
            .storage()
            .results_for(&ids)
            .expect("results readable")
            .len()
    };
    assert_eq!(
        stored(&["dark-red-brick", "grey-mossy-brick", "grey-washed-brick"]),
        3
    );

    // A batch with one bad result records none of it.
    let failures = [
        (
            json!({"results": [
                {"set": "premium", "materialId": "red-brick-white-mortar", "metrics": {"score": 0.5}},
                {"set": "premium", "materialId": "no-such-material", "metrics": {"score": 0.5}}
            ]}),
            StatusCode::NOT_FOUND,
            "no-such-material",
        ),
        (
            json!({"results": [
                {"set": "premium", "materialId": "red-brick-white-mortar", "metrics": {"score": 0.5}},
                {"set": "premium", "version": 9, "materialId": "red-brick-white-mortar", "metrics": {"score": 0.5}}
            ]}),
            StatusCode::NOT_FOUND,
            "version 9",
        ),
        (
            json!({"results": [
                {"set": "premium", "materialId": "red-brick-white-mortar", "metrics": {"score": 0.5}},
                {"set": "premium", "materialId": "red-brick-white-mortar", "metrics": {"bad metric": 0.5}}
            ]}),
            StatusCode::BAD_REQUEST,
            "bad metric",
        ),
        (
            json!({"results": [{"set": "premium", "materialId": "red-brick-white-mortar"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "results[0]",
        ),
        (
            json!({"set": "premium", "materialId": "red-brick-white-mortar", "metrics": {}}),
            StatusCode::BAD_REQUEST,
            "metrics",
        ),
        (
            json!({"set": "premium", "materialId": "red-brick-white-mortar", "metrics": {"score": "high"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "metrics.score",
        ),
    ];
    for (request, expected, named) in failures {
        let (status, body) = send(app, json("POST", results, &request)).await;
        assert_eq!(status, expected, "{request}: {body}");
        let message = body["error"]["message"].as_str().expect("an error message");
        assert!(message.contains(named), "{request}: {message}");
    }
    assert_eq!(stored(&["red-brick-white-mortar"]), 0);
}

#[tokio::test]
async fn suggest_from_similar_materials() {
    // Every material counts as similar, so the recorded results are evidence.
    let Some(server) = common::server(&[
        ("SIMILARITY_THRESHOLD", "-1"),
        ("DEFAULT_RATE_LIMIT", "100000"),
        ("ML_RATE_LIMIT", "100000"),
    ]) else {
        return;
    };
    let app = &server.app;
    let suggest = "/api/parameters/suggest";
    let (status, body) = send(
        app,
        json("POST", suggest, &json!({"materialId": "dark-red-brick"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["fallback"], true);
    assert_eq!(body["set"]["name"], "standard");

    let batch = json!({"results": [
        {"set": "enterprise", "materialId": "grey-mossy-brick", "metrics": {"score": 0.9}},
        {"set": "premium", "materialId": "grey-washed-brick", "metrics": {"score": 0.4}}
    ]});
    let (status, body) = send(app, json("POST", "/api/parameters/results", &batch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = send(
        app,
        json("POST", suggest, &json!({"materialId": "dark-red-brick"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["fallback"], false);
    assert_eq!(body["set"]["name"], "enterprise");
    assert_eq!(body["metric"], "score");
    assert_eq!(body["evidence"].as_array().expect("evidence").len(), 2);
    assert_eq!(body["values"]["recognition.top_k"], 10);

    let lower = json!({"materialId": "dark-red-brick", "lowerIsBetter": true});
    let (_, body) = send(app, json("POST", suggest, &lower)).await;
    assert_eq!(body["set"]["name"], "premium", "{body}");

    // An image embedding of the catalog's image model picks the image space.
    let dimension = {
        let catalog = server.state.catalog();
        catalog
            .image_index()
            .dimension()
            .expect("dimension")
            .expect("vectors")
    };
    let embedding = vec![0.05_f32; dimension];
    let (status, body) = send(app, json("POST", suggest, &json!({"embedding": embedding}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["fallback"], false, "{body}");

    for (request, expected, named) in [
        (json!({}), StatusCode::BAD_REQUEST, "materialId"),
        (
            json!({"materialId": "dark-red-brick", "embedding": [0.1]}),
            StatusCode::BAD_REQUEST,
            "materialId",
        ),
        (
            json!({"embedding": [0.1, 0.2]}),
            StatusCode::BAD_REQUEST,
            "2 dimensions",
        ),
        (
            json!({"materialId": "no-such-material"}),
            StatusCode::NOT_FOUND,
            "no-such-material",
        ),
        (
            json!({"materialId": "dark-red-brick", "metric": "a b"}),
            StatusCode::BAD_REQUEST,
            "metric",
        ),
        (
            json!({"materialId": "dark-red-brick", "metrc": "score"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "metrc",
        ),
    ] {
        let (status, body) = send(app, json("POST", suggest, &request)).await;
        assert_eq!(status, expected, "{request}: {body}");
        let message = body["error"]["message"].as_str().expect("an error message");
        assert!(message.contains(named), "{request}: {message}");
    }
}

#[tokio::test]
async fn purge_reports_cutoff() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let (status, body) = send(&server.app, post_empty("/api/parameters/purge")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["cutoff"].is_string(), "{body}");
    assert_eq!(body["purged"], json!([]), "nothing is older than 90 days");
}

#[tokio::test]
async fn schema_show_and_apply() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let uri = "/api/parameters/schema";
    let (status, before) = send(app, get(uri)).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    let top_k = &before["parameters"]["recognition.top_k"];
    assert_eq!(top_k["type"], "int");
    assert_eq!(top_k["default"], 5);
    assert_eq!(top_k["max"], 100.0);

    let added = json!({"parameters": {
        "survey.passes": {"type": "int", "min": 1, "max": 9, "default": 2,
                          "description": "Photo passes per wall."}
    }});
    let (status, body) = send(app, json("PUT", uri, &added)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["added"], json!(["survey.passes"]));
    let (_, after) = send(app, get(uri)).await;
    assert_eq!(after["parameters"]["survey.passes"]["default"], 2);

    // The new parameter can be set; the standard set resolves it to its default.
    let (_, resolved) = send(app, get("/api/parameters/resolve")).await;
    assert_eq!(resolved["values"]["survey.passes"], 2, "{resolved}");

    let (_, before) = send(app, get(uri)).await;
    for (request, expected, named) in [
        (
            json!({"parameters": {"survey.passes": {"type": "int", "min": 5, "max": 1, "default": 2}}}),
            StatusCode::BAD_REQUEST,
            "survey.passes",
        ),
        (
            // The shipped sets hold recognition.top_k = 5 or 10, which a maximum of 3 rejects.
            json!({"parameters": {"recognition.top_k": {"type": "int", "min": 1, "max": 3, "default": 2}}}),
            StatusCode::BAD_REQUEST,
            "recognition.top_k",
        ),
        (
            json!({"parameters": {"survey.passes": {"type": "int", "default": 2, "colour": 1}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
        (
            json!({"params": {}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "params",
        ),
    ] {
        let (status, body) = send(app, json("PUT", uri, &request)).await;
        assert_eq!(status, expected, "{request}: {body}");
        let message = body["error"]["message"].as_str().expect("an error message");
        assert!(message.contains(named), "{request}: {message}");
    }
    let (_, unchanged) = send(app, get(uri)).await;
    assert_eq!(unchanged, before, "rejected schemas change nothing");
}

#[tokio::test]
async fn writes_honour_query_scope() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let change = json!({"values": {"recognition.top_k": 7}});
    let uri = format!("{PREMIUM}?scope=wood");
    let (status, body) = send(app, json("PUT", &uri, &change)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "wood");
    assert_eq!(body["version"], 1);
    let (_, unscoped) = send(app, get(PREMIUM)).await;
    assert_eq!(unscoped["version"], 1, "the unscoped set is unchanged");

    let change = json!({"values": {"recognition.top_k": 6}});
    let (status, body) = send(app, json("PUT", &uri, &change)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 2);
    let rollback = format!("{PREMIUM}/rollback?scope=wood");
    let (status, body) = send(app, json("POST", &rollback, &json!({"to": 1}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "wood");
    assert_eq!(body["version"], 3);
    assert_eq!(body["values"]["recognition.top_k"], 7);
    let (_, unscoped) = send(app, get(PREMIUM)).await;
    assert_eq!(unscoped["version"], 1, "the unscoped set is unchanged");

    let both = json!({"values": {"recognition.top_k": 5}, "scope": "stone"});
    let (status, body) = send(app, json("PUT", &uri, &both)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = error_message(&body, "KAI_INVALID_INPUT");
    assert!(message.contains("stone"), "{message}");
    assert!(message.contains("wood"), "{message}");
    let same = json!({"values": {"recognition.top_k": 5}, "scope": "wood"});
    let (status, body) = send(app, json("PUT", &uri, &same)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (_, schema) = send(app, get("/api/parameters/schema")).await;
    let writes = [
        ("PUT", format!("{PREMIUM}?colour=red"), change.clone()),
        ("POST", format!("{PREMIUM}/rollback?to=1"), json!({"to": 1})),
        (
            "POST",
            "/api/parameters/suggest?metric=score".to_owned(),
            json!({"materialId": "grey-gravel"}),
        ),
        (
            "PUT",
            "/api/parameters/schema?dryRun=true".to_owned(),
            schema,
        ),
    ];
    for (method, uri, body) in writes {
        let (status, response) = send(app, json(method, &uri, &body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {response}");
        let message = error_message(&response, "KAI_INVALID_INPUT");
        let name = uri.split(['?', '=']).nth(1).expect("a parameter name");
        assert!(message.contains(name), "{uri}: {message}");
    }
    let (_, body) = send(app, get(&uri)).await;
    assert_eq!(body["version"], 4, "no rejected write changed the set");
}

#[tokio::test]
async fn if_match_any_needs_an_existing_set() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let change = json!({"values": {"recognition.top_k": 7}});
    let (status, body) = send(
        app,
        json_with("PUT", PREMIUM, &[("If-Match", "*")], &change),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 2);

    let absent = "/api/parameters/sets/no-such-set";
    let (status, body) = send(app, json_with("PUT", absent, &[("If-Match", "*")], &change)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = send(app, get(absent)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the set was not created");
}

#[tokio::test]
async fn purge_rejects_options() {
    let Some(server) = common::server(UNLIMITED) else {
        return;
    };
    let app = &server.app;
    let (status, body) = send(
        app,
        json(
            "POST",
            "/api/parameters/purge",
            &json!({"olderThanDays": 0}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        error_message(&body, "KAI_INVALID_INPUT").contains("olderThanDays"),
        "{body}"
    );
    let (status, body) = send(app, post_empty("/api/parameters/purge?olderThanDays=0")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        error_message(&body, "KAI_INVALID_INPUT").contains("olderThanDays"),
        "{body}"
    );

    let (status, body) = send(app, json("POST", "/api/parameters/purge", &json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = send(app, post_empty("/api/parameters/purge")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
