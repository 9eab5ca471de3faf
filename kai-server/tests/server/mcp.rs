//! `/mcp` over HTTP through the router: the transport's checks (Host, Origin, headers
//! against the body, body size), both protocol eras, and tool errors. The official SDKs
//! drive the same endpoint in scripts/test_mcp.sh.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine as _;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common;

const MODERN: &str = "2026-07-28";
const LEGACY: &str = "2025-06-18";

/// A response's status, headers and body text.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    /// Returns the JSON-RPC message of the body: the JSON itself, or the `data:` line of an
    /// event stream that contains a message with an id.
    fn message(&self) -> Value {
        if let Ok(value) = serde_json::from_str::<Value>(&self.body) {
            return value;
        }
        self.body
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
            .find(|message| message.get("id").is_some())
            .unwrap_or_else(|| panic!("no JSON-RPC message in the body: {}", self.body))
    }
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router returns a response");
    let status = response.status();
    let headers = response.headers().clone();
    // An event stream ends after its last message; the timeout keeps a stream that does
    // not end from hanging the test.
    let bytes = tokio::time::timeout(Duration::from_secs(60), response.into_body().collect())
        .await
        .expect("the body ends within 60 s")
        .expect("the body is readable")
        .to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Builds a POST to `/mcp` with `headers` besides the JSON and Accept headers.
fn post(body: &Value, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::post("/mcp")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream");
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        request = request.header(header::HOST, "127.0.0.1:8000");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(Body::from(body.to_string()))
        .expect("valid request")
}

/// A stateless request of revision 2026-07-28: the version in `_meta` and the headers.
fn modern(method: &str, mut params: Value, extra: &[(&str, &str)]) -> Request<Body> {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "kai-tests", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut headers = vec![("mcp-protocol-version", MODERN), ("mcp-method", method)];
    if method == "tools/call" {
        headers.push(("mcp-name", name));
    }
    headers.extend_from_slice(extra);
    post(&body, &headers)
}

/// Calls `tool` statelessly and returns the tool result.
pub(crate) async fn call(app: &Router, tool: &str, arguments: Value) -> Value {
    let request = modern(
        "tools/call",
        json!({"name": tool, "arguments": arguments}),
        &[],
    );
    let reply = send(app, request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let message = reply.message();
    assert!(message.get("error").is_none(), "{message}");
    message["result"].clone()
}

/// Returns the text of a tool result's first content block.
pub(crate) fn text(result: &Value) -> &str {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content: {result}"))
}

/// Standard base64 with padding, for sending photos.
pub(crate) fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn discover_reports_kai_and_both_eras() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    let reply = send(&server.app, modern("server/discover", json!({}), &[])).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let result = &reply.message()["result"];
    let info = &result["_meta"]["io.modelcontextprotocol/serverInfo"];
    assert_eq!(info["name"], "kai-server", "{result}");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"), "{result}");
    let versions = result["supportedVersions"].as_array().expect("versions");
    assert!(versions.contains(&json!(MODERN)), "{result}");
    assert!(versions.contains(&json!("2025-11-25")), "{result}");
    assert!(result["capabilities"]["tools"].is_object(), "{result}");
    let instructions = result["instructions"].as_str().expect("instructions");
    assert!(
        instructions.contains("recognize_material"),
        "{instructions}"
    );
}

#[tokio::test]
async fn stateless_tools_list_has_nine_tools() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    let reply = send(&server.app, modern("tools/list", json!({}), &[])).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let tools = reply.message()["result"]["tools"].clone();
    let mut names: Vec<&str> = tools
        .as_array()
        .expect("a tool list")
        .iter()
        .map(|tool| tool["name"].as_str().expect("a name"))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "assess_image_quality",
            "embed_text",
            "get_parameters",
            "get_reconstruction_file",
            "get_reconstruction_job",
            "recognize_material",
            "search_materials",
            "submit_reconstruction",
            "suggest_parameters"
        ]
    );
    for tool in tools.as_array().expect("a tool list") {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        assert_eq!(tool["outputSchema"]["type"], "object", "{tool}");
        // Only submit_reconstruction changes state: it queues a job.
        let read_only = tool["name"] != "submit_reconstruction";
        assert_eq!(tool["annotations"]["readOnlyHint"], read_only, "{tool}");
    }
}

