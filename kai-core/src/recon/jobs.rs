//! Reconstruction jobs: a queue of whole reconstruction runs (photos to model files, see
//! [`pipeline`](crate::recon::pipeline)) on worker threads, shared by the server's REST
//! routes and MCP tools and by the Python and Node bindings.
//!
//! Each job has a folder `ROOT/<id>/` named by its UUID. It contains `job.json` (the
//! [`ReconJob`] as JSON), the photos under `images/` while the job waits or runs, and the
//! outputs once it succeeds: the models `model.glb` (the full mesh) and `model.lod1.glb`,
//! `model.lod2.glb`, ... (coarser levels of detail), the mesh `mesh.ply`, the dense points
//! `dense.ply`, the COLMAP text model (`cameras.txt`, `images.txt`, `points3D.txt`) and
//! the sparse points `points.ply`. The photos are deleted when the job finishes, because
//! only the outputs can be downloaded.
//!
//! Stable interface, which the surfaces build on:
//!
//! - [`JobQueue::open`]`(root, workers)`, [`JobQueue::with_max_images`]`(n)`,
//!   [`JobQueue::submit`]`(inputs, options, limits) -> ReconJob`, [`JobQueue::get`]`(id)`,
//!   [`JobQueue::list`]`()`, [`JobQueue::file`]`(id, name) -> PathBuf`,
//!   [`JobQueue::upload_dir`]`()`.
//! - The JSON of [`ReconJob`]: `{id, status, stage, progress, error: {code, message},
//!   result, files, created_at, finished_at}`, with `status` one of `queued`, `running`,
//!   `succeeded`, `failed` and `stage` one of the [`Stage`] names. Absent values are
//!   `null`, never missing.
//! - kai-server's REST routes. `POST /api/recon/jobs` takes a multipart form of repeated
//!   file fields `images` (their file names name the photos) and an optional text field
//!   `set`, and returns 202 with a `Location` header and the job. `GET /api/recon/jobs`
//!   returns `{"jobs": [...]}`, `GET /api/recon/jobs/{id}` the job, and
//!   `GET /api/recon/jobs/{id}/files/{name}` one of the job's `files`.
//! - Its MCP tools: `submit_reconstruction {images: [{name, data}], set?}` with base64
//!   `data`, and `get_reconstruction_job {id}`; both return the job.
//!
//! Jobs that were queued or running when the process stopped are marked failed with a
//! message starting "interrupted" when the queue is next opened, since their options are
//! kept only in memory.
//!
//! NOTE: one process owns a root folder. Two processes opening the same root would each
//! mark the other's running jobs as interrupted. Finished jobs and their outputs stay
//! until someone deletes their folders, because the queue has no retention period yet.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::ErrorKind as IoErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use super::cloud::PointCloud;
use super::export::{PlyFormat, write_colmap_text};
use super::pipeline::{self, PipelineOptions, PipelineOutput, PipelineSummary};
use super::progress::{Progress, Stage};
use super::reconstruction::Reconstruction;
use super::sfm::{ImageSource, SfmInput};
use crate::db::{now_millis, rfc3339};
use crate::error::{Error, ErrorKind, Result};
use crate::image::{ImageLimits, probe};

/// Default maximum number of photos per job, unless [`JobQueue::with_max_images`] sets
/// another limit.
pub const DEFAULT_MAX_IMAGES: usize = 200;
/// Minimum number of photos per job, which is one image pair.
pub const MIN_IMAGES: usize = 2;
/// The sparse model's files, in the order [`write_outputs`] returns them.
pub const OUTPUT_FILES: [&str; 4] = ["cameras.txt", "images.txt", "points3D.txt", "points.ply"];
/// The model file of a job's full mesh; coarser levels are `model.lod1.glb`, ...
pub const MODEL_FILE: &str = "model.glb";
/// Maximum length of a photo name in bytes, the common file-name limit.
pub const MAX_NAME_BYTES: usize = 255;

/// The point cloud among [`OUTPUT_FILES`]. The others form the COLMAP text model.
const POINT_CLOUD_FILE: &str = "points.ply";
const JOB_FILE: &str = "job.json";
const IMAGES_DIR: &str = "images";
const UPLOADS_DIR: &str = ".uploads";
/// Prefix of the error message of a job that the process stopped before it finished.
const INTERRUPTED: &str = "interrupted: the service stopped before the job finished; submit \
                           the photos again";

/// The state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum JobStatus {
    /// Waiting for a free worker.
    Queued,
    /// A worker is reconstructing.
    Running,
    /// Finished, with the outputs listed in [`ReconJob::files`].
    Succeeded,
    /// Finished without a model, for the reason in [`ReconJob::error`].
    Failed,
}

impl JobStatus {
    /// Returns whether the job has ended, successfully or not.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }

    /// Returns the status as the JSON writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// The error that failed a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobError {
    /// The stable code of the error's kind, such as `KAI_INVALID_INPUT` (see
    /// [`ErrorKind::code`]).
    pub code: String,
    /// Human-readable error message.
    pub message: String,
}

