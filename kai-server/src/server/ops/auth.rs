//! Bearer-token authentication with HS256 JSON Web Tokens, on when `JWT_SECRET` is set.
//!
//! Every `/api` route and `/mcp` needs `Authorization: Bearer <token>` signed with the
//! secret. Probes, `/metrics` and `/openapi.json` stay open. Neither the token nor the
//! secret ever reaches a log line or an error message.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use kai_core::{Error, Result};
use serde::Deserialize;

use super::route_class::RouteClass;
use crate::server::config::JwtSecret;
use crate::server::error::{ApiError, UNAUTHORIZED};

/// Shortest secret without a warning: 32 bytes, the output size of HS256's hash (RFC 7518,
/// section 3.2).
const MIN_SECRET_BYTES: usize = 32;

/// The verifier of bearer tokens.
pub struct BearerAuth {
    key: DecodingKey,
    validation: Validation,
    /// The body limit, up to which a rejected request's body is read and dropped.
    body_limit: usize,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The decoding key is the secret itself.
        f.debug_struct("BearerAuth")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

/// The identity a valid token carries, added to the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject(pub Option<String>);

/// The claims kai reads. `jsonwebtoken` itself checks `exp` and `nbf`.
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
}

/// The reason a request has no valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// No `Authorization` header.
    Missing,
    /// A header that is not `Bearer <token>`.
    Malformed,
    /// A bearer token that failed a check. The text names the check, never the token.
    Invalid(String),
}

impl BearerAuth {
    /// Creates a verifier of HS256 tokens signed with `secret`.
    ///
    /// Tokens must carry `exp` and be unexpired, and `nbf` is checked when present. Both
    /// allow 60 s of clock skew (the `jsonwebtoken` default). No audience is configured,
    /// so an `aud` claim is not checked.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] naming `JWT_SECRET` when the secret is empty.
    pub fn new(secret: &JwtSecret, body_limit: usize) -> Result<Self> {
        let key = DecodingKey::from_secret(secret.expose())
            .map_err(|_| Error::invalid("JWT_SECRET", "must not be empty"))?;
        if secret.expose().len() < MIN_SECRET_BYTES {
            tracing::warn!(
                min_bytes = MIN_SECRET_BYTES,
                "JWT_SECRET is shorter than recommended for HS256; a short secret can be \
                 found by brute force from one token"
            );
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_nbf = true;
        validation.validate_aud = false;
        Ok(Self {
            key,
            validation,
            body_limit,
        })
    }

    /// Checks the `Authorization` header value of a request.
    ///
    /// # Errors
    ///
    /// Returns the [`Rejection`] with the reason the request is not authenticated.
    pub fn verify(
        &self,
        authorization: Option<&HeaderValue>,
    ) -> std::result::Result<Subject, Rejection> {
        let value = authorization.ok_or(Rejection::Missing)?;
        let value = value.to_str().map_err(|_| Rejection::Malformed)?;
        let (scheme, token) = value.split_once(' ').ok_or(Rejection::Malformed)?;
        // The scheme name is case-insensitive (RFC 9110, section 11.1).
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(Rejection::Malformed);
        }
        let data = jsonwebtoken::decode::<Claims>(token.trim(), &self.key, &self.validation)
            .map_err(|err| Rejection::Invalid(reason(err.kind())))?;
        Ok(Subject(data.claims.sub))
    }
}

/// Describes a failed token check. `jsonwebtoken` messages never contain the token, but
/// only the kinds below are spelled out, so the text stays stable.
fn reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired; request a new one".to_owned(),
        ErrorKind::ImmatureSignature => {
            "the token is not valid yet (its `nbf` is in the future)".to_owned()
        }
        ErrorKind::InvalidSignature => {
            "the signature does not match the server's JWT_SECRET".to_owned()
        }
        ErrorKind::InvalidAlgorithm => "the token must be signed with HS256".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => {
            format!("the token has no `{claim}` claim, which is required")
        }
        ErrorKind::InvalidClaimFormat(claim) => {
            format!("the token's `{claim}` claim has the wrong type")
        }
        _ => "the token is not a well-formed JSON Web Token".to_owned(),
    }
}

impl IntoResponse for Rejection {
    /// Builds the 401 response with its `WWW-Authenticate` challenge (RFC 6750).
    fn into_response(self) -> Response {
        let (message, challenge) = match self {
            Self::Missing => (
                "missing bearer token: send `Authorization: Bearer <token>` with a token \
                 signed with the server's JWT_SECRET"
                    .to_owned(),
                r#"Bearer realm="kai""#,
            ),
            Self::Malformed => (
                "invalid Authorization header: expected `Bearer <token>`".to_owned(),
                r#"Bearer realm="kai", error="invalid_request""#,
            ),
            Self::Invalid(reason) => (
                format!("invalid bearer token: {reason}"),
                r#"Bearer realm="kai", error="invalid_token""#,
            ),
        };
        let mut response =
            ApiError::new(StatusCode::UNAUTHORIZED, UNAUTHORIZED, message).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        response
    }
}

/// Rejects a request to `/api` or `/mcp` without a valid bearer token with 401.
pub async fn require_bearer(
    State(auth): State<Arc<BearerAuth>>,
    mut request: Request,
    next: Next,
) -> Response {
    if !RouteClass::of(request.uri().path()).needs_token() {
        return next.run(request).await;
    }
    match auth.verify(request.headers().get(header::AUTHORIZATION)) {
        Ok(subject) => {
            request.extensions_mut().insert(subject);
            next.run(request).await
        }
        Err(rejection) => {
            let response = rejection.into_response();
            super::body_limit::discard(request, auth.body_limit).await;
            response
        }
    }
}
