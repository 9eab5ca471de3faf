//! The Model Context Protocol endpoint `/mcp`: kai's tools for AI agents, served over the
//! Streamable HTTP transport of the official Rust SDK (rmcp).
//!
//! One endpoint serves every protocol revision that rmcp 3.11 supports. Requests of revision
//! 2026-07-28 are stateless: each carries its version in `MCP-Protocol-Version` and in
//! its `_meta`, `server/discover` describes the server, and rmcp rejects a request whose
//! `Mcp-Method` or `Mcp-Name` header contradicts its body with 400. Clients of the earlier
//! revisions (2024-11-05 to 2025-11-25) open a session with `initialize` and send its
//! `Mcp-Session-Id` with each later request.
//!
//! A browser's `Origin` must be allowed by `KAI_ALLOWED_ORIGINS`, by the rules CORS
//! applies ([`AllowedOrigins`]), and rmcp checks `Host` against `KAI_ALLOWED_HOSTS` (DNS
//! rebinding). Both return 403 for others. Every error response is a JSON-RPC error
//! object, as [`errors`] describes. When shutdown begins, rmcp closes its sessions and
//! event streams, so they do not hold the server open for `KAI_SHUTDOWN_TIMEOUT_MS`.

mod arguments;
mod base64;
mod errors;
mod inputs;
mod outputs;
mod schemas;
mod tools;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::tool_handler;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::AppState;
use super::config::ServerConfig as KaiConfig;
use super::error::ApiError;
use super::ops::origin::AllowedOrigins;
use super::ops::shutdown;

/// The path of the endpoint.
pub const PATH: &str = "/mcp";
/// The name the server reports to clients.
pub const SERVER_NAME: &str = "kai-server";

/// Returns the `/mcp` route, configured from `state`'s hosts, origins and limits.
pub fn router(state: &AppState) -> Router<AppState> {
    let shared = Arc::new(Shared {
        tools: KaiMcp::tool_router(),
        instructions: instructions(state.config()),
    });
    let limits = Arc::new(Limits {
        max_body_bytes: state.config().max_body_bytes,
        origins: AllowedOrigins::parse(&state.config().allowed_origins),
    });
    let max_body_bytes = limits.max_body_bytes;
    let transport = transport_config(state.config());
    close_on_shutdown(&transport);
    let state = state.clone();
    let service = StreamableHttpService::new(
        move || {
            Ok(KaiMcp {
                state: state.clone(),
                shared: Arc::clone(&shared),
            })
        },
        Arc::new(LocalSessionManager::default()),
        transport,
    );
    // NOTE: sessions live in this process's memory, so with several replicas a client of
    // the earlier revisions needs session affinity to reach the replica that stores its session.
    Router::new()
        .route(
            PATH,
            any(move |request| forward(service.clone(), Arc::clone(&limits), request)),
        )
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

/// Cancels rmcp's sessions and streams once shutdown begins. Outside a Tokio runtime
/// there is no server to shut down, and nothing is watched.
fn close_on_shutdown(transport: &StreamableHttpServerConfig) {
    let token = transport.cancellation_token.clone();
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            shutdown::requested().await;
            token.cancel();
        });
    }
}

type Service = StreamableHttpService<KaiMcp, LocalSessionManager>;

/// The settings `/mcp` checks before rmcp receives a request.
struct Limits {
    max_body_bytes: usize,
    origins: AllowedOrigins,
}

/// Checks the `Origin`, reads and checks the request body, hands the request to rmcp,
/// and turns rmcp's error responses into JSON-RPC errors.
///
/// The body is read here so that a body above `KAI_MAX_BODY_BYTES` gets kai's 413 error
/// whether or not it declares its length. rmcp reads the body through the body limit
/// layer and returns 500 when that layer stops a body without `Content-Length`.
async fn forward(service: Service, limits: Arc<Limits>, request: Request) -> Response {
    if let Some(origin) = request.headers().get(header::ORIGIN)
        && !origin
            .to_str()
            .is_ok_and(|origin| limits.origins.allows(origin))
    {
        let origin = String::from_utf8_lossy(origin.as_bytes())
            .escape_debug()
            .to_string();
        return errors::error_response(
            StatusCode::FORBIDDEN,
            serde_json::Value::Null,
            errors::SERVER_ERROR,
            format!(
                "Forbidden: the Origin `{origin}` is not in KAI_ALLOWED_ORIGINS; add it there \
                 to let that page call /mcp"
            ),
        );
    }
    let (parts, body) = request.into_parts();
    let bytes = match Bytes::from_request(Request::from_parts(parts.clone(), body), &()).await {
        Ok(bytes) => bytes,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return ApiError::too_large(format!(
                "the request body is larger than {} bytes (KAI_MAX_BODY_BYTES); \
                 send a smaller image or fewer texts",
                limits.max_body_bytes
            ))
            .into_response();
        }
        Err(rejection) => {
            return ApiError::invalid("request body", rejection.body_text()).into_response();
        }
    };
    let json_request = errors::is_json(&parts.headers);
    if parts.method == Method::POST
        && json_request
        && let Some(response) = errors::reject_body(&bytes)
    {
        return response;
    }
    let request = Request::from_parts(parts, Body::from(bytes));
    let response = service.handle(request).await.map(Body::new);
    errors::to_jsonrpc(response, json_request).await
}