impl JobError {
    fn from_error(err: &Error) -> Self {
        Self {
            code: err.kind().code().to_owned(),
            message: err.to_string(),
        }
    }
}

/// A reconstruction job: its status, progress and, once it finished, its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReconJob {
    /// The job's id, a UUID in lower-case hyphenated form.
    pub id: String,
    /// The state of the job.
    pub status: JobStatus,
    /// The stage running now, or the last one that ran, and `null` before the job starts.
    pub stage: Option<Stage>,
    /// Fraction of the work done, from 0 to 1, and 1 once the job succeeded.
    pub progress: f64,
    /// The error that failed the job, or `null` unless `status` is `failed`.
    pub error: Option<JobError>,
    /// Counts and errors of the reconstruction, or `null` unless `status` is `succeeded`.
    pub result: Option<PipelineSummary>,
    /// Names of the output files to download, empty unless `status` is `succeeded`.
    pub files: Vec<String>,
    /// Submission time, RFC 3339 in UTC.
    pub created_at: String,
    /// Finish time, RFC 3339 in UTC, or `null` while the job waits or runs.
    pub finished_at: Option<String>,
}

/// A job waiting for a worker, with everything the worker needs.
struct PendingJob {
    id: String,
    inputs: Vec<SfmInput>,
    options: PipelineOptions,
    limits: ImageLimits,
}

/// The jobs and the queue, behind one lock.
struct QueueState {
    jobs: HashMap<String, ReconJob>,
    pending: VecDeque<PendingJob>,
    shutdown: bool,
}

/// The state that the queue handles and the workers share.
struct Shared {
    root: PathBuf,
    max_images: AtomicUsize,
    state: Mutex<QueueState>,
    /// Condition variable signalled when a job is queued or the queue shuts down.
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic while the lock was held leaves at worst one job's fields half updated,
        // which is better than making every later call panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn job_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }
}

/// Stops the workers when the last [`JobQueue`] handle is dropped. A running
/// reconstruction finishes first, and jobs still queued stay `queued` on disk until the
/// next [`JobQueue::open`] marks them interrupted.
struct Workers {
    shared: Arc<Shared>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
    }
}

/// A folder of reconstruction jobs and the worker threads that run them. Cloning it gives
/// another handle to the same queue.
#[derive(Clone)]
pub struct JobQueue {
    shared: Arc<Shared>,
    _workers: Arc<Workers>,
}

impl std::fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobQueue")
            .field("root", &self.shared.root)
            .field("max_images", &self.max_images())
            .finish_non_exhaustive()
    }
}

