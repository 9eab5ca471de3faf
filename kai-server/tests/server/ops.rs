//! The operational layers: rate limits, bearer auth, body limit, CORS, request ids,
//! metrics, the request log, and graceful shutdown of a real `kai-server` process.
//!
//! These tests need no model: they open an empty store. Only
//! `sigterm_finishes_in_flight_requests` embeds text, in a spawned server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use kai_server::server::config::RateLimit;
use kai_server::server::ops::logging;
use kai_server::server::ops::metrics::{BATCH_SIZE, MODEL_CACHE_MISSES};
use kai_server::server::ops::rate_limit::{Decision, RateLimiter};
use kai_server::server::{AppState, router};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common;

const SECRET: &str = "an-ops-test-secret-of-at-least-32-bytes";

/// A server over an empty store in its own temporary folder.
struct OpsServer {
    app: Router,
    state: AppState,
    _dir: tempfile::TempDir,
}

fn ops_server(vars: &[(&str, &str)]) -> OpsServer {
    let dir = tempfile::tempdir().expect("temporary folder");
    let config = common::config(&dir.path().join("store"), vars);
    let state = AppState::open(config).expect("the server state opens");
    OpsServer {
        app: common::app(state.clone()),
        state,
        _dir: dir,
    }
}

/// Sends `request` and returns the whole response with its body collected.
async fn call(app: &Router, request: Request<Body>) -> (Response<()>, Vec<u8>) {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router answers");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("readable body").to_bytes();
    (Response::from_parts(parts, ()), bytes.to_vec())
}

fn body_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

fn header_of<'a>(response: &'a Response<()>, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

fn get_from(uri: &str, client: IpAddr) -> Request<Body> {
    let mut request = common::get(uri);
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(client, 40000)));
    request
}

fn with_bearer(uri: &str, token: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("valid request")
}

fn token(secret: &str, claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).expect("a non-empty secret"),
    )
    .expect("the token signs")
}

// --- rate limits -----------------------------------------------------------------------

#[test]
fn limiter_window_counts_and_resets() {
    let limiter = RateLimiter::new(RateLimit {
        limit: 3,
        window: Duration::from_secs(10),
    });
    let client = IpAddr::from([10, 0, 0, 1]);
    let start = Instant::now();

    for remaining in [2, 1, 0] {
        assert_eq!(
            limiter.check(client, start),
            Decision::Allowed { remaining }
        );
    }
    assert_eq!(
        limiter.check(client, start + Duration::from_secs(4)),
        Decision::Limited {
            retry_after: Duration::from_secs(6)
        }
    );
    // Another client has its own window.
    assert_eq!(
        limiter.check(IpAddr::from([10, 0, 0, 2]), start + Duration::from_secs(4)),
        Decision::Allowed { remaining: 2 }
    );
    // A rejected request does not extend the window, which ends 10 s after the first.
    assert_eq!(
        limiter.check(client, start + Duration::from_secs(10)),
        Decision::Allowed { remaining: 2 }
    );
}

#[test]
fn limiter_with_zero_limit_rejects_all() {
    let window = Duration::from_secs(5);
    let limiter = RateLimiter::new(RateLimit { limit: 0, window });
    let decision = limiter.check(IpAddr::from([10, 0, 0, 1]), Instant::now());
    assert_eq!(
        decision,
        Decision::Limited {
            retry_after: window
        }
    );
    assert_eq!(limiter.tracked_clients(), 0);
}

#[test]
fn limiter_table_stays_bounded() {
    let window = Duration::from_secs(1);
    let limiter = RateLimiter::with_capacity(RateLimit { limit: 5, window }, 4);
    let start = Instant::now();
    for last in 1..=4u8 {
        assert!(matches!(
            limiter.check(IpAddr::from([10, 0, 0, last]), start),
            Decision::Allowed { .. }
        ));
    }
    assert_eq!(limiter.tracked_clients(), 4);

    // A full table rejects new clients until the next sweep instead of growing.
    let newcomer = IpAddr::from([10, 0, 1, 1]);
    let Decision::Limited { retry_after } = limiter.check(newcomer, start) else {
        panic!("a full table admitted a new client");
    };
    assert!(retry_after <= window, "{retry_after:?}");
    assert_eq!(limiter.tracked_clients(), 4);

    // Once the windows have ended, the sweep removes them and the newcomer gets in.
    assert_eq!(
        limiter.check(newcomer, start + window),
        Decision::Allowed { remaining: 4 }
    );
    assert_eq!(limiter.tracked_clients(), 1);
}