#[tokio::test]
async fn search_finds_wood_for_oak() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    let result = call(
        &server.app,
        "search_materials",
        json!({"query": "oak", "topK": 3}),
    )
    .await;
    assert_eq!(result["isError"], false, "{result}");
    let results = result["structuredContent"]["results"]
        .as_array()
        .expect("results");
    assert_eq!(results.len(), 3, "{result}");
    assert_eq!(results[0]["materialType"], "wood", "{result}");
    let from_text: Value = serde_json::from_str(text(&result)).expect("the text is JSON");
    assert_eq!(from_text, result["structuredContent"]);
}

#[tokio::test]
async fn recognize_names_the_photo_type() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    let photo = std::fs::read(common::photo("altered-red-brick-white-mortar.jpg")).expect("photo");
    let result = call(
        &server.app,
        "recognize_material",
        json!({"imageBase64": base64(&photo), "topK": 2}),
    )
    .await;
    assert_eq!(result["isError"], false, "{result}");
    let output = &result["structuredContent"];
    assert_eq!(
        output["materials"].as_array().map(Vec::len),
        Some(2),
        "{output}"
    );
    assert_eq!(output["classes"][0]["materialType"], "brick", "{output}");
    assert_eq!(output["unknown"], false, "{output}");
}

#[tokio::test]
async fn invalid_calls_are_tool_errors() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    let cases = [
        (
            "recognize_material",
            json!({"imageBase64": "not base64!"}),
            "imageBase64",
        ),
        (
            "recognize_material",
            json!({"imageBase64": "aGVsbG8gd29ybGQ="}),
            "image",
        ),
        (
            "search_materials",
            json!({"query": "oak", "topK": "ten"}),
            "topK",
        ),
        (
            "search_materials",
            json!({"quer": "oak"}),
            "unknown field `quer`",
        ),
        (
            "search_materials",
            json!({"query": "oak", "topK": 0}),
            "invalid topK: must be at least 1",
        ),
        (
            "recognize_material",
            json!({"imageBase64": "Zm9v", "topK": 101}),
            "invalid topK: must be at most 100",
        ),
        ("embed_text", json!({"texts": []}), "texts"),
        (
            "get_parameters",
            json!({"name": "no-such-set"}),
            "no-such-set",
        ),
        ("suggest_parameters", json!({}), "materialId"),
        (
            "assess_image_quality",
            json!({"imageBase64": "Zm9v", "thresholds": {"minSharp": 1}}),
            "minSharp",
        ),
    ];
    for (tool, arguments, expected) in cases {
        let result = call(&server.app, tool, arguments.clone()).await;
        assert_eq!(result["isError"], true, "{tool} {arguments}: {result}");
        assert!(
            text(&result).contains(expected),
            "{tool} {arguments}: the message does not name {expected}: {result}"
        );
        assert!(result.get("structuredContent").is_none(), "{result}");
    }
    // The server still serves requests after the failed calls.
    let result = call(&server.app, "embed_text", json!({"texts": ["oak floor"]})).await;
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(result["structuredContent"]["dimension"], 384, "{result}");
}

#[tokio::test]
async fn oversized_images_are_rejected_before_decoding() {
    let Some(server) = common::server(&[("KAI_MAX_IMAGE_BYTES", "1000")]) else {
        return;
    };
    let result = call(
        &server.app,
        "assess_image_quality",
        json!({"imageBase64": base64(&[0u8; 3000])}),
    )
    .await;
    assert_eq!(result["isError"], true, "{result}");
    assert!(text(&result).contains("KAI_MAX_IMAGE_BYTES"), "{result}");
}