/// The handler of one request (stateless revisions) or one session (earlier revisions).
#[derive(Clone)]
struct KaiMcp {
    state: AppState,
    shared: Arc<Shared>,
}

/// The parts every handler shares, built once per router.
struct Shared {
    tools: ToolRouter<KaiMcp>,
    instructions: String,
}

#[tool_handler(router = self.shared.tools)]
impl rmcp::ServerHandler for KaiMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION"))
                    .with_title("kai material intelligence"),
            )
            .with_instructions(self.shared.instructions.clone())
    }
}

/// Returns the instructions clients show the model: what the tools are for and how to
/// send images.
fn instructions(config: &KaiConfig) -> String {
    // Base64 takes 4 bytes for 3, so the body limit can bind before the image limit.
    let body_limit = u64::try_from(config.max_body_bytes / 4 * 3).unwrap_or(u64::MAX);
    let max_image_bytes = config.image_limits.max_encoded_bytes.min(body_limit);
    format!(
        "kai recognizes building and interior materials (wood, stone, tile, metal, fabric, \
         ...) in photos and searches a catalog of materials. Use recognize_material to \
         identify the material in a photo, assess_image_quality to check a photo first, \
         search_materials to find catalog materials by words or by a photo, and embed_text \
         for sentence embeddings. get_parameters reads a set of analysis parameters from \
         the registry, and suggest_parameters picks the set version that worked best on \
         similar materials. submit_reconstruction starts a 3D reconstruction from photos \
         taken around an object (camera poses, dense points, a mesh and its levels of \
         detail as GLB models), get_reconstruction_job reports its progress and result, \
         and get_reconstruction_file returns one of its files, such as model.glb. Send images as base64 in \
         `imageBase64`, or in `images[].data` for submit_reconstruction (JPEG, PNG, WebP, BMP or \
         TIFF, at most about {max_image_bytes} bytes before encoding). A tool that fails \
         returns isError with a message that names the argument to fix."
    )
}

/// Builds rmcp's transport settings from kai's configuration.
fn transport_config(config: &KaiConfig) -> StreamableHttpServerConfig {
    let mut transport = StreamableHttpServerConfig::default()
        // Stateless requests get one JSON body instead of an event stream when the
        // handler sends nothing before its result, which is the case for every kai tool.
        .with_json_response(true)
        .with_max_request_body_bytes(config.max_body_bytes);
    transport = if config.allowed_hosts.iter().any(|host| host == "*") {
        transport.disable_allowed_hosts()
    } else {
        transport.with_allowed_hosts(config.allowed_hosts.iter().cloned())
    };
    // `forward` checks `Origin` with the rules CORS applies, which differ from rmcp's for
    // entries without a port.
    transport.disable_allowed_origins()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_input_and_output_schemas() {
        let tools = KaiMcp::tool_router().list_all();
        let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
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
                "suggest_parameters",
            ]
        );
        for tool in &tools {
            assert_eq!(tool.input_schema["type"], "object", "{}", tool.name);
            let output = tool.output_schema.as_ref().expect("an output schema");
            assert_eq!(output["type"], "object", "{}", tool.name);
            assert!(tool.description.is_some(), "{}", tool.name);
        }
        // Only what a call cannot do without is required, so optional arguments must not
        // become required through a custom schema.
        let required = |name: &str| -> Vec<String> {
            let tool = tools.iter().find(|tool| tool.name == name).expect("tool");
            let required = tool.input_schema.get("required").cloned();
            required.map_or_else(Vec::new, |list| {
                serde_json::from_value(list).expect("a list of names")
            })
        };
        assert_eq!(required("assess_image_quality"), ["imageBase64"]);
        assert_eq!(required("recognize_material"), ["imageBase64"]);
        assert_eq!(required("get_parameters"), ["name"]);
        assert!(required("search_materials").is_empty());
        assert_eq!(required("submit_reconstruction"), ["images"]);
        assert_eq!(required("get_reconstruction_job"), ["id"]);
        assert_eq!(required("get_reconstruction_file"), ["id", "name"]);
    }
}
