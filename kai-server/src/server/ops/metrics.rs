//! Prometheus metrics: the process-wide recorder, the `GET /metrics` handler and the
//! per-request counters and latencies.
//!
//! The `metrics` facade has one global recorder per process, so the recorder is installed
//! once and every router (tests build many) renders the same registry. Other modules
//! record with the `metrics` macros under the names below.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter of finished requests, labelled `method`, `route` and `status`.
pub const HTTP_REQUESTS: &str = "kai_http_requests_total";
/// Histogram of request durations in seconds, labelled `method` and `route`.
pub const HTTP_DURATION: &str = "kai_http_request_duration_seconds";
/// Histogram of the number of inputs per model call, labelled `kind`.
pub const BATCH_SIZE: &str = "kai_batch_size";
/// Histogram of the durations of successful model loads in seconds, labelled `model`. Its
/// `_count` is the number of models loaded.
pub const MODEL_LOAD_SECONDS: &str = "kai_model_load_seconds";
/// Counter of model lookups that found the model already loaded.
pub const MODEL_CACHE_HITS: &str = "kai_model_cache_hits_total";
/// Counter of model lookups that did not find the model loaded. Each one then loads the
/// model, waits for another request's load of the same model, or fails (unknown model,
/// wrong task, missing files), so the count can exceed the number of loads.
pub const MODEL_CACHE_MISSES: &str = "kai_model_cache_misses_total";
/// Gauge of models currently loaded.
pub const MODELS_LOADED: &str = "kai_models_loaded";

/// The `route` label of requests that matched no route, so scans of random paths add one
/// series instead of one per path.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Upper bounds of the request-duration buckets, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of the batch-size buckets, up to the largest `MAX_BATCH_SIZE` (256).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Upper bounds of the model-load buckets, in seconds.
const LOAD_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// Returns the handle of the process-wide recorder, installing the recorder on the first
/// call.
///
/// When another recorder was installed first (by code embedding the server), the handle
/// renders an empty registry and a warning is logged.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is already installed; /metrics stays empty");
        }
        describe();
        handle
    })
}

/// Configures buckets, so the histograms render as Prometheus histograms, not summaries.
fn builder() -> PrometheusBuilder {
    let buckets = [
        (HTTP_DURATION, DURATION_BUCKETS),
        (BATCH_SIZE, BATCH_BUCKETS),
        (MODEL_LOAD_SECONDS, LOAD_BUCKETS),
    ];
    let mut builder = PrometheusBuilder::new();
    for (name, bounds) in buckets {
        // Only an empty list of bounds is an error.
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), bounds)
            .expect("every bucket list has bounds");
    }
    builder
}

/// Registers the help text and unit of each metric.
fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route and status");
    metrics::describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request duration by method and route"
    );
    metrics::describe_histogram!(BATCH_SIZE, Unit::Count, "Inputs per model call by kind");
    metrics::describe_histogram!(
        MODEL_LOAD_SECONDS,
        Unit::Seconds,
        "Duration of successful model loads by model"
    );
    metrics::describe_counter!(
        MODEL_CACHE_HITS,
        "Model lookups that found the model already loaded"
    );
    metrics::describe_counter!(
        MODEL_CACHE_MISSES,
        "Model lookups that started a load because the model was not loaded; failed loads \
         count too, so this can exceed the count of kai_model_load_seconds"
    );
    metrics::describe_gauge!(MODELS_LOADED, "Models currently loaded");
}

/// `GET /metrics`: the Prometheus text exposition of every metric.
pub async fn render() -> Response {
    let handle = handle();
    // Upkeep drains the histograms' pending samples into their buckets.
    handle.run_upkeep();
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Counts each request and records its duration under its route template. The duration
/// ends when the response head is ready, so a streamed body (an MCP event stream) is not
/// part of it.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = route_label(&request);
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Returns the route template a request matched (such as `/api/materials/{id}`), or
/// [`UNMATCHED_ROUTE`].
pub fn route_label(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned()
}