#[test]
fn limiter_groups_ipv6_by_prefix() {
    let limiter = RateLimiter::new(RateLimit {
        limit: 1,
        window: Duration::from_secs(60),
    });
    let now = Instant::now();
    let host = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 7, 0, 0, 0, last));
    assert!(matches!(
        limiter.check(host(1), now),
        Decision::Allowed { .. }
    ));
    // Another address of the same /64 shares the budget.
    assert!(matches!(
        limiter.check(host(2), now),
        Decision::Limited { .. }
    ));
    let other_prefix = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 8, 0, 0, 0, 1));
    assert!(matches!(
        limiter.check(other_prefix, now),
        Decision::Allowed { .. }
    ));
    // An IPv4-mapped IPv6 address is the IPv4 client.
    let v4 = IpAddr::from([192, 0, 2, 1]);
    assert!(matches!(limiter.check(v4, now), Decision::Allowed { .. }));
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    assert!(matches!(
        limiter.check(mapped, now),
        Decision::Limited { .. }
    ));
}

#[tokio::test]
async fn rate_limit_answers_429_per_class() {
    let server = ops_server(&[
        ("ML_RATE_LIMIT", "2"),
        ("DEFAULT_RATE_LIMIT", "3"),
        ("AGENT_RATE_LIMIT", "1"),
    ]);
    let app = &server.app;

    // Model routes: two requests, then 429. The method does not matter to the limiter.
    for _ in 0..2 {
        let (response, _) = call(app, common::get("/api/recognize")).await;
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let (response, body) = call(app, common::get("/api/embed/text")).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = header_of(&response, "retry-after")
        .expect("a 429 has Retry-After")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let message = common::error_message(&body_json(&body), "KAI_RATE_LIMITED");
    assert!(message.contains("ML_RATE_LIMIT"), "{message}");

    // The default class has its own budget, untouched by the model requests.
    for _ in 0..3 {
        let (response, _) = call(app, common::get("/api/materials")).await;
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let (response, body) = call(app, common::get("/api/materials")).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let message = common::error_message(&body_json(&body), "KAI_RATE_LIMITED");
    assert!(message.contains("DEFAULT_RATE_LIMIT"), "{message}");

    // So has the agent class.
    let (response, _) = call(app, common::get("/mcp")).await;
    assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let (response, _) = call(app, common::get("/mcp")).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn rate_limit_is_per_client() {
    let server = ops_server(&[("DEFAULT_RATE_LIMIT", "1")]);
    // Without MockConnectInfo, so each request names its own peer address.
    let app = router(server.state.clone());
    let first = IpAddr::from([192, 0, 2, 10]);
    let second = IpAddr::from([192, 0, 2, 11]);

    let (response, _) = call(&app, get_from("/api/materials", first)).await;
    assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let (response, _) = call(&app, get_from("/api/materials", first)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let (response, _) = call(&app, get_from("/api/materials", second)).await;
    assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn open_routes_are_never_limited() {
    let server = ops_server(&[
        ("DEFAULT_RATE_LIMIT", "1"),
        ("ML_RATE_LIMIT", "1"),
        ("AGENT_RATE_LIMIT", "1"),
    ]);
    for uri in ["/health", "/ready", "/metrics", "/openapi.json"] {
        for _ in 0..5 {
            let (response, _) = call(&server.app, common::get(uri)).await;
            assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{uri}");
        }
    }
    let (response, _) = call(&server.app, common::get("/health")).await;
    assert_eq!(response.status(), StatusCode::OK);
}

// --- bearer auth ----------------------------------------------------------------------

#[tokio::test]
async fn auth_rejects_requests_without_valid_token() {
    let server = ops_server(&[("JWT_SECRET", SECRET)]);
    let app = &server.app;
    let now = get_current_timestamp();
    let wrong_secret = token(
        "another-secret-of-at-least-32-bytes!",
        &json!({"sub": "ci", "exp": now + 600}),
    );
    let expired = token(SECRET, &json!({"sub": "ci", "exp": now - 3600}));
    let not_yet = token(
        SECRET,
        &json!({"sub": "ci", "exp": now + 7200, "nbf": now + 3600}),
    );
    let no_exp = token(SECRET, &json!({"sub": "ci"}));

    let cases: [(&str, Request<Body>, &str); 7] = [
        (
            "no header",
            common::get("/api/materials"),
            "missing bearer token",
        ),
        (
            "basic scheme",
            Request::get("/api/materials")
                .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
                .body(Body::empty())
                .expect("valid request"),
            "expected `Bearer <token>`",
        ),
        (
            "garbage",
            with_bearer("/api/materials", "not.a.jwt"),
            "well-formed",
        ),
        (
            "wrong secret",
            with_bearer("/api/materials", &wrong_secret),
            "signature",
        ),
        (
            "expired",
            with_bearer("/api/materials", &expired),
            "expired",
        ),
        (
            "nbf in future",
            with_bearer("/api/materials", &not_yet),
            "not valid yet",
        ),
        ("no exp", with_bearer("/api/materials", &no_exp), "`exp`"),
    ];
    for (case, request, expected) in cases {
        let (response, body) = call(app, request).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
        let challenge = header_of(&response, "www-authenticate").expect("a challenge");
        assert!(challenge.starts_with("Bearer"), "{case}: {challenge}");
        let message = common::error_message(&body_json(&body), "KAI_UNAUTHORIZED");
        assert!(message.contains(expected), "{case}: {message}");
        assert!(!message.contains(SECRET), "{case}: {message}");
    }

    // /mcp needs the token too; probes and documents do not.
    let (response, _) = call(app, common::get("/mcp")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    for uri in ["/health", "/metrics", "/openapi.json"] {
        let (response, _) = call(app, common::get(uri)).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn auth_accepts_valid_token() {
    let server = ops_server(&[("JWT_SECRET", SECRET)]);
    let now = get_current_timestamp();
    let valid = token(SECRET, &json!({"sub": "ci", "exp": now + 600}));
    let with_nbf = token(SECRET, &json!({"exp": now + 600, "nbf": now - 10}));
    for token in [valid, with_nbf] {
        let (response, body) = call(&server.app, with_bearer("/api/materials", &token)).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    // The scheme name is case-insensitive.
    let lower = token(SECRET, &json!({"exp": now + 600}));
    let request = Request::get("/api/materials")
        .header(header::AUTHORIZATION, format!("bearer {lower}"))
        .body(Body::empty())
        .expect("valid request");
    let (response, _) = call(&server.app, request).await;
    assert_eq!(response.status(), StatusCode::OK);
}

// --- body limit, error bodies, CORS, request ids ----------------------------------------

#[tokio::test]
async fn oversized_body_gets_413_json() {
    let server = ops_server(&[("KAI_MAX_BODY_BYTES", "1024")]);
    let texts = vec!["x".repeat(100); 40];
    let body = json!({ "texts": texts });

    // Announced by Content-Length: rejected before the body is read.
    let bytes = body.to_string();
    let request = Request::post("/api/embed/text")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, bytes.len())
        .body(Body::from(bytes.clone()))
        .expect("valid request");
    let (response, answer) = call(&server.app, request).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let message = common::error_message(&body_json(&answer), "KAI_INVALID_INPUT");
    assert!(message.contains("1024 bytes"), "{message}");
    assert!(message.contains("KAI_MAX_BODY_BYTES"), "{message}");

    // Known length without the header: rejected before the body is read.
    let request = Request::post("/api/materials")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes.clone()))
        .expect("valid request");
    let (response, answer) = call(&server.app, request).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    common::error_message(&body_json(&answer), "KAI_INVALID_INPUT");

    // Chunked transfer, of unknown length: rejected once the limit is passed, through a
    // real listener because only hyper produces such a body.
    let address = serve_locally(server.state.clone()).await;
    let oversized = chunked_post(
        address,
        "/api/embed/text",
        &[&bytes[..512], &bytes[512..1024], &bytes[1024..]],
    )
    .await;
    assert!(oversized.starts_with("HTTP/1.1 413"), "{oversized}");
    assert!(oversized.contains("KAI_MAX_BODY_BYTES"), "{oversized}");

    // A chunked body within the limit reaches the route, which rejects the empty list.
    let small = chunked_post(address, "/api/embed/text", &[r#"{"texts":"#, "[]}"]).await;
    assert!(!small.starts_with("HTTP/1.1 413"), "{small}");
    assert!(small.contains("KAI_INVALID_INPUT"), "{small}");
    assert!(!small.contains("failed to read"), "{small}");
}

/// Serves `state` on a free port of 127.0.0.1 for the rest of the test.
async fn serve_locally(state: AppState) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let address = listener.local_addr().expect("the bound address");
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// Posts `chunks` with chunked transfer encoding and returns the raw response.
async fn chunked_post(address: SocketAddr, path: &str, chunks: &[&str]) -> String {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for chunk in chunks {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    // Blocking socket calls on the blocking pool, so the server task keeps running.
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        stream.write_all(request.as_bytes()).expect("request sent");
        let mut response = Vec::new();
        // The server may reset the connection after an early 413; what arrived counts.
        let _ = stream.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    })
    .await
    .expect("the client thread finishes")
}

#[tokio::test]
async fn plain_errors_get_json_body() {
    let server = ops_server(&[]);
    let (response, body) = call(&server.app, common::get("/api/no-such-route")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let message = common::error_message(&body_json(&body), "KAI_NOT_FOUND");
    assert!(message.contains("/api/no-such-route"), "{message}");

    let request = Request::post("/metrics")
        .body(Body::empty())
        .expect("valid request");
    let (response, body) = call(&server.app, request).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(header_of(&response, "allow").is_some_and(|allow| allow.contains("GET")));
    let message = common::error_message(&body_json(&body), "KAI_INVALID_INPUT");
    assert!(message.contains("POST"), "{message}");
}

fn preflight(origin: &str) -> Request<Body> {
    Request::builder()
        .method("OPTIONS")
        .uri("/api/materials")
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization,content-type",
        )
        .body(Body::empty())
        .expect("valid request")
}

#[tokio::test]
async fn cors_preflight_follows_allowed_origins() {
    let server = ops_server(&[
        (
            "KAI_ALLOWED_ORIGINS",
            "https://app.example, https://admin.example/",
        ),
        ("JWT_SECRET", SECRET),
        ("DEFAULT_RATE_LIMIT", "1"),
    ]);
    for origin in ["https://app.example", "https://admin.example"] {
        let (response, _) = call(&server.app, preflight(origin)).await;
        assert_eq!(response.status(), StatusCode::OK, "{origin}");
        assert_eq!(
            header_of(&response, "access-control-allow-origin"),
            Some(origin)
        );
        let methods = header_of(&response, "access-control-allow-methods").unwrap_or("");
        assert!(methods.contains("POST"), "{methods}");
        let headers = header_of(&response, "access-control-allow-headers").unwrap_or("");
        assert!(headers.contains("authorization"), "{headers}");
    }
    // Preflights skip auth and the rate limit (three were sent with a budget of one).
    let (response, _) = call(&server.app, preflight("https://evil.example")).await;
    assert_eq!(
        header_of(&response, "access-control-allow-origin"),
        None,
        "a disallowed origin must not be allowed"
    );

    let any = ops_server(&[("KAI_ALLOWED_ORIGINS", "*")]);
    let (response, _) = call(&any.app, preflight("https://anywhere.example")).await;
    assert_eq!(
        header_of(&response, "access-control-allow-origin"),
        Some("*")
    );

    // A plain cross-origin request gets the header and can read the request id.
    let request = Request::get("/health")
        .header(header::ORIGIN, "https://app.example")
        .body(Body::empty())
        .expect("valid request");
    let (response, _) = call(&server.app, request).await;
    assert_eq!(
        header_of(&response, "access-control-allow-origin"),
        Some("https://app.example")
    );
    let exposed = header_of(&response, "access-control-expose-headers").unwrap_or("");
    assert!(exposed.contains("x-request-id"), "{exposed}");
}

/// Returns the `Access-Control-Allow-Origin` that a `GET /health` from `origin` gets.
async fn cors_allowed_origin(app: &Router, origin: &str) -> Option<String> {
    let request = Request::get("/health")
        .header(header::ORIGIN, origin)
        .body(Body::empty())
        .expect("valid request");
    let (response, _) = call(app, request).await;
    header_of(&response, "access-control-allow-origin").map(str::to_owned)
}

#[tokio::test]
async fn cors_allows_default_local_origins() {
    // The default KAI_ALLOWED_ORIGINS is `http://localhost:*,http://127.0.0.1:*`.
    let server = ops_server(&[]);
    for origin in [
        "http://localhost:3000",
        "http://localhost",
        "http://127.0.0.1:5173",
    ] {
        assert_eq!(
            cors_allowed_origin(&server.app, origin).await.as_deref(),
            Some(origin),
            "{origin}"
        );
        let (response, _) = call(&server.app, preflight(origin)).await;
        assert_eq!(
            header_of(&response, "access-control-allow-origin"),
            Some(origin),
            "preflight from {origin}"
        );
    }
    for origin in [
        "https://localhost:3000",
        "http://localhost.evil.example:3000",
        "null",
    ] {
        assert_eq!(
            cors_allowed_origin(&server.app, origin).await,
            None,
            "{origin}"
        );
    }
}

/// Returns whether `/mcp` accepts a stateless `tools/list` from a page at `origin`.
async fn mcp_allows_origin(app: &Router, origin: &str) -> bool {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/list",
        "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "kai-tests", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {},
        }},
    });
    let request = Request::post("/mcp")
        .header(header::HOST, "127.0.0.1:8000")
        .header(header::ORIGIN, origin)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .body(Body::from(body.to_string()))
        .expect("valid request");
    let (response, body) = call(app, request).await;
    match response.status() {
        StatusCode::OK => true,
        StatusCode::FORBIDDEN => false,
        status => panic!("{origin}: {status} {}", String::from_utf8_lossy(&body)),
    }
}

#[tokio::test]
async fn cors_and_mcp_allow_same_origins() {
    let lists = [
        "http://localhost:*,http://127.0.0.1:*",
        "https://app.example.com, http://localhost:3000/",
        "null,https://[::1]:8443",
    ];
    let origins = [
        "http://localhost",
        "http://localhost:3000",
        "http://localhost:3001",
        "https://localhost:3000",
        "http://127.0.0.1:9999",
        "https://app.example.com",
        "https://app.example.com:443",
        "https://app.example.com:8443",
        "http://app.example.com",
        "https://[::1]:8443",
        "null",
        "https://evil.example",
    ];
    for list in lists {
        let server = ops_server(&[("KAI_ALLOWED_ORIGINS", list)]);
        for origin in origins {
            let cors = cors_allowed_origin(&server.app, origin).await.is_some();
            let mcp = mcp_allows_origin(&server.app, origin).await;
            assert_eq!(cors, mcp, "{list}: {origin}: CORS {cors}, /mcp {mcp}");
        }
    }
    // Spot checks, so the two cannot agree on allowing nothing.
    let server = ops_server(&[("KAI_ALLOWED_ORIGINS", lists[1])]);
    assert!(mcp_allows_origin(&server.app, "https://app.example.com:443").await);
    assert!(!mcp_allows_origin(&server.app, "https://app.example.com:8443").await);
    assert!(mcp_allows_origin(&server.app, "http://localhost:3000").await);
    assert!(!mcp_allows_origin(&server.app, "http://localhost").await);
}

#[tokio::test]
async fn method_not_allowed_lists_methods() {
    let server = ops_server(&[]);
    for (method, uri) in [("POST", "/metrics"), ("DELETE", "/api/materials")] {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("valid request");
        let (response, body) = call(&server.app, request).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{uri}");
        let allow = header_of(&response, "allow").expect("an Allow header");
        assert!(allow.contains("GET"), "{uri}: {allow}");
        let message = common::error_message(&body_json(&body), "KAI_INVALID_INPUT");
        assert!(
            message.ends_with(&format!("allowed methods: {allow}")),
            "{uri}: {message}"
        );
        assert!(
            header_of(&response, "x-request-id").is_some(),
            "{uri}: headers are kept"
        );
    }
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let server = ops_server(&[]);
    let request = Request::get("/health")
        .header("x-request-id", "client-chosen-42")
        .body(Body::empty())
        .expect("valid request");
    let (response, _) = call(&server.app, request).await;
    assert_eq!(
        header_of(&response, "x-request-id"),
        Some("client-chosen-42")
    );

    let (response, _) = call(&server.app, common::get("/health")).await;
    let generated = header_of(&response, "x-request-id").expect("a generated id");
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");

    // An id too long to log safely is replaced, also on error responses.
    let request = Request::get("/api/no-such-route")
        .header("x-request-id", "a".repeat(300))
        .body(Body::empty())
        .expect("valid request");
    let (response, _) = call(&server.app, request).await;
    let replaced = header_of(&response, "x-request-id").expect("an id");
    assert!(uuid::Uuid::parse_str(replaced).is_ok(), "{replaced}");
}

// --- metrics and logs -----------------------------------------------------------------

/// Returns the value of the sample `name{labels}` in a Prometheus text exposition.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.trim();
        value.parse().ok()
    })
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let server = ops_server(&[]);
    let series =
        r#"kai_http_requests_total{method="GET",route="/api/materials/{id}",status="404"}"#;
    let (_, before) = call(&server.app, common::get("/metrics")).await;
    let before = sample(&String::from_utf8_lossy(&before), series).unwrap_or(0.0);

    for id in [
        "ops-metrics-missing-1",
        "ops-metrics-missing-2",
        "ops-metrics-missing-3",
    ] {
        let (response, _) = call(&server.app, common::get(&format!("/api/materials/{id}"))).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    metrics::histogram!(BATCH_SIZE, "kind" => "ops-test").record(3.0);

    let (response, bytes) = call(&server.app, common::get("/metrics")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        header_of(&response, "content-type").is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        response.headers()
    );
    let exposition = String::from_utf8_lossy(&bytes);
    let after = sample(&exposition, series).expect("the route template has a counter");
    // Other tests share the process-wide recorder, so the count can only have grown more.
    assert!(after >= before + 3.0, "before {before}, after {after}");
    assert!(
        !exposition.contains("ops-metrics-missing"),
        "raw paths must not become labels"
    );
    assert!(exposition.contains("# TYPE kai_http_request_duration_seconds histogram"));
    assert!(exposition.contains(
        r#"kai_http_request_duration_seconds_bucket{method="GET",route="/api/materials/{id}","#
    ));
    assert!(exposition.contains("# TYPE kai_batch_size histogram"));
    assert!(exposition.contains(r#"kai_batch_size_bucket{kind="ops-test",le="4"}"#));

    // Paths that match no route share one label.
    let (_, _) = call(&server.app, common::get("/ops-no-such-page")).await;
    let (_, bytes) = call(&server.app, common::get("/metrics")).await;
    let exposition = String::from_utf8_lossy(&bytes);
    assert!(exposition.contains(r#"route="unmatched""#));
    assert!(!exposition.contains("ops-no-such-page"));
}

/// A log writer that appends to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

#[tokio::test]
async fn errors_are_logged_once_with_request_id() {
    let server = ops_server(&[("LOG_FORMAT", "json"), ("JWT_SECRET", SECRET)]);
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = logging::subscriber(server.state.config(), move || writer.clone());
    // The current-thread test runtime runs the whole request on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    // Other tests' threads may have cached "not interested" for the log call sites while
    // no subscriber listened; recompute it now that this one does.
    tracing::callsite::rebuild_interest_cache();

    let bad_token = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2lnbmF0dXJlLXRoYXQtZmFpbHM";
    let request = Request::get("/api/materials")
        .header("x-request-id", "ops-log-test-7")
        .header(header::AUTHORIZATION, format!("Bearer {bad_token}"))
        .body(Body::empty())
        .expect("valid request");
    let (response, _) = call(&server.app, request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let text = captured.text();
    let lines: Vec<Value> = text
        .lines()
        .filter(|line| line.contains("ops-log-test-7"))
        .map(|line| serde_json::from_str(line).expect("JSON log lines"))
        .collect();
    assert_eq!(lines.len(), 1, "one line per request:\n{text}");
    let line = &lines[0];
    assert_eq!(line["request_id"], "ops-log-test-7", "{line}");
    assert_eq!(line["status"], 401, "{line}");
    assert_eq!(line["code"], "KAI_UNAUTHORIZED", "{line}");
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["route"], "/api/materials", "{line}");
    assert!(
        line["error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid bearer token")),
        "{line}"
    );
    assert!(
        !text.contains(bad_token),
        "a token reached the log:\n{text}"
    );
    assert!(
        !text.contains(SECRET),
        "the secret reached the log:\n{text}"
    );
}

#[tokio::test]
async fn cache_metric_help_says_what_is_counted() {
    let server = ops_server(&[]);
    // Registers the counter, so the exposition lists it with its help text.
    metrics::counter!(MODEL_CACHE_MISSES).increment(0);
    let (_, bytes) = call(&server.app, common::get("/metrics")).await;
    let exposition = String::from_utf8_lossy(&bytes);
    let help = exposition
        .lines()
        .find(|line| line.starts_with("# HELP kai_model_cache_misses_total "))
        .expect("the counter has help text");
    assert!(help.contains("started a load"), "{help}");
    assert!(help.contains("failed"), "{help}");
}

/// Captures the JSON log lines of the requests sent while the guard lives.
fn capture_logs(state: &AppState) -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = logging::subscriber(state.config(), move || writer.clone());
    let guard = tracing::subscriber::set_default(subscriber);
    // As in errors_are_logged_once_with_request_id: forget interest cached without it.
    tracing::callsite::rebuild_interest_cache();
    (captured, guard)
}

/// Returns the one request line of `request_id` in `captured`.
fn request_line(captured: &Captured, request_id: &str) -> Value {
    let text = captured.text();
    let lines: Vec<Value> = text
        .lines()
        .filter(|line| line.contains(request_id) && line.contains("request finished"))
        .map(|line| serde_json::from_str(line).expect("JSON log lines"))
        .collect();
    assert_eq!(lines.len(), 1, "one line per request:\n{text}");
    lines[0].clone()
}

#[tokio::test]
async fn not_implemented_is_logged_at_warn() {
    let server = ops_server(&[("LOG_FORMAT", "json")]);
    let (captured, _guard) = capture_logs(&server.state);
    // The leading `ftyp` box of a HEIC file; without the `heif` feature kai cannot decode
    // it and returns 501.
    let mut heic = vec![0, 0, 0, 24];
    heic.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
    let mut request = common::multipart("/api/quality", &[("image", Some("photo.heic"), &heic)]);
    request
        .headers_mut()
        .insert("x-request-id", "ops-log-501".parse().expect("header"));
    let (response, body) = call(&server.app, request).await;
    if response.status() != StatusCode::NOT_IMPLEMENTED {
        eprintln!(
            "skipped: this build decodes HEIC ({}: {})",
            response.status(),
            String::from_utf8_lossy(&body)
        );
        return;
    }
    let line = request_line(&captured, "ops-log-501");
    assert_eq!(line["status"], 501, "{line}");
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["code"], "KAI_NOT_SUPPORTED", "{line}");
}

#[tokio::test]
async fn mcp_errors_are_logged_with_code() {
    let server = ops_server(&[("LOG_FORMAT", "json")]);
    let (captured, _guard) = capture_logs(&server.state);
    let mcp = |request_id: &str, body: &str, headers: &[(&str, &str)]| {
        let mut request = Request::post("/mcp")
            .header(header::HOST, "127.0.0.1:8000")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header("x-request-id", request_id);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .body(Body::from(body.to_owned()))
            .expect("valid request")
    };
    // Rejected by kai before rmcp: invalid JSON.
    let (response, _) = call(&server.app, mcp("ops-mcp-parse", "{oops", &[])).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let line = request_line(&captured, "ops-mcp-parse");
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["code"], "-32700", "{line}");
    assert!(
        line["error"]
            .as_str()
            .is_some_and(|e| e.contains("not valid JSON")),
        "{line}"
    );

    // Plain text from rmcp: an unknown session.
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
    let headers = [
        ("mcp-session-id", "no-such-session"),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let (response, _) = call(&server.app, mcp("ops-mcp-session", list, &headers)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let line = request_line(&captured, "ops-mcp-session");
    assert_eq!(line["code"], "-32001", "{line}");
    assert!(
        line["error"]
            .as_str()
            .is_some_and(|e| e.contains("Session not found")),
        "{line}"
    );

    // JSON-RPC from rmcp: the Mcp-Method header contradicts the body.
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/list",
        "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "kai-tests", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {},
        }},
    });
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
    ];
    let request = mcp("ops-mcp-mismatch", &body.to_string(), &headers);
    let (response, answer) = call(&server.app, request).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let code = body_json(&answer)["error"]["code"].clone();
    let line = request_line(&captured, "ops-mcp-mismatch");
    assert_eq!(line["code"], code.to_string(), "{line}");
    assert!(
        line["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{line}"
    );
}