impl JobQueue {
    /// Opens the job folder `root`, creating it if needed, loads its jobs and starts
    /// `workers` threads that run queued jobs one at a time each.
    ///
    /// Jobs that were queued or running when the previous process stopped become failed,
    /// with a message starting "interrupted". Photos left from those jobs and from
    /// uploads that never became jobs are deleted.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] for `workers` 0, and [`Error::Io`] when the folder
    /// cannot be created or read or a thread cannot start.
    pub fn open(root: &Path, workers: usize) -> Result<Self> {
        if workers == 0 {
            return Err(Error::invalid(
                "workers",
                "must be at least 1, got 0; no job would ever run",
            ));
        }
        fs::create_dir_all(root).map_err(|err| Error::io("cannot create", root, err))?;
        remove_dir_if_present(&root.join(UPLOADS_DIR))?;
        let jobs = load_jobs(root)?;
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            max_images: AtomicUsize::new(DEFAULT_MAX_IMAGES),
            state: Mutex::new(QueueState {
                jobs,
                pending: VecDeque::new(),
                shutdown: false,
            }),
            wake: Condvar::new(),
        });
        let guard = Arc::new(Workers {
            shared: Arc::clone(&shared),
        });
        for index in 0..workers {
            let worker = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("kai-recon-{index}"))
                .spawn(move || work(&worker))
                .map_err(|err| Error::io("cannot start a worker thread for", root, err))?;
        }
        tracing::info!(root = %root.display(), workers, "reconstruction job queue opened");
        Ok(Self {
            shared,
            _workers: guard,
        })
    }

    /// Sets the maximum number of photos per job (default [`DEFAULT_MAX_IMAGES`]).
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] when `max_images` is below [`MIN_IMAGES`].
    pub fn with_max_images(self, max_images: usize) -> Result<Self> {
        if max_images < MIN_IMAGES {
            return Err(Error::invalid(
                "max_images",
                format!("must be at least {MIN_IMAGES}, got {max_images}"),
            ));
        }
        self.shared.max_images.store(max_images, Ordering::Relaxed);
        Ok(self)
    }

    /// Returns the maximum number of photos per job.
    pub fn max_images(&self) -> usize {
        self.shared.max_images.load(Ordering::Relaxed)
    }

    /// Returns the folder that contains the job folders.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// Creates a temporary folder inside the root for photos that a caller streams to
    /// disk before [`JobQueue::submit`]. Photos submitted from it are linked into the job
    /// folder instead of copied. The folder is deleted when the returned value drops.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Io`] when the folder cannot be created.
    pub fn upload_dir(&self) -> Result<tempfile::TempDir> {
        let uploads = self.shared.root.join(UPLOADS_DIR);
        fs::create_dir_all(&uploads).map_err(|err| Error::io("cannot create", &uploads, err))?;
        tempfile::tempdir_in(&uploads)
            .map_err(|err| Error::io("cannot create a folder in", &uploads, err))
    }

    /// Queues a reconstruction of `inputs` and returns the new job, `queued`.
    ///
    /// The photos are stored in the job's folder first, so photos given as bytes are
    /// released before the call returns. Each photo's header is read to reject files that
    /// are not images. Pixels are decoded only when the job runs, so a photo that is
    /// corrupt past its header fails the job instead.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] for invalid `options` or `limits`, fewer than
    /// [`MIN_IMAGES`] or more than [`JobQueue::max_images`] photos, a photo name that is
    /// empty, repeated, longer than [`MAX_NAME_BYTES`] or contains a path separator or a
    /// control character, and a photo that is over `limits` or not an image. Returns
    /// [`Error::Io`] when a photo cannot be read or stored.
    pub fn submit(
        &self,
        inputs: Vec<SfmInput>,
        options: PipelineOptions,
        limits: ImageLimits,
    ) -> Result<ReconJob> {
        options.validate()?;
        limits.validate()?;
        check_inputs(&inputs, self.max_images())?;

        let id = uuid::Uuid::new_v4().to_string();
        let dir = self.shared.job_dir(&id);
        let stored = store_photos(&dir, inputs, &limits);
        let stored = match stored {
            Ok(stored) => stored,
            Err(err) => {
                remove_quietly(&dir);
                return Err(err);
            }
        };
        let job = ReconJob {
            id: id.clone(),
            status: JobStatus::Queued,
            stage: None,
            progress: 0.0,
            error: None,
            result: None,
            files: Vec::new(),
            created_at: rfc3339(now_millis()),
            finished_at: None,
        };
        if let Err(err) = save_job(&dir, &job) {
            remove_quietly(&dir);
            return Err(err);
        }
        let images = stored.len();
        {
            let mut state = self.shared.lock();
            state.jobs.insert(id.clone(), job.clone());
            state.pending.push_back(PendingJob {
                id: id.clone(),
                inputs: stored,
                options,
                limits,
            });
        }
        self.shared.wake.notify_one();
        tracing::info!(job = %id, images, "reconstruction job queued");
        Ok(job)
    }

    /// Returns the job `id`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] when no job has that id, including ids that are not
    /// UUIDs in lower-case hyphenated form.
    pub fn get(&self, id: &str) -> Result<ReconJob> {
        if !is_job_id(id) {
            return Err(job_not_found(id));
        }
        self.shared
            .lock()
            .jobs
            .get(id)
            .cloned()
            .ok_or_else(|| job_not_found(id))
    }

    /// Returns every job, oldest first.
    pub fn list(&self) -> Vec<ReconJob> {
        let mut jobs: Vec<ReconJob> = self.shared.lock().jobs.values().cloned().collect();
        jobs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        jobs
    }

    /// Returns the path of the output file `name` of the job `id`. Only the names in
    /// [`ReconJob::files`] are served, so no other path can be reached.
    ///
    /// # Errors
    ///
    /// Returns [`Error::NotFound`] for an unknown job, a name that is not one of the
    /// job's files (which a job that has not succeeded lacks), or a file deleted from
    /// the folder since.
    pub fn file(&self, id: &str, name: &str) -> Result<PathBuf> {
        let job = self.get(id)?;
        if !job.files.iter().any(|file| file == name) {
            let hint = if job.files.is_empty() {
                format!(
                    " (job {id} is {} and has no output files)",
                    job.status.as_str()
                )
            } else {
                format!(" (job {id} has {})", job.files.join(", "))
            };
            return Err(Error::NotFound {
                what: "job file",
                name: name.to_owned(),
                hint,
            });
        }
        let path = self.shared.job_dir(id).join(name);
        if !path.is_file() {
            return Err(Error::NotFound {
                what: "job file",
                name: name.to_owned(),
                hint: format!(" (deleted from {})", path.display()),
            });
        }
        Ok(path)
    }
}

/// Returns whether `id` is a UUID in the form [`JobQueue::submit`] writes, which also
/// keeps path separators and `..` out of folder names built from it.
fn is_job_id(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok_and(|uuid| uuid.hyphenated().to_string() == id)
}

fn job_not_found(id: &str) -> Error {
    let shown: String = id.chars().take(64).collect();
    Error::NotFound {
        what: "reconstruction job",
        name: shown,
        hint: String::new(),
    }
}

