//! Dynamic batching: concurrent requests for the same model are grouped into one model
//! call, which costs little more than a call for one request.
//!
//! Each [`Batcher`] has one worker task. The worker takes the first queued request, then
//! collects more until it has `MAX_BATCH_SIZE` requests or the first one has waited
//! `KAI_BATCH_WINDOW_MS`, runs the batch on the blocking thread pool and sends each
//! request its own result. One bad input fails only its own request: a text or image batch
//! whose combined call fails is retried request by request, and batch recognition reports
//! each photo's own error. With `MAX_BATCH_SIZE` 1, requests skip the queue and call the
//! model at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use kai_core::catalog::Catalog;
use kai_core::embed::{ImageEmbeddings, Prediction};
use kai_core::image::RgbImage;
use kai_core::recognize::{Recognition, RecognizeOptions};
use kai_core::{Embeddings, Error, ImageEmbedder, TextEmbedder};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::error::{ApiError, ApiResult};
use super::ops::metrics::BATCH_SIZE;

/// Requests a worker's queue accepts before senders wait for room.
const QUEUE_CAPACITY: usize = 1024;

/// The grouping settings of a batcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSettings {
    /// Maximum requests per batch. 1 turns batching off.
    pub max_size: usize,
    /// How long the first request of a batch waits for others.
    pub window: Duration,
}

/// The kinds of batched calls, as the `kind` label of `kai_batch_size` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchKind {
    /// Text embeddings.
    Text,
    /// Image embeddings with ImageNet labels.
    Image,
    /// Material recognition.
    Recognition,
}

impl BatchKind {
    /// Returns the metrics label.
    pub fn label(self) -> &'static str {
        match self {
            BatchKind::Text => "text",
            BatchKind::Image => "image",
            BatchKind::Recognition => "recognition",
        }
    }
}

/// Counts of the batches run so far for one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Model calls made.
    pub batches: u64,
    /// Requests served by those calls.
    pub requests: u64,
    /// Requests in the largest batch.
    pub largest: usize,
}

/// The batch counts of every kind, shared by the batchers of one server.
#[derive(Debug, Clone, Default)]
pub struct BatchCounters {
    stats: Arc<Mutex<HashMap<BatchKind, BatchStats>>>,
}

impl BatchCounters {
    /// Returns the counts of `kind`.
    pub fn stats(&self, kind: BatchKind) -> BatchStats {
        self.lock().get(&kind).copied().unwrap_or_default()
    }

    fn record(&self, kind: BatchKind, size: usize) {
        {
            let mut stats = self.lock();
            let entry = stats.entry(kind).or_default();
            entry.batches += 1;
            entry.requests += size as u64;
            entry.largest = entry.largest.max(size);
        }
        metrics::histogram!(BATCH_SIZE, "kind" => kind.label()).record(size as f64);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<BatchKind, BatchStats>> {
        // Counters only ever grow, so the values behind a poisoned lock are still valid.
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The call that serves one batch: one result per input, in input order.
type RunBatch<I, O> = Arc<dyn Fn(Vec<I>) -> Vec<ApiResult<O>> + Send + Sync>;

/// One queued request.
struct Job<I, O> {
    input: I,
    enqueued: Instant,
    reply: oneshot::Sender<ApiResult<O>>,
}

/// A queue that groups requests of one kind and model into batches.
pub struct Batcher<I, O> {
    kind: BatchKind,
    settings: BatchSettings,
    counters: BatchCounters,
    run: RunBatch<I, O>,
    // The worker starts with the first request, inside the async runtime.
    sender: OnceLock<mpsc::Sender<Job<I, O>>>,
}

impl<I, O> std::fmt::Debug for Batcher<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("kind", &self.kind)
            .field("settings", &self.settings)
            .field("started", &self.sender.get().is_some())
            .finish_non_exhaustive()
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Creates a batcher whose batches `run` serves.
    pub fn new(
        kind: BatchKind,
        settings: BatchSettings,
        counters: BatchCounters,
        run: impl Fn(Vec<I>) -> Vec<ApiResult<O>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            settings,
            counters,
            run: Arc::new(run),
            sender: OnceLock::new(),
        }
    }

    /// Queues `input` and returns its result once its batch has run.
    ///
    /// # Errors
    ///
    /// Returns the error of this input, or of the whole batch when the model call failed
    /// for every request.
    pub async fn submit(&self, input: I) -> ApiResult<O> {
        if self.settings.max_size <= 1 {
            let outputs = run_batch(self.kind, &self.counters, &self.run, vec![input]).await;
            return single(outputs);
        }
        let sender = self.sender.get_or_init(|| self.start_worker());
        let (reply, result) = oneshot::channel();
        let job = Job {
            input,
            enqueued: Instant::now(),
            reply,
        };
        sender.send(job).await.map_err(|_| worker_gone(self.kind))?;
        result.await.map_err(|_| worker_gone(self.kind))?
    }

    fn start_worker(&self) -> mpsc::Sender<Job<I, O>> {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(work(
            receiver,
            self.kind,
            self.settings,
            self.counters.clone(),
            Arc::clone(&self.run),
        ));
        sender
    }
}

/// Serves batches until every sender is gone.
async fn work<I: Send + 'static, O: Send + 'static>(
    mut receiver: mpsc::Receiver<Job<I, O>>,
    kind: BatchKind,
    settings: BatchSettings,
    counters: BatchCounters,
    run: RunBatch<I, O>,
) {
    while let Some(first) = receiver.recv().await {
        // The window starts when the first request arrived, so requests that queued while
        // the previous batch ran do not wait a second window.
        let deadline = first.enqueued + settings.window;
        let mut jobs = vec![first];
        while jobs.len() < settings.max_size {
            // `timeout_at` polls the queue before the clock, so requests already queued
            // join the batch even after the deadline.
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(job)) => jobs.push(job),
                Ok(None) | Err(_) => break,
            }
        }
        // A client that went away needs no result.
        jobs.retain(|job| !job.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let (inputs, replies): (Vec<I>, Vec<_>) =
            jobs.into_iter().map(|job| (job.input, job.reply)).unzip();
        let outputs = run_batch(kind, &counters, &run, inputs).await;
        for (reply, output) in replies.into_iter().zip(outputs) {
            // The client may have gone away meanwhile, so its result is dropped.
            let _ = reply.send(output);
        }
    }
}