// --- graceful shutdown ------------------------------------------------------------------

/// A spawned `kai-server`, killed if the test ends before it exits.
struct Process {
    child: std::process::Child,
    output: Arc<Mutex<String>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Process {
    fn output(&self) -> String {
        self.output.lock().expect("output buffer").clone()
    }

    /// Waits until a log line contains `text`, for at most `limit`.
    fn wait_for_log(&self, text: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.output().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn spawn_server(store: &std::path::Path, port: u16, shutdown_timeout_ms: u32) -> Process {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kai-server"));
    command
        .env_clear()
        .env("KAI_BIND_ADDRESS", "127.0.0.1")
        .env("MCP_SERVER_PORT", port.to_string())
        .env("KAI_DATA_DIR", store)
        .env("KAI_DEVICE", "cpu")
        .env("LOG_FORMAT", "json")
        .env("KAI_SHUTDOWN_TIMEOUT_MS", shutdown_timeout_ms.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Ok(models) = std::env::var("MODEL_DIR") {
        command.env("MODEL_DIR", models);
    }
    let mut child = command.spawn().expect("kai-server starts");
    let output = Arc::new(Mutex::new(String::new()));
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let output = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut output = output.lock().expect("output buffer");
                output.push_str(&line);
                output.push('\n');
            }
        });
    }
    Process { child, output }
}

