//! Path and query parameters.

use std::str::FromStr;

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use kai_core::ErrorKind;
use serde::de::DeserializeOwned;

use crate::server::error::{ApiError, ApiResult};

/// A path parameter whose rejections are [`ApiError`]s.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(PathRejection::FailedToDeserializePathParams(err)) => {
                Err(ApiError::invalid("path", err.body_text()))
            }
            Err(other) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorKind::Internal.code(),
                other.body_text(),
            )),
        }
    }
}

/// The query string as name and value pairs, so that a parameter may repeat (`tag=a&tag=b`)
/// and a bad value is reported with its parameter's name.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Query(pairs)) => Ok(Self(pairs)),
            Err(rejection) => Err(ApiError::invalid("query string", rejection.body_text())),
        }
    }
}

impl QueryParams {
    /// Rejects parameters other than `known`, so a misspelt filter is not silently
    /// ignored.
    ///
    /// # Errors
    ///
    /// Returns a 400 naming the unknown parameter and the known ones.
    pub fn only(&self, known: &[&str]) -> ApiResult<&Self> {
        match self
            .0
            .iter()
            .find(|(name, _)| !known.contains(&name.as_str()))
        {
            Some((name, _)) if known.is_empty() => Err(ApiError::invalid(
                "query parameter",
                format!("`{name}` is not accepted; this route takes no query parameters"),
            )),
            Some((name, _)) => Err(ApiError::invalid(
                "query parameter",
                format!("`{name}` is not one of {}", known.join(", ")),
            )),
            None => Ok(self),
        }
    }

    /// Returns the value of `name`. An empty value counts as absent.
    ///
    /// # Errors
    ///
    /// Returns a 400 when the parameter is given more than once.
    pub fn text(&self, name: &str) -> ApiResult<Option<String>> {
        let mut values = self.all(name).into_iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::invalid(
                &format!("query parameter {name}"),
                "is given more than once; give it once",
            ));
        }
        Ok(first)
    }

    /// Returns every non-empty value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, value)| key == name && !value.trim().is_empty())
            .map(|(_, value)| value.trim().to_owned())
            .collect()
    }

    /// Parses the value of `name` as a number.
    ///
    /// # Errors
    ///
    /// Returns a 400 naming the parameter and the value that is not a number.
    pub fn number<T: FromStr>(&self, name: &str) -> ApiResult<Option<T>> {
        let Some(text) = self.text(name)? else {
            return Ok(None);
        };
        text.parse::<T>().map(Some).map_err(|_| {
            ApiError::invalid(
                &format!("query parameter {name}"),
                format!("`{text}` is not a non-negative whole number"),
            )
        })
    }
}