/// Runs one batch on the blocking thread pool and returns exactly one result per input.
async fn run_batch<I: Send + 'static, O: Send + 'static>(
    kind: BatchKind,
    counters: &BatchCounters,
    run: &RunBatch<I, O>,
    inputs: Vec<I>,
) -> Vec<ApiResult<O>> {
    let size = inputs.len();
    counters.record(kind, size);
    let run = Arc::clone(run);
    let mut outputs = match tokio::task::spawn_blocking(move || run(inputs)).await {
        Ok(outputs) => outputs,
        Err(err) => {
            let error = ApiError::from(Error::Internal(format!(
                "a {} batch of {size} requests failed: {err}",
                kind.label()
            )));
            (0..size).map(|_| Err(error.clone())).collect()
        }
    };
    if outputs.len() != size {
        let error = ApiError::from(Error::Internal(format!(
            "a {} batch of {size} requests returned {} results",
            kind.label(),
            outputs.len()
        )));
        outputs.resize_with(size, || Err(error.clone()));
    }
    outputs
}

fn single<O>(outputs: Vec<ApiResult<O>>) -> ApiResult<O> {
    outputs.into_iter().next().unwrap_or_else(|| {
        Err(Error::Internal("a batch of one request returned no result".into()).into())
    })
}

fn worker_gone(kind: BatchKind) -> ApiError {
    Error::Internal(format!("the {} batch worker stopped", kind.label())).into()
}

/// A text-embedding request: its texts and the model that embeds them.
#[derive(Debug)]
pub struct TextJob {
    /// The model. Every request of one batcher has the same model name.
    pub model: Arc<TextEmbedder>,
    /// The texts, in request order.
    pub texts: Vec<String>,
}

/// An image-embedding request.
#[derive(Debug)]
pub struct ImageJob {
    /// The model. Every request of one batcher has the same model name.
    pub model: Arc<ImageEmbedder>,
    /// The decoded photos, in request order.
    pub images: Vec<RgbImage>,
    /// ImageNet classes returned per photo.
    pub top_k: usize,
}

/// A recognition request.
#[derive(Debug)]
pub struct RecognitionJob {
    /// The decoded photo.
    pub image: RgbImage,
    /// Its options. Requests with equal options share one model call.
    pub options: RecognizeOptions,
}