#[tokio::test]
async fn header_body_mismatch_is_rejected() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    let wrong_method = modern(
        "tools/call",
        json!({"name": "embed_text", "arguments": {"texts": ["oak"]}}),
        &[],
    );
    let (mut parts, body) = wrong_method.into_parts();
    parts
        .headers
        .insert("mcp-method", "tools/list".parse().expect("header"));
    let reply = send(&server.app, Request::from_parts(parts, body)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert!(
        reply.message()["error"]["message"].is_string(),
        "{}",
        reply.body
    );

    let wrong_name = modern(
        "tools/call",
        json!({"name": "embed_text", "arguments": {"texts": ["oak"]}}),
        &[],
    );
    let (mut parts, body) = wrong_name.into_parts();
    parts
        .headers
        .insert("mcp-name", "search_materials".parse().expect("header"));
    let reply = send(&server.app, Request::from_parts(parts, body)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);

    let wrong_version = modern("tools/list", json!({}), &[]);
    let (mut parts, body) = wrong_version.into_parts();
    parts.headers.insert(
        "mcp-protocol-version",
        "2025-11-25".parse().expect("header"),
    );
    let reply = send(&server.app, Request::from_parts(parts, body)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
}

#[tokio::test]
async fn origins_outside_the_list_get_403() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    for (origin, expected) in [
        ("http://localhost", StatusCode::OK),
        ("http://127.0.0.1", StatusCode::OK),
        // Local tools such as an MCP inspector run on any port of the machine itself.
        ("http://localhost:6274", StatusCode::OK),
        ("https://evil.example", StatusCode::FORBIDDEN),
        // An origin is scheme, host and port: https on localhost is another origin.
        ("https://localhost", StatusCode::FORBIDDEN),
    ] {
        let request = modern("tools/list", json!({}), &[("origin", origin)]);
        let reply = send(&server.app, request).await;
        assert_eq!(reply.status, expected, "{origin}: {}", reply.body);
    }
    // Requests without Origin are not from browsers and pass.
    let reply = send(&server.app, modern("tools/list", json!({}), &[])).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    let Some(open) = common::server(&[("KAI_ALLOWED_ORIGINS", "*")]) else {
        return;
    };
    let request = modern(
        "tools/list",
        json!({}),
        &[("origin", "https://evil.example")],
    );
    assert_eq!(send(&open.app, request).await.status, StatusCode::OK);

    let Some(listed) = common::server(&[(
        "KAI_ALLOWED_ORIGINS",
        "https://app.example.com, http://localhost:*",
    )]) else {
        return;
    };
    for (origin, expected) in [
        ("https://app.example.com", StatusCode::OK),
        ("https://app.example.com:8443", StatusCode::FORBIDDEN),
        ("http://localhost:5173", StatusCode::OK),
        ("http://app.example.com", StatusCode::FORBIDDEN),
    ] {
        let request = modern("tools/list", json!({}), &[("origin", origin)]);
        let reply = send(&listed.app, request).await;
        assert_eq!(reply.status, expected, "{origin}: {}", reply.body);
    }
}

#[tokio::test]
async fn hosts_outside_the_list_get_403() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    let request = modern("tools/list", json!({}), &[("host", "attacker.example")]);
    let reply = send(&server.app, request).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);

    // The names a Kubernetes Service gives the pod, as the Helm chart lists them.
    let hosts = "kai,kai.ml,kai.ml.svc,kai.ml.svc.cluster.local";
    let Some(cluster) = common::server(&[("KAI_ALLOWED_HOSTS", hosts)]) else {
        return;
    };
    for (host, expected) in [
        ("kai", StatusCode::OK),
        ("kai:8000", StatusCode::OK),
        ("kai.ml.svc", StatusCode::OK),
        ("kai.ml.svc.cluster.local:8000", StatusCode::OK),
        ("kai.other.svc.cluster.local", StatusCode::FORBIDDEN),
        ("localhost", StatusCode::FORBIDDEN),
    ] {
        let request = modern("tools/list", json!({}), &[("host", host)]);
        let reply = send(&cluster.app, request).await;
        assert_eq!(reply.status, expected, "{host}: {}", reply.body);
    }

    let Some(any) = common::server(&[("KAI_ALLOWED_HOSTS", "*")]) else {
        return;
    };
    let request = modern("tools/list", json!({}), &[("host", "anything.example:9")]);
    assert_eq!(send(&any.app, request).await.status, StatusCode::OK);
}