/// Reads from `stream` until `marker` has arrived, returning everything read.
fn read_until(stream: &mut TcpStream, marker: &str) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&received).contains(marker) {
        let read = stream.read(&mut buffer).expect("the server answers");
        if read == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// Sends the head of a `POST /api/embed/text` with a `content_length`-byte body and waits
/// for `100 Continue`, which the server sends when the route starts reading the body. From
/// then on the request is in flight.
fn start_upload(port: u16, request_id: &str, content_length: usize) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    write!(
        stream,
        "POST /api/embed/text HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {content_length}\r\nExpect: 100-continue\r\n\
         x-request-id: {request_id}\r\n\r\n"
    )
    .expect("head sent");
    let interim = read_until(&mut stream, "\r\n\r\n");
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    stream
}

fn send_sigterm(server: &Process) {
    let pid = server.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Waits for the process to exit, for at most `limit`.
fn wait_for_exit(server: &mut Process, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(exit) = server.child.try_wait().expect("process status") {
            return exit;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not exit:\n{}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_right_after_listening_exits_cleanly() {
    // The signal handlers are installed before the "listening" line, so a SIGTERM sent
    // the moment it appears still shuts down gracefully instead of killing the process.
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut server = spawn_server(&dir.path().join("store"), free_port(), 5_000);
    assert!(
        server.wait_for_log("kai-server listening", Duration::from_secs(60)),
        "the server did not start:\n{}",
        server.output()
    );
    send_sigterm(&server);
    let exit = wait_for_exit(&mut server, Duration::from_secs(30));
    assert!(exit.success(), "{exit:?}\n{}", server.output());
    assert!(server.wait_for_log("shutting down", Duration::from_secs(5)));
    assert!(server.wait_for_log("kai-server stopped", Duration::from_secs(5)));
}

#[test]
fn sigterm_finishes_in_flight_requests() {
    if common::models().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary folder");
    let port = free_port();
    let mut server = spawn_server(&dir.path().join("store"), port, 20_000);
    assert!(
        server.wait_for_log("kai-server listening", Duration::from_secs(60)),
        "the server did not start:\n{}",
        server.output()
    );

    let body = json!({ "texts": vec!["a sandblasted limestone floor tile"; 16] }).to_string();
    let mut stream = start_upload(port, "ops-shutdown-1", body.len());

    send_sigterm(&server);
    assert!(
        server.wait_for_log("shutting down", Duration::from_secs(10)),
        "{}",
        server.output()
    );

    // The listener is closed while the request is still running.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut refused = false;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_err() {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(refused, "new connections were still accepted after SIGTERM");

    // The server closes the connection after the response because it is shutting down.
    stream.write_all(body.as_bytes()).expect("body sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("the response arrives before the server closes the connection");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let lowercase = response.to_ascii_lowercase();
    assert!(
        lowercase.contains("x-request-id: ops-shutdown-1"),
        "{response}"
    );
    assert!(lowercase.contains("connection: close"), "{response}");
    assert!(response.contains("\"vectors\""), "{response}");

    let exit = wait_for_exit(&mut server, Duration::from_secs(30));
    assert!(exit.success(), "{exit:?}\n{}", server.output());
    assert!(server.wait_for_log("kai-server stopped", Duration::from_secs(5)));
    assert!(server.output().contains("ops-shutdown-1"));
}

#[test]
fn shutdown_timeout_ends_stalled_requests() {
    // The stalled request never sends its body, so no model is needed.
    let dir = tempfile::tempdir().expect("temporary folder");
    let port = free_port();
    let mut server = spawn_server(&dir.path().join("store"), port, 300);
    assert!(
        server.wait_for_log("kai-server listening", Duration::from_secs(60)),
        "the server did not start:\n{}",
        server.output()
    );
    let _stalled = start_upload(port, "ops-stalled-1", 1000);

    send_sigterm(&server);
    let exit = wait_for_exit(&mut server, Duration::from_secs(20));
    assert!(exit.success(), "{exit:?}\n{}", server.output());
    let output = server.output();
    assert!(
        output.contains("did not finish within KAI_SHUTDOWN_TIMEOUT_MS"),
        "{output}"
    );
    assert!(output.contains("kai-server stopped"), "{output}");
}