/// Embeds the texts of every request in one call.
pub fn embed_texts(jobs: Vec<TextJob>) -> Vec<ApiResult<Embeddings>> {
    let Some(model) = jobs.first().map(|job| Arc::clone(&job.model)) else {
        return Vec::new();
    };
    let texts: Vec<&str> = jobs
        .iter()
        .flat_map(|job| job.texts.iter().map(String::as_str))
        .collect();
    let sizes: Vec<usize> = jobs.iter().map(|job| job.texts.len()).collect();
    match model
        .embed(&texts)
        .and_then(|vectors| vectors.split(&sizes))
    {
        Ok(groups) => groups.into_iter().map(Ok).collect(),
        Err(err) if jobs.len() == 1 => vec![Err(err.into())],
        Err(err) => {
            tracing::warn!(error = %err, requests = jobs.len(), "text batch failed, so each request is embedded alone");
            jobs.iter()
                .map(|job| job.model.embed(&job.texts).map_err(ApiError::from))
                .collect()
        }
    }
}

/// Embeds and labels the photos of every request in one call.
pub fn embed_images(jobs: Vec<ImageJob>) -> Vec<ApiResult<ImageEmbeddings>> {
    let Some(model) = jobs.first().map(|job| Arc::clone(&job.model)) else {
        return Vec::new();
    };
    let top_k = jobs.iter().map(|job| job.top_k).max().unwrap_or(0);
    let sizes: Vec<usize> = jobs.iter().map(|job| job.images.len()).collect();
    let settings: Vec<(Arc<ImageEmbedder>, usize)> = jobs
        .iter()
        .map(|job| (Arc::clone(&job.model), job.top_k))
        .collect();
    let images: Vec<RgbImage> = jobs.into_iter().flat_map(|job| job.images).collect();
    match model.embed_and_classify(&images, top_k) {
        Ok(output) => split_images(output, &sizes, &settings),
        Err(err) if sizes.len() == 1 => vec![Err(err.into())],
        Err(err) => {
            tracing::warn!(error = %err, requests = sizes.len(), "image batch failed, so each request is embedded alone");
            let mut start = 0;
            sizes
                .iter()
                .zip(&settings)
                .map(|(size, (model, top_k))| {
                    let own = &images[start..start + size];
                    start += size;
                    model
                        .embed_and_classify(own, *top_k)
                        .map_err(ApiError::from)
                })
                .collect()
        }
    }
}

/// Splits a combined image output back into one output per request, each with its own
/// number of labels.
fn split_images(
    output: ImageEmbeddings,
    sizes: &[usize],
    settings: &[(Arc<ImageEmbedder>, usize)],
) -> Vec<ApiResult<ImageEmbeddings>> {
    let groups = match output.vectors.split(sizes) {
        Ok(groups) => groups,
        Err(err) => {
            let error = ApiError::from(err);
            return sizes.iter().map(|_| Err(error.clone())).collect();
        }
    };
    let mut labels = output.labels.into_iter();
    groups
        .into_iter()
        .zip(sizes.iter().zip(settings))
        .map(|(vectors, (size, (_, top_k)))| {
            let own: Vec<Vec<Prediction>> = labels
                .by_ref()
                .take(*size)
                .map(|mut predictions| {
                    predictions.truncate(*top_k);
                    predictions
                })
                .collect();
            Ok(ImageEmbeddings {
                vectors,
                labels: own,
            })
        })
        .collect()
}

/// Recognizes every request's photo, one model call per distinct set of options.
pub fn recognize(
    catalog: &Mutex<Catalog>,
    jobs: Vec<RecognitionJob>,
) -> Vec<ApiResult<Recognition>> {
    let size = jobs.len();
    let mut groups: Vec<(RecognizeOptions, Vec<usize>, Vec<RgbImage>)> = Vec::new();
    for (index, job) in jobs.into_iter().enumerate() {
        match groups.iter_mut().find(|group| group.0 == job.options) {
            Some(group) => {
                group.1.push(index);
                group.2.push(job.image);
            }
            None => groups.push((job.options, vec![index], vec![job.image])),
        }
    }
    let catalog = catalog.lock().unwrap_or_else(PoisonError::into_inner);
    let mut results: Vec<Option<ApiResult<Recognition>>> = (0..size).map(|_| None).collect();
    for (options, members, images) in groups {
        match catalog.recognize_batch(&images, &options) {
            Ok(outcomes) => {
                for (index, outcome) in members.into_iter().zip(outcomes) {
                    results[index] = Some(outcome.map_err(ApiError::from));
                }
            }
            Err(err) => {
                let error = ApiError::from(err);
                for index in members {
                    results[index] = Some(Err(error.clone()));
                }
            }
        }
    }
    results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| {
                Err(Error::Internal("a photo of the batch got no recognition".into()).into())
            })
        })
        .collect()
}