#[tokio::test]
async fn bodies_above_the_limit_get_413() {
    let Some(server) = common::server(&[("KAI_MAX_BODY_BYTES", "4096")]) else {
        return;
    };
    let texts = vec!["oak"; 2000];
    let arguments = json!({"name": "embed_text", "arguments": {"texts": texts}});
    // Once without Content-Length, as a chunked body arrives, and once with it.
    let chunked = modern("tools/call", arguments.clone(), &[]);
    let length = modern("tools/call", arguments, &[]);
    let (mut parts, body) = length.into_parts();
    let size = axum::body::to_bytes(body, usize::MAX).await.expect("body");
    parts
        .headers
        .insert(header::CONTENT_LENGTH, size.len().into());
    let length = Request::from_parts(parts, Body::from(size));
    for request in [chunked, length] {
        let reply = send(&server.app, request).await;
        assert_eq!(
            reply.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}",
            reply.body
        );
        let body: Value = serde_json::from_str(&reply.body).expect("a JSON error body");
        common::error_message(&body, "KAI_INVALID_INPUT");
    }
}

#[tokio::test]
async fn legacy_clients_use_a_session() {
    let Some(server) = common::server(&[]) else {
        return;
    };
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": LEGACY,
            "capabilities": {},
            "clientInfo": {"name": "kai-tests", "version": "0"},
        },
    });
    let reply = send(&server.app, post(&initialize, &[])).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let session = reply
        .headers
        .get("mcp-session-id")
        .and_then(|value| value.to_str().ok())
        .expect("a session id")
        .to_owned();
    let result = &reply.message()["result"];
    assert_eq!(result["protocolVersion"], LEGACY, "{result}");
    assert_eq!(result["serverInfo"]["name"], "kai-server", "{result}");

    let with_session = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", LEGACY),
    ];
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let reply = send(&server.app, post(&initialized, &with_session)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);

    let call = json!({
        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "search_materials", "arguments": {"query": "brick wall"}},
    });
    let reply = send(&server.app, post(&call, &with_session)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let result = &reply.message()["result"];
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(
        result["structuredContent"]["results"][0]["materialType"], "brick",
        "{result}"
    );

    // Without the session id, a legacy request is rejected.
    let reply = send(
        &server.app,
        post(&call, &[("mcp-protocol-version", LEGACY)]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
}

#[tokio::test]
async fn disabled_agent_api_has_no_endpoint() {
    let Some(server) = common::server(&[("ENABLE_AGENT_API", "false")]) else {
        return;
    };
    let reply = send(&server.app, modern("tools/list", json!({}), &[])).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
}

// --- JSON-RPC error responses -----------------------------------------------------------

/// A server over an empty store, for the transport's error responses, which need no model.
struct BareServer {
    app: Router,
    _dir: tempfile::TempDir,
}

fn bare_server(vars: &[(&str, &str)]) -> BareServer {
    let dir = tempfile::tempdir().expect("temporary folder");
    let config = common::config(&dir.path().join("store"), vars);
    let state = kai_server::server::AppState::open(config).expect("the server state opens");
    BareServer {
        app: common::app(state),
        _dir: dir,
    }
}

/// Builds a request to `/mcp` with a raw body and exactly `headers` besides `Host`.
fn raw(method: &str, body: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri("/mcp")
        .header(header::HOST, "127.0.0.1:8000");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(Body::from(body.to_owned()))
        .expect("valid request")
}

const JSON_AND_SSE: (&str, &str) = ("accept", "application/json, text/event-stream");
const JSON_BODY: (&str, &str) = ("content-type", "application/json");

/// Asserts that `reply` is a JSON-RPC error object with `code`, returning its message.
fn jsonrpc_error(reply: &Reply, code: i64) -> String {
    let body: Value = serde_json::from_str(&reply.body)
        .unwrap_or_else(|_| panic!("the error body is not JSON: {}", reply.body));
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    assert!(body.get("id").is_some(), "no id: {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let content_type = reply
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    body["error"]["message"]
        .as_str()
        .expect("the error has a message")
        .to_owned()
}

#[tokio::test]
async fn malformed_json_gets_parse_error() {
    let server = bare_server(&[]);
    let reply = send(
        &server.app,
        raw("POST", "{not json", &[JSON_AND_SSE, JSON_BODY]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let message = jsonrpc_error(&reply, -32700);
    assert!(message.contains("not valid JSON"), "{message}");
    let body: Value = serde_json::from_str(&reply.body).expect("JSON");
    assert_eq!(body["id"], Value::Null, "{body}");
}

#[tokio::test]
async fn non_object_arguments_get_invalid_params() {
    let server = bare_server(&[]);
    let request = modern(
        "tools/call",
        json!({"name": "embed_text", "arguments": "notanobject"}),
        &[],
    );
    let reply = send(&server.app, request).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let message = jsonrpc_error(&reply, -32602);
    assert!(message.contains("arguments"), "{message}");
    let body: Value = serde_json::from_str(&reply.body).expect("JSON");
    assert_eq!(body["id"], 1, "the error names the request: {body}");

    // A well-formed call still reaches the tool.
    let request = modern("tools/list", json!({}), &[]);
    assert_eq!(send(&server.app, request).await.status, StatusCode::OK);
}

#[tokio::test]
async fn transport_errors_are_jsonrpc_objects() {
    let server = bare_server(&[]);
    let list = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{}}"#;
    let cases: [(&str, Request<Body>, StatusCode, i64); 7] = [
        (
            "JSON that is not JSON-RPC",
            raw("POST", r#"{"hello":1}"#, &[JSON_AND_SSE, JSON_BODY]),
            StatusCode::BAD_REQUEST,
            -32600,
        ),
        (
            "Accept without event streams",
            raw("POST", list, &[("accept", "application/json"), JSON_BODY]),
            StatusCode::NOT_ACCEPTABLE,
            -32000,
        ),
        (
            "text body",
            raw(
                "POST",
                list,
                &[JSON_AND_SSE, ("content-type", "text/plain")],
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            -32000,
        ),
        (
            "unknown session",
            raw(
                "POST",
                list,
                &[
                    JSON_AND_SSE,
                    JSON_BODY,
                    ("mcp-session-id", "no-such-session"),
                    ("mcp-protocol-version", LEGACY),
                ],
            ),
            StatusCode::NOT_FOUND,
            -32001,
        ),
        (
            "unsupported protocol version",
            raw(
                "POST",
                list,
                &[
                    JSON_AND_SSE,
                    JSON_BODY,
                    ("mcp-protocol-version", "1999-01-01"),
                ],
            ),
            StatusCode::BAD_REQUEST,
            -32000,
        ),
        (
            "PUT",
            raw("PUT", list, &[JSON_AND_SSE, JSON_BODY]),
            StatusCode::METHOD_NOT_ALLOWED,
            -32000,
        ),
        (
            "browser origin outside the list",
            raw(
                "POST",
                list,
                &[JSON_AND_SSE, JSON_BODY, ("origin", "https://evil.example")],
            ),
            StatusCode::FORBIDDEN,
            -32000,
        ),
    ];
    for (case, request, status, code) in cases {
        let reply = send(&server.app, request).await;
        assert_eq!(reply.status, status, "{case}: {}", reply.body);
        let message = jsonrpc_error(&reply, code);
        assert!(!message.is_empty(), "{case}");
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(reply.headers.contains_key(header::ALLOW), "{case}");
        }
    }
}