/// Checks the photo count and names before anything is written.
fn check_inputs(inputs: &[SfmInput], max_images: usize) -> Result<()> {
    if inputs.len() < MIN_IMAGES {
        return Err(Error::invalid(
            "images",
            format!(
                "a reconstruction needs at least {MIN_IMAGES} photos, got {}",
                inputs.len()
            ),
        ));
    }
    if inputs.len() > max_images {
        return Err(Error::invalid(
            "images",
            format!(
                "got {} photos, above the limit of {max_images} per job; send fewer photos",
                inputs.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for input in inputs {
        check_name(&input.name)?;
        if !seen.insert(input.name.as_str()) {
            return Err(Error::invalid(
                "images",
                format!(
                    "the name `{}` is given twice; photo names must be unique",
                    input.name
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that a photo name can be a file name inside the job folder.
fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "is empty"
    } else if name.len() > MAX_NAME_BYTES {
        "is longer than 255 bytes"
    } else if name == "." || name == ".." {
        "is not a file name"
    } else if name.contains(['/', '\\']) {
        "contains a path separator; give the file name only"
    } else if name.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(());
    };
    let shown: String = name.chars().take(64).collect();
    Err(Error::invalid(
        "photo name",
        format!("`{}` {reason}", shown.escape_debug()),
    ))
}

/// Writes or links every photo into `dir/images/` and returns inputs that read them from
/// there.
fn store_photos(dir: &Path, inputs: Vec<SfmInput>, limits: &ImageLimits) -> Result<Vec<SfmInput>> {
    let images = dir.join(IMAGES_DIR);
    fs::create_dir_all(&images).map_err(|err| Error::io("cannot create", &images, err))?;
    let mut stored = Vec::with_capacity(inputs.len());
    for input in inputs {
        let target = images.join(&input.name);
        match input.source {
            ImageSource::Bytes(bytes) => {
                check_photo(&input.name, &bytes, limits)?;
                fs::write(&target, &bytes)
                    .map_err(|err| Error::io("cannot write", &target, err))?;
            }
            ImageSource::Path(path) => {
                let size = fs::metadata(&path)
                    .map_err(|err| Error::io("cannot read", &path, err))?
                    .len();
                check_size(&input.name, size, limits)?;
                // A hard link costs nothing when the photo is on the same file system,
                // as photos in [`JobQueue::upload_dir`] are.
                if fs::hard_link(&path, &target).is_err() {
                    fs::copy(&path, &target).map_err(|err| Error::io("cannot copy", &path, err))?;
                }
                let bytes =
                    fs::read(&target).map_err(|err| Error::io("cannot read", &target, err))?;
                check_photo(&input.name, &bytes, limits)?;
            }
        }
        stored.push(SfmInput {
            name: input.name,
            source: ImageSource::Path(target),
        });
    }
    Ok(stored)
}

fn check_size(name: &str, size: u64, limits: &ImageLimits) -> Result<()> {
    if size > limits.max_encoded_bytes {
        return Err(Error::invalid(
            format!("photo `{name}`"),
            format!(
                "has {size} bytes, above the limit of {} bytes (KAI_MAX_IMAGE_BYTES)",
                limits.max_encoded_bytes
            ),
        ));
    }
    Ok(())
}

/// Checks the photo's size, and its format and dimensions read from the header, against
/// `limits`.
fn check_photo(name: &str, bytes: &[u8], limits: &ImageLimits) -> Result<()> {
    check_size(name, bytes.len() as u64, limits)?;
    let info = probe(bytes).map_err(|err| match err {
        Error::InvalidInput { reason, .. } => Error::invalid(format!("photo `{name}`"), reason),
        other => other,
    })?;
    let pixels = u64::from(info.width) * u64::from(info.height);
    if pixels > limits.max_pixels {
        return Err(Error::invalid(
            format!("photo `{name}`"),
            format!(
                "has {}x{} pixels, above the limit of {} pixels (KAI_MAX_IMAGE_PIXELS)",
                info.width, info.height, limits.max_pixels
            ),
        ));
    }
    Ok(())
}

/// Reads every job folder's `job.json`. Jobs that had not finished become failed as
/// interrupted, and folders without a job file (a submit that never completed) are
/// deleted.
fn load_jobs(root: &Path) -> Result<HashMap<String, ReconJob>> {
    let mut jobs = HashMap::new();
    let entries = fs::read_dir(root).map_err(|err| Error::io("cannot read folder", root, err))?;
    for entry in entries {
        let entry = entry.map_err(|err| Error::io("cannot read folder", root, err))?;
        let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let dir = entry.path();
        if !is_job_id(&id) || !dir.is_dir() {
            continue;
        }
        let file = dir.join(JOB_FILE);
        let text = match fs::read_to_string(&file) {
            Ok(text) => text,
            Err(err) if err.kind() == IoErrorKind::NotFound => {
                tracing::warn!(job = %id, "deleting a job folder without job.json, left by an interrupted submit");
                remove_quietly(&dir);
                continue;
            }
            Err(err) => return Err(Error::io("cannot read", &file, err)),
        };
        let mut job: ReconJob = match serde_json::from_str(&text) {
            Ok(job) => job,
            Err(err) => {
                tracing::warn!(job = %id, error = %err, "skipping a job whose job.json cannot be parsed");
                continue;
            }
        };
        if !job.status.is_finished() {
            job.status = JobStatus::Failed;
            job.error = Some(JobError {
                code: ErrorKind::Internal.code().to_owned(),
                message: INTERRUPTED.to_owned(),
            });
            job.finished_at = Some(rfc3339(now_millis()));
            save_job(&dir, &job)?;
            remove_quietly(&dir.join(IMAGES_DIR));
            tracing::warn!(job = %id, "marked a reconstruction job as interrupted");
        }
        jobs.insert(id, job);
    }
    Ok(jobs)
}

/// Writes `job.json` through a temporary file, so a reader never sees half a file.
fn save_job(dir: &Path, job: &ReconJob) -> Result<()> {
    let text = serde_json::to_vec_pretty(job)
        .map_err(|err| Error::Internal(format!("cannot encode job {}: {err}", job.id)))?;
    let temporary = dir.join(format!("{JOB_FILE}.tmp"));
    let file = dir.join(JOB_FILE);
    fs::write(&temporary, text).map_err(|err| Error::io("cannot write", &temporary, err))?;
    fs::rename(&temporary, &file).map_err(|err| Error::io("cannot write", &file, err))
}

/// Saves a job's state from a worker, where a failure can only be logged.
fn save_logged(shared: &Shared, job: &ReconJob) {
    if let Err(err) = save_job(&shared.job_dir(&job.id), job) {
        tracing::error!(job = %job.id, error = %err, "cannot save the job status");
    }
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(err) if err.kind() != IoErrorKind::NotFound => {
            Err(Error::io("cannot delete", dir, err))
        }
        _ => Ok(()),
    }
}

/// Deletes a folder and logs a failure, because a leftover folder only costs disk space.
fn remove_quietly(dir: &Path) {
    if let Err(err) = remove_dir_if_present(dir) {
        tracing::warn!(error = %err, "cannot delete a job's photos");
    }
}

/// Runs queued jobs on a worker thread until the queue shuts down.
fn work(shared: &Shared) {
    loop {
        let job = {
            let mut state = shared.lock();
            loop {
                if state.shutdown {
                    return;
                }
                if let Some(job) = state.pending.pop_front() {
                    break job;
                }
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        run(shared, job);
    }
}

/// Applies `change` to the job `id` and returns a copy to save. Returns `None` when the
/// job is not in the map, which no code path causes.
fn update(shared: &Shared, id: &str, change: impl FnOnce(&mut ReconJob)) -> Option<ReconJob> {
    let mut state = shared.lock();
    let job = state.jobs.get_mut(id)?;
    change(job);
    Some(job.clone())
}

/// Runs one job to its end and records the outcome.
fn run(shared: &Shared, pending: PendingJob) {
    let id = pending.id.as_str();
    if let Some(job) = update(shared, id, |job| job.status = JobStatus::Running) {
        save_logged(shared, &job);
    }
    tracing::info!(job = %id, images = pending.inputs.len(), "reconstruction job started");

    let on_progress = |progress: Progress| {
        let mut new_stage = false;
        let job = update(shared, id, |job| {
            new_stage = job.stage != Some(progress.stage);
            job.stage = Some(progress.stage);
            // The bar never moves back, although a stage's total may grow as it runs.
            job.progress = job.progress.max(job_fraction(&progress));
        });
        // The file is rewritten only when the stage changes, because `get` reads the
        // in-memory state.
        if new_stage && let Some(job) = job {
            save_logged(shared, &job);
        }
    };
    let dir = shared.job_dir(id);
    let outcome = Error::catch_panic(|| {
        let model = dir.join(MODEL_FILE);
        let dense = dir.join(pipeline::files::DENSE_FILE);
        let mesh = dir.join(pipeline::files::MESH_FILE);
        let output = PipelineOutput {
            sparse: Some(&dir),
            dense: Some(&dense),
            mesh: Some(&mesh),
            ..PipelineOutput::model(&model)
        };
        let result = pipeline::run(
            &pending.inputs,
            &pending.options,
            &pending.limits,
            output,
            &on_progress,
        )?;
        let files = result
            .files
            .iter()
            .filter_map(|file| file.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
        let summary = PipelineSummary {
            sparse: result.reconstruction.summary(),
            model: Some(result.model),
        };
        Ok((summary, files))
    });

    let finished_at = Some(rfc3339(now_millis()));
    let job = match outcome {
        Ok((summary, files)) => {
            tracing::info!(
                job = %id,
                registered_images = summary.sparse.registered_images,
                points = summary.sparse.points,
                "reconstruction job succeeded"
            );
            update(shared, id, |job| {
                job.status = JobStatus::Succeeded;
                job.progress = 1.0;
                job.result = Some(summary);
                job.files = files;
                job.finished_at = finished_at;
            })
        }
        Err(err) => {
            tracing::warn!(job = %id, code = err.kind().code(), error = %err, "reconstruction job failed");
            update(shared, id, |job| {
                job.status = JobStatus::Failed;
                job.error = Some(JobError::from_error(&err));
                job.finished_at = finished_at;
            })
        }
    };
    if let Some(job) = job {
        save_logged(shared, &job);
    }
    remove_quietly(&dir.join(IMAGES_DIR));
}

/// Writes the COLMAP text model and the point cloud of `reconstruction` into `dir`
/// (created if missing) and returns the file names, [`OUTPUT_FILES`]. The point cloud is
/// binary little-endian PLY with positions and colours.
///
/// # Errors
///
/// Returns [`Error::Io`] when a file cannot be written, and the export's error for a
/// reconstruction whose references are inconsistent.
pub fn write_outputs(reconstruction: &Reconstruction, dir: &Path) -> Result<Vec<String>> {
    write_colmap_text(reconstruction, dir)?;
    PointCloud::from_reconstruction(reconstruction)
        .write_ply(&dir.join(POINT_CLOUD_FILE), PlyFormat::BinaryLittleEndian)?;
    Ok(OUTPUT_FILES.iter().map(|name| (*name).to_owned()).collect())
}

/// Returns the run fraction of `progress` rounded to 4 decimals, so job JSON shows 0.5
/// rather than a float sum such as 0.49999999999999994.
fn job_fraction(progress: &Progress) -> f64 {
    (progress.fraction() * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::recon::synthetic::{SceneOptions, SyntheticScene};

    /// Time a test waits for a job to finish before it fails.
    const JOB_TIMEOUT: Duration = Duration::from_secs(300);

    #[test]
    fn job_fraction_has_four_decimals() {
        for stage in [
            Stage::Screening,
            Stage::Registration,
            Stage::DepthMaps,
            Stage::Export,
        ] {
            for done in 0..=7 {
                let progress = Progress {
                    stage,
                    done,
                    total: 7,
                };
                let fraction = job_fraction(&progress);
                assert_eq!(fraction, (fraction * 1e4).round() / 1e4, "{progress:?}");
                assert!(
                    (fraction - progress.fraction()).abs() <= 5e-5,
                    "{progress:?}"
                );
            }
        }
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let picture = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 13 % 256) as u8,
                ((x + y) % 256) as u8,
            ])
        });
        let mut encoded = std::io::Cursor::new(Vec::new());
        picture
            .write_to(&mut encoded, image::ImageFormat::Png)
            .expect("PNG encodes");
        encoded.into_inner()
    }

    fn photos(count: usize) -> Vec<SfmInput> {
        (0..count)
            .map(|index| SfmInput::from_bytes(format!("photo_{index}.png"), png(32, 24)))
            .collect()
    }

    fn queue(root: &Path) -> JobQueue {
        JobQueue::open(root, 1).expect("the queue opens")
    }

    fn submit(queue: &JobQueue, inputs: Vec<SfmInput>) -> Result<ReconJob> {
        queue.submit(inputs, PipelineOptions::default(), ImageLimits::default())
    }

    fn invalid_message(result: Result<ReconJob>) -> String {
        let err = result.expect_err("the submit is rejected");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        err.to_string()
    }

    fn wait_until_finished(queue: &JobQueue, id: &str) -> ReconJob {
        let start = Instant::now();
        loop {
            let job = queue.get(id).expect("the job exists");
            if job.status.is_finished() {
                return job;
            }
            assert!(
                start.elapsed() < JOB_TIMEOUT,
                "job {id} did not finish within {JOB_TIMEOUT:?}: {job:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn open_rejects_zero_workers() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let err = JobQueue::open(dir.path(), 0).expect_err("no workers");
        assert!(err.to_string().contains("workers"), "{err}");
    }

    #[test]
    fn max_images_must_allow_a_pair() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let err = queue(dir.path()).with_max_images(1).expect_err("one photo");
        assert!(err.to_string().contains("max_images"), "{err}");
    }

    #[test]
    fn submit_checks_photo_counts() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let queue = queue(dir.path()).with_max_images(3).expect("valid limit");

        let none = invalid_message(submit(&queue, Vec::new()));
        assert!(none.contains("at least 2 photos, got 0"), "{none}");
        let one = invalid_message(submit(&queue, photos(1)));
        assert!(one.contains("got 1"), "{one}");
        let many = invalid_message(submit(&queue, photos(4)));
        assert!(many.contains("got 4 photos"), "{many}");
        assert!(many.contains("limit of 3"), "{many}");
        assert!(queue.list().is_empty());
    }

    #[test]
    fn submit_checks_photo_names() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let queue = queue(dir.path());
        for (name, expected) in [
            ("", "is empty"),
            ("..", "is not a file name"),
            ("../escape.png", "path separator"),
            ("a\\b.png", "path separator"),
            ("tab\there.png", "control character"),
        ] {
            let mut inputs = photos(2);
            inputs[1].name = name.to_owned();
            let message = invalid_message(submit(&queue, inputs));
            assert!(message.contains(expected), "{name:?}: {message}");
        }
        let mut twice = photos(2);
        twice[1].name = twice[0].name.clone();
        let message = invalid_message(submit(&queue, twice));
        assert!(message.contains("given twice"), "{message}");
        assert!(queue.list().is_empty());
    }

    #[test]
    fn submit_rejects_files_that_are_not_images() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let queue = queue(dir.path());
        let mut inputs = photos(2);
        inputs[1] = SfmInput::from_bytes("notes.png", b"not an image at all".to_vec());
        let message = invalid_message(submit(&queue, inputs));
        assert!(message.contains("photo `notes.png`"), "{message}");

        let mut large = photos(2);
        large[0] = SfmInput::from_bytes("large.png", png(100, 100));
        let limits = ImageLimits {
            max_pixels: 5_000,
            ..ImageLimits::default()
        };
        let err = queue
            .submit(large, PipelineOptions::default(), limits)
            .expect_err("over the pixel limit");
        assert!(err.to_string().contains("100x100"), "{err}");

        // No file of the rejected jobs is left on disk.
        let folders: Vec<_> = fs::read_dir(dir.path())
            .expect("readable root")
            .filter_map(|entry| entry.ok())
            .filter(|entry| is_job_id(&entry.file_name().to_string_lossy()))
            .collect();
        assert!(folders.is_empty(), "{folders:?}");
    }

    #[test]
    fn submit_checks_options() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let mut options = PipelineOptions::default();
        options.sfm.match_ratio = 2.0;
        let err = queue(dir.path())
            .submit(photos(2), options, ImageLimits::default())
            .expect_err("invalid options");
        assert!(err.to_string().contains("match_ratio"), "{err}");
    }

    #[test]
    fn unknown_and_malformed_ids_are_not_found() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let queue = queue(dir.path());
        let unknown = uuid::Uuid::new_v4().to_string();
        for id in [
            unknown.as_str(),
            "",
            "..",
            "../recon_jobs",
            "/etc/passwd",
            &unknown.to_uppercase(),
            &unknown.replace('-', ""),
        ] {
            let err = queue.get(id).expect_err("no such job");
            assert_eq!(err.kind(), ErrorKind::NotFound, "{id:?}: {err}");
            let err = queue.file(id, "cameras.txt").expect_err("no such job");
            assert_eq!(err.kind(), ErrorKind::NotFound, "{id:?}: {err}");
        }
    }

    #[test]
    fn unfinished_jobs_become_interrupted_on_open() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let id = uuid::Uuid::new_v4().to_string();
        let folder = dir.path().join(&id);
        fs::create_dir_all(folder.join(IMAGES_DIR)).expect("job folder");
        fs::write(folder.join(IMAGES_DIR).join("a.png"), png(8, 8)).expect("photo");
        let running = ReconJob {
            id: id.clone(),
            status: JobStatus::Running,
            stage: Some(Stage::Matching),
            progress: 0.4,
            error: None,
            result: None,
            files: Vec::new(),
            created_at: rfc3339(now_millis()),
            finished_at: None,
        };
        save_job(&folder, &running).expect("job file");
        let orphan = dir.path().join(uuid::Uuid::new_v4().to_string());
        fs::create_dir_all(orphan.join(IMAGES_DIR)).expect("orphan folder");

        let queue = queue(dir.path());
        let job = queue.get(&id).expect("the job is loaded");
        assert_eq!(job.status, JobStatus::Failed);
        let error = job.error.expect("an error");
        assert!(
            error.message.starts_with("interrupted"),
            "{}",
            error.message
        );
        assert_eq!(error.code, "KAI_INTERNAL");
        assert!(job.finished_at.is_some());
        assert!(!folder.join(IMAGES_DIR).exists(), "photos are deleted");
        assert!(!orphan.exists(), "a folder without job.json is deleted");

        // The new state is on disk, so a second open reads it unchanged.
        drop(queue);
        let reopened = JobQueue::open(dir.path(), 1).expect("the queue reopens");
        assert_eq!(reopened.get(&id).expect("loaded").status, JobStatus::Failed);
        assert_eq!(reopened.list().len(), 1);
    }

    #[test]
    fn job_json_uses_camel_case_and_nulls() {
        let job = ReconJob {
            id: "x".into(),
            status: JobStatus::Succeeded,
            stage: Some(Stage::Refinement),
            progress: 1.0,
            error: None,
            result: None,
            files: vec!["cameras.txt".into()],
            created_at: "2026-01-01T00:00:00.000Z".into(),
            finished_at: None,
        };
        let value = serde_json::to_value(&job).expect("encodes");
        assert_eq!(value["status"], "succeeded");
        assert_eq!(value["stage"], "refinement");
        assert!(value["error"].is_null());
        assert!(value["finishedAt"].is_null());
        assert!(value["createdAt"].is_string());
        assert!(value.as_object().expect("object").contains_key("result"));
    }

    #[test]
    fn corrupt_photos_fail_the_job_with_a_message() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let queue = queue(dir.path());
        // The header survives, so the submit accepts the photos, and the worker's decode
        // fails on the missing end of the pixel data.
        let truncated: Vec<SfmInput> = (0..3)
            .map(|index| {
                let mut bytes = png(64, 48);
                bytes.truncate(bytes.len() * 3 / 4);
                SfmInput::from_bytes(format!("cut_{index}.png"), bytes)
            })
            .collect();
        let job = submit(&queue, truncated).expect("the header passes");
        assert_eq!(job.status, JobStatus::Queued);

        let job = wait_until_finished(&queue, &job.id);
        assert_eq!(job.status, JobStatus::Failed, "{job:?}");
        let error = job.error.expect("an error");
        assert!(!error.message.is_empty());
        assert!(error.code.starts_with("KAI_"), "{}", error.code);
        assert!(job.result.is_none());
        assert!(job.files.is_empty());
        assert!(job.finished_at.is_some());
        assert!(!dir.path().join(&job.id).join(IMAGES_DIR).exists());
        let err = queue.file(&job.id, "cameras.txt").expect_err("no outputs");
        assert!(err.to_string().contains("failed"), "{err}");
    }

    #[test]
    fn synthetic_scene_reconstructs_to_files() {
        let scene = SyntheticScene::generate(&SceneOptions {
            images: 10,
            width: 400,
            height: 300,
            seed: 7,
            arc_degrees: 90.0,
            ..SceneOptions::default()
        })
        .expect("the scene renders");
        let folder = tempfile::tempdir().expect("temporary folder");
        let paths = scene.write_images(folder.path()).expect("photos written");
        // Half the photos as bytes and half as files, so both sources are stored.
        let inputs: Vec<SfmInput> = paths
            .iter()
            .enumerate()
            .map(|(index, path)| {
                if index % 2 == 0 {
                    SfmInput::from_path(path)
                } else {
                    let bytes = fs::read(path).expect("photo readable");
                    SfmInput::from_bytes(scene.names[index].clone(), bytes)
                }
            })
            .collect();

        let dir = tempfile::tempdir().expect("temporary folder");
        let queue = queue(dir.path());
        let submitted = submit(&queue, inputs).expect("queued");
        let job = wait_until_finished(&queue, &submitted.id);
        assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
        assert_eq!(job.progress, 1.0);
        assert_eq!(job.files[0], MODEL_FILE);
        for name in OUTPUT_FILES
            .iter()
            .chain(&["dense.ply", "mesh.ply", "model.lod1.glb"])
        {
            assert!(
                job.files.iter().any(|f| f == name),
                "{name} in {:?}",
                job.files
            );
        }
        let result = job.result.expect("a result");
        let model = result.model.clone().expect("the model counts");
        assert!(model.dense_points > 1000, "{model:?}");
        assert!(model.levels.len() >= 2, "{model:?}");
        assert!(
            model.levels[1].triangles < model.levels[0].triangles,
            "{model:?}"
        );
        let glb = queue.file(&job.id, MODEL_FILE).expect("the model file");
        let mesh = crate::recon::TriangleMesh::read_glb(&glb).expect("the model reads back");
        assert_eq!(mesh.triangles.len(), model.levels[0].triangles);
        let summary = result.sparse;
        assert_eq!(summary.images, 10);
        assert!(summary.registered_images >= 9, "{summary:?}");
        assert!(summary.points >= 500, "{summary:?}");
        assert!(summary.mean_reprojection_error < 1.0, "{summary:?}");
        for name in OUTPUT_FILES {
            let path = queue.file(&job.id, name).expect("an output file");
            assert!(
                fs::metadata(&path).expect("exists").len() > 0,
                "{name} is empty"
            );
        }
        // The files read back as the model that the summary describes.
        let model = crate::recon::export::read_colmap_text(&dir.path().join(&job.id))
            .expect("the COLMAP model reads back");
        assert_eq!(model.images.len(), summary.registered_images);
        assert_eq!(model.points.len(), summary.points);
        let ply = queue
            .file(&job.id, POINT_CLOUD_FILE)
            .expect("the point cloud");
        let cloud = PointCloud::read_ply(&ply).expect("the point cloud reads back");
        assert_eq!(cloud.positions.len(), summary.points);

        let err = queue.file(&job.id, JOB_FILE).expect_err("not an output");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(!dir.path().join(&job.id).join(IMAGES_DIR).exists());

        // The finished job is read back from disk by a new queue.
        drop(queue);
        let reopened = JobQueue::open(dir.path(), 1).expect("reopens");
        let loaded = reopened.get(&job.id).expect("loaded");
        assert_eq!(loaded.status, JobStatus::Succeeded);
        assert_eq!(loaded.result.map(|r| r.sparse.points), Some(summary.points));
    }
}
