//! JSON-RPC error responses of `/mcp`.
//!
//! rmcp returns transport failures (wrong `Accept`, unknown session, unsupported
//! `MCP-Protocol-Version`, a body that is not a JSON-RPC message) with plain text, and a
//! body that is not JSON with 415. MCP clients parse error bodies as JSON-RPC, so every
//! error response of `/mcp` becomes `{"jsonrpc":"2.0","id":…,"error":{"code","message"}}`
//! here, and each one leaves a [`LoggedError`] for the request log.
//!
//! The codes are those of JSON-RPC 2.0 (-32700 parse error, -32600 invalid request,
//! -32602 invalid params) and, for transport errors, the ones the official TypeScript
//! SDK's server uses (`@modelcontextprotocol/sdk` 1.32, `webStandardStreamableHttp.js`):
//! -32001 for an unknown session and -32000 for the rest.

use axum::body::{Body, HttpBody, to_bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

use crate::server::error::LoggedError;

/// JSON-RPC 2.0: the body is not valid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0: the body is JSON but not a request, notification or response object.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC 2.0: the method exists but its `params` have the wrong shape.
pub const INVALID_PARAMS: i64 = -32602;
/// A transport error other than an unknown session.
pub const SERVER_ERROR: i64 = -32000;
/// The `Mcp-Session-Id` names no open session.
pub const SESSION_NOT_FOUND: i64 = -32001;

/// Largest error body read back, in bytes. rmcp's error bodies are one line.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Largest message taken from rmcp's plain-text error, in characters.
const MAX_MESSAGE_CHARS: usize = 500;

/// Builds a JSON-RPC error response with `status`. `id` is the request's id, or `null`
/// when the request has none or could not be read.
pub fn error_response(status: StatusCode, id: Value, code: i64, message: String) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": code, "message": message},
    });
    let mut response = (status, axum::Json(body)).into_response();
    response.extensions_mut().insert(LoggedError {
        code: code_label(code),
        message,
    });
    response
}

/// Checks a POST body with a JSON `Content-Type` before rmcp reads it, and returns the
/// error response for a body that fails: invalid JSON gets 400 with -32700, and a
/// `tools/call` whose `params` rmcp cannot read gets 400 with -32602. rmcp would return
/// the first with a plain-text 415, and the second with -32601 (method not found),
/// because it reads such a call as an unknown method.
pub fn reject_body(bytes: &[u8]) -> Option<Response> {
    let message: Value = match serde_json::from_slice(bytes) {
        Ok(message) => message,
        Err(err) => {
            return Some(error_response(
                StatusCode::BAD_REQUEST,
                Value::Null,
                PARSE_ERROR,
                format!("Parse error: the request body is not valid JSON: {err}"),
            ));
        }
    };
    if message.get("method").and_then(Value::as_str) != Some("tools/call") {
        return None;
    }
    let params = message.get("params").cloned().unwrap_or(Value::Null);
    let err = serde_json::from_value::<CallToolRequestParams>(params).err()?;
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    Some(error_response(
        StatusCode::BAD_REQUEST,
        id,
        INVALID_PARAMS,
        format!(
            "Invalid params: tools/call needs `params` with a string `name` and an object \
             `arguments`: {err}"
        ),
    ))
}

/// Turns an rmcp error response into a JSON-RPC error response with the same status and
/// headers. Successful responses pass unchanged, and so do JSON error bodies, which
/// only gain a [`LoggedError`].
///
/// `json_request` is whether the request declared a JSON body. rmcp then returns 415
/// only for a body that is JSON but not a JSON-RPC message, which becomes 400 with
/// -32600.
pub async fn to_jsonrpc(response: Response, json_request: bool) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // An error body of unknown length (none of rmcp's) is left as it is rather than read.
    if response
        .body()
        .size_hint()
        .upper()
        .is_none_or(|upper| upper > MAX_ERROR_BODY as u64)
    {
        return response;
    }
    let is_json = is_json(response.headers());
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, MAX_ERROR_BODY).await.unwrap_or_default();
    if is_json {
        let mut response = Response::from_parts(parts, Body::from(bytes.clone()));
        if let Some(logged) = logged_error(&bytes) {
            response.extensions_mut().insert(logged);
        }
        return response;
    }

    let text: String = String::from_utf8_lossy(&bytes)
        .trim()
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .collect();
    let text = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned()
    } else {
        text
    };
    let (status, code, message) = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE if json_request => (
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            format!("Invalid Request: the body is not a JSON-RPC 2.0 message ({text})"),
        ),
        StatusCode::NOT_FOUND => (status, SESSION_NOT_FOUND, text),
        _ => (status, SERVER_ERROR, text),
    };
    let mut rebuilt = error_response(status, Value::Null, code, message);
    // Keep headers such as `Allow`. The new body sets its own type and length.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rebuilt.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rebuilt
}

/// Returns whether `headers` declare a JSON body (`application/json`, any parameters).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value: &HeaderValue| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads the code and message of a JSON-RPC error body.
fn logged_error(bytes: &[u8]) -> Option<LoggedError> {
    let body: Value = serde_json::from_slice(bytes).ok()?;
    let error = body.get("error")?;
    let code = error.get("code")?.as_i64()?;
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let label = code_label(code);
    // An unlisted code keeps its number in the message.
    let message = if label == OTHER_CODE {
        format!("JSON-RPC error {code}: {message}")
    } else {
        message.to_owned()
    };
    Some(LoggedError {
        code: label,
        message,
    })
}

/// The log `code` of a JSON-RPC error code outside [`code_label`]'s list.
const OTHER_CODE: &str = "JSONRPC_ERROR";

/// Returns a JSON-RPC error code as the request log's `code` field, which contains static
/// strings: the codes of JSON-RPC 2.0, of this module and of rmcp 3.11's `ErrorCode`.
fn code_label(code: i64) -> &'static str {
    match code {
        PARSE_ERROR => "-32700",
        INVALID_REQUEST => "-32600",
        -32601 => "-32601",
        INVALID_PARAMS => "-32602",
        -32603 => "-32603",
        SERVER_ERROR => "-32000",
        SESSION_NOT_FOUND => "-32001",
        -32002 => "-32002",
        -32020 => "-32020",
        -32021 => "-32021",
        -32022 => "-32022",
        _ => OTHER_CODE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_keep_their_number() {
        assert_eq!(code_label(PARSE_ERROR), "-32700");
        assert_eq!(code_label(-32601), "-32601");
        assert_eq!(code_label(-32020), "-32020");
        assert_eq!(code_label(12), OTHER_CODE);
    }

    #[test]
    fn reject_body_finds_invalid_json_and_params() {
        assert!(reject_body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).is_none());
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"embed_text","arguments":{"texts":["oak"]}}}"#;
        assert!(reject_body(call).is_none());

        let parse = reject_body(b"{not json").expect("invalid JSON");
        assert_eq!(parse.status(), StatusCode::BAD_REQUEST);
        let logged = parse.extensions().get::<LoggedError>().expect("logged");
        assert_eq!(logged.code, "-32700");

        let bad = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"embed_text","arguments":"notanobject"}}"#;
        let params = reject_body(bad).expect("invalid params");
        assert_eq!(params.status(), StatusCode::BAD_REQUEST);
        let logged = params.extensions().get::<LoggedError>().expect("logged");
        assert_eq!(logged.code, "-32602");
        assert!(logged.message.contains("arguments"), "{}", logged.message);
    }
}
