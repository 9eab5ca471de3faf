//! Reconstruction on `Kai`: structure from motion over a set of photos in this process,
//! and the job queue of the store, whose jobs have the JSON of kai-server's
//! `/api/recon/jobs` routes and run every stage, photos to model files (the stages after
//! structure from motion are in `model.rs`). Poses follow COLMAP's convention: a pose maps world to
//! camera, `x_cam = R x_world + t`.

use std::path::PathBuf;
use std::sync::Mutex;

use kai_core::Error;
use kai_core::image::ImageLimits;
use kai_core::recon::jobs::{self, ReconJob};
use kai_core::recon::pipeline::PipelineOptions;
use kai_core::recon::progress::{Progress, Stage};
use kai_core::recon::sfm::{self, SfmInput};
use kai_core::recon::{Reconstruction, ReconstructionSummary};
use kai_core::registry::Registry;
use napi::bindgen_prelude::{
    AsyncTask, Float64Array, FnArgs, FromNapiValue, Function, JsObjectValue, Object, Uint8Array,
    Uint32Array, Unknown,
};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Either, Env, JsValue, Status, ValueType};
use napi_derive::napi;
use serde::{Deserialize, Serialize};

use crate::convert::{from_js, from_json, split_field};
use crate::job::{Job, Json, Outcome};
use crate::kai::Kai;

/// The options of `reconstruct`, without `onProgress`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReconstructRequest {
    out: Option<PathBuf>,
    set: Option<String>,
}

/// The options of `submitReconstruction`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SubmitRequest {
    set: Option<String>,
}

/// The progress callback as worker threads call it, with the arguments `(stage, fraction)`.
type ProgressArgs = FnArgs<(String, f64)>;
pub(crate) type ProgressCallback =
    ThreadsafeFunction<ProgressArgs, Unknown<'static>, ProgressArgs, Status, false>;

/// Forwards core progress reports to the JS callback, with the fraction of the stages
/// `first..=last` that the call runs.
///
/// Worker threads report concurrently and out of order, so a report below the last
/// forwarded fraction is dropped. Each forwarded report waits until the callback has run
/// on the event loop, so the calls arrive in increasing order and all of them before the
/// run's Promise settles. After the callback throws, no further report is forwarded.
pub(crate) struct ProgressForwarder {
    callback: Option<ProgressCallback>,
    first: Stage,
    last: Stage,
    state: Mutex<ForwardState>,
}

/// The last fraction forwarded, and the message of an exception the callback threw.
#[derive(Default)]
struct ForwardState {
    last: f64,
    thrown: Option<String>,
}

impl ProgressForwarder {
    pub(crate) fn new(callback: Option<ProgressCallback>, first: Stage, last: Stage) -> Self {
        Self {
            callback,
            first,
            last,
            state: Mutex::new(ForwardState::default()),
        }
    }

    pub(crate) fn report(&self, progress: Progress) {
        let Some(callback) = &self.callback else {
            return;
        };
        let fraction = progress.fraction_of(self.first, self.last);
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.thrown.is_some() || fraction < state.last {
            return;
        }
        state.last = fraction;
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let status = callback.call_with_return_value(
            FnArgs::from((progress.stage.as_str().to_owned(), fraction)),
            ThreadsafeFunctionCallMode::NonBlocking,
            move |returned: napi::Result<Unknown<'static>>, _env| {
                let _ = sender.send(returned.err().map(|err| err.reason.clone()));
                Ok(())
            },
        );
        // Any other status means the environment is shutting down and the call will
        // never run. A call dropped unrun drops the sender, which ends the wait too.
        if status != Status::Ok {
            return;
        }
        if let Ok(Some(reason)) = receiver.recv() {
            state.thrown = Some(reason);
        }
    }

    /// Returns the error of an exception that the callback threw, if it threw one.
    pub(crate) fn exception(&self) -> Option<Error> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.thrown.as_ref().map(|reason| {
            Error::invalid(
                "options.onProgress",
                format!("the function threw: {reason}"),
            )
        })
    }
}

/// One camera: COLMAP's model name and parameter order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CameraRecord {
    model: &'static str,
    width: u32,
    height: u32,
    params: Vec<f64>,
}

/// One registered photo and its world-to-camera pose.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageRecord {
    name: String,
    camera: usize,
    /// Rows of the rotation matrix.
    rotation: [[f64; 3]; 3],
    translation: [f64; 3],
    /// The camera centre in world coordinates, `-Rᵀ t`.
    center: [f64; 3],
}

/// A reconstruction without its points, which cross as typed arrays.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconstructionRecord {
    summary: ReconstructionSummary,
    cameras: Vec<CameraRecord>,
    images: Vec<ImageRecord>,
    /// Files written into `out`, empty without it.
    files: Vec<String>,
}

/// A reconstruction as JS receives it: the record as an object, and `points` with
/// `xyz` (Float64Array, x y z per point), `rgb` (Uint8Array), `error` (Float64Array,
/// pixels) and `trackLength` (Uint32Array).
#[derive(Debug)]
pub struct ReconstructionOutcome {
    record: Json,
    xyz: Vec<f64>,
    rgb: Vec<u8>,
    error: Vec<f64>,
    track_length: Vec<u32>,
}

impl ReconstructionOutcome {
    fn new(reconstruction: &Reconstruction, files: Vec<String>) -> kai_core::Result<Self> {
        Self::with_record(reconstruction, files, |record| Json::of(&record))
    }

    /// Builds the outcome with the record that `wrap` makes of the reconstruction's.
    pub fn with_record(
        reconstruction: &Reconstruction,
        files: Vec<String>,
        wrap: impl FnOnce(ReconstructionRecord) -> kai_core::Result<Json>,
    ) -> kai_core::Result<Self> {
        let cameras = reconstruction
            .cameras
            .iter()
            .map(|camera| CameraRecord {
                model: camera.model.colmap_name(),
                width: camera.width,
                height: camera.height,
                params: camera.params(),
            })
            .collect();
        let images = reconstruction
            .images
            .iter()
            .map(|image| {
                let matrix = image.pose.rotation_matrix();
                let row = |r: usize| [matrix[(r, 0)], matrix[(r, 1)], matrix[(r, 2)]];
                let t = image.pose.translation;
                let c = image.pose.center();
                ImageRecord {
                    name: image.name.clone(),
                    camera: image.camera,
                    rotation: [row(0), row(1), row(2)],
                    translation: [t.x, t.y, t.z],
                    center: [c.x, c.y, c.z],
                }
            })
            .collect();
        let points = &reconstruction.points;
        Ok(Self {
            record: wrap(ReconstructionRecord {
                summary: reconstruction.summary(),
                cameras,
                images,
                files,
            })?,
            xyz: points
                .iter()
                .flat_map(|p| [p.position.x, p.position.y, p.position.z])
                .collect(),
            rgb: points.iter().flat_map(|p| p.color).collect(),
            error: points.iter().map(|p| p.error).collect(),
            track_length: points
                .iter()
                .map(|p| u32::try_from(p.track.len()).unwrap_or(u32::MAX))
                .collect(),
        })
    }
}

impl Outcome for ReconstructionOutcome {
    type Js = Unknown<'static>;

    fn into_js(self, env: &Env) -> napi::Result<Self::Js> {
        let record = self.record.into_js(env)?;
        let mut object = Object::from_unknown(record)?;
        let mut points = Object::new(env)?;
        points.set_named_property("xyz", Float64Array::new(self.xyz))?;
        points.set_named_property("rgb", Uint8Array::new(self.rgb))?;
        points.set_named_property("error", Float64Array::new(self.error))?;
        points.set_named_property("trackLength", Uint32Array::new(self.track_length))?;
        object.set_named_property("points", points)?;
        Ok(object.to_unknown())
    }
}

/// The photos of a reconstruction: a folder, or photos in the caller's order.
#[derive(Debug)]
pub(crate) enum Photos {
    Folder(PathBuf),
    List(Vec<SfmInput>),
}

impl Photos {
    /// Reads the argument `name`: a folder path, or an array of paths and Buffers
    /// (or Uint8Arrays). Buffers are named `image-N`, counting from 1, as the REST
    /// client names them.
    pub(crate) fn from_js(name: &str, value: Unknown<'_>) -> kai_core::Result<Self> {
        if let Ok(ValueType::String) = value.get_type() {
            let folder: String = from_js(name, value)?;
            return Ok(Self::Folder(PathBuf::from(folder)));
        }
        let items = Vec::<Unknown<'_>>::from_unknown(value).map_err(|_| {
            Error::invalid(
                name,
                "must be a folder path or an array of photo paths and Buffers",
            )
        })?;
        let mut inputs = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let input = match Either::<String, Uint8Array>::from_unknown(item) {
                Ok(Either::A(path)) => SfmInput::from_path(path),
                Ok(Either::B(bytes)) => {
                    SfmInput::from_bytes(format!("image-{}", index + 1), bytes.to_vec())
                }
                Err(_) => {
                    return Err(Error::invalid(
                        format!("{name}[{index}]"),
                        "must be a Buffer or Uint8Array of an encoded photo, or a path string",
                    ));
                }
            };
            inputs.push(input);
        }
        Ok(Self::List(inputs))
    }

    /// Lists the photos; reads the folder, so it runs on the thread pool.
    pub(crate) fn into_inputs(self) -> kai_core::Result<Vec<SfmInput>> {
        match self {
            Self::Folder(folder) => sfm::inputs_from_dir(&folder),
            Self::List(inputs) => Ok(inputs),
        }
    }
}

/// Returns the options of every reconstruction stage of parameter set `set`, or of the
/// registry's default set (`DEFAULT_PARAMETER_SET`, else `standard`) as kai-server does.
pub(crate) fn pipeline_options(
    registry: &Registry,
    set: Option<&str>,
) -> kai_core::Result<PipelineOptions> {
    let resolution = registry.resolve(set, &[])?;
    kai_core::registry::pipeline_options(&resolution.values)
}

/// Reads `options.onProgress`: a function, or absent.
pub(crate) fn progress_callback(
    callback: Option<Unknown<'_>>,
) -> kai_core::Result<Option<ProgressCallback>> {
    let Some(callback) = callback else {
        return Ok(None);
    };
    match callback.get_type() {
        Ok(ValueType::Undefined | ValueType::Null) => return Ok(None),
        Ok(ValueType::Function) => {}
        _ => {
            return Err(Error::invalid(
                "options.onProgress",
                "must be a function (stage, fraction) => void",
            ));
        }
    }
    let function = Function::<ProgressArgs, Unknown<'static>>::from_unknown(callback)
        .map_err(|err| Error::invalid("options.onProgress", err.reason.clone()))?;
    let threadsafe = function
        .build_threadsafe_function::<ProgressArgs>()
        .callee_handled::<false>()
        .build()
        .map_err(|err| {
            Error::Internal(format!(
                "cannot make options.onProgress callable from worker threads: {}",
                err.reason
            ))
        })?;
    Ok(Some(threadsafe))
}

/// Writes the COLMAP text model and points.ply into `out`, the files a job produces.
pub fn write_model(
    reconstruction: &Reconstruction,
    out: &std::path::Path,
) -> kai_core::Result<Vec<String>> {
    std::fs::create_dir_all(out).map_err(|err| Error::io("cannot create folder", out, err))?;
    jobs::write_outputs(reconstruction, out)
}

#[napi]
impl Kai {
    /// Reconstructs cameras and a sparse point cloud from `photos`: a folder (its photos
    /// sorted by name) or an array of paths and Buffers, named `image-N` counting from 1.
    /// `options.set` names the parameter set whose `recon.*` values configure the run
    /// (default `DEFAULT_PARAMETER_SET`, else `standard`), and `options.out` a folder for
    /// the COLMAP text model and points.ply. `options.onProgress(stage, fraction)` is
    /// called on the event loop with a fraction that never decreases, every call before
    /// the Promise settles. When it throws, it is not called again, and the Promise
    /// rejects with `KAI_INVALID_INPUT` naming the exception once the run has ended,
    /// whatever the run's outcome.
    /// Runs on the libuv thread pool, holding one of its threads until the
    /// reconstruction ends.
    #[napi(
        ts_args_type = "photos: string | ImageInput[], options?: ReconstructOptions",
        ts_return_type = "Promise<ReconstructionResult>"
    )]
    pub fn reconstruct(
        &self,
        photos: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<ReconstructionOutcome>> {
        let prepared = (|| {
            let (fields, on_progress) = split_field("options", options, "onProgress")?;
            let request: ReconstructRequest = from_json("options", fields)?;
            let photos = Photos::from_js("photos", photos)?;
            let callback = progress_callback(on_progress)?;
            Ok((self.services()?, request, photos, callback))
        })();
        Job::run(prepared, |(services, request, photos, callback)| {
            let options = pipeline_options(&services.registry, request.set.as_deref())?.sfm;
            let forwarder = ProgressForwarder::new(callback, Stage::Screening, Stage::Refinement);
            let inputs = photos.into_inputs()?;
            let report = |progress: Progress| forwarder.report(progress);
            let outcome = sfm::reconstruct(&inputs, &options, &services.limits, &report);
            // The caller's exception comes first, whatever the run's outcome.
            if let Some(err) = forwarder.exception() {
                return Err(err);
            }
            let reconstruction = outcome?;
            let files = match &request.out {
                Some(out) => write_model(&reconstruction, out)?,
                None => Vec::new(),
            };
            ReconstructionOutcome::new(&reconstruction, files)
        })
    }

    /// Stores the photos (paths or Buffers, at least 2) in a new job of the store's job
    /// queue and queues it. Resolves to the job, `queued`, as `POST /api/recon/jobs`
    /// returns it. The job runs every stage, as `reconstructModel` does, and keeps the
    /// model files (`model.glb`, `model.lod1.glb`, ...) and the stage files in the store's
    /// `recon_jobs/ID` folder. `options.set` names the parameter set of its `recon.*`
    /// values.
    #[napi(
        ts_args_type = "images: ImageInput[], options?: SubmitReconstructionOptions",
        ts_return_type = "Promise<ReconJob>"
    )]
    pub fn submit_reconstruction(
        &self,
        images: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let request: SubmitRequest = match options {
                Some(options) => from_js("options", options)?,
                None => SubmitRequest::default(),
            };
            let photos = Photos::from_js("images", images)?;
            Ok((self.services()?, request, photos))
        })();
        Job::run(prepared, |(services, request, photos)| {
            let options = pipeline_options(&services.registry, request.set.as_deref())?;
            let queue = services.recon_jobs()?;
            let limits: ImageLimits = services.limits;
            let job: ReconJob = queue.submit(photos.into_inputs()?, options, limits)?;
            Json::of(&job)
        })
    }

    /// Returns the reconstruction job `id`, as `GET /api/recon/jobs/{id}` does, or null
    /// when no job has it.
    #[napi(
        ts_args_type = "id: string",
        ts_return_type = "Promise<ReconJob | null>"
    )]
    pub fn get_reconstruction_job(&self, id: Unknown<'_>) -> AsyncTask<Job<Json>> {
        let prepared = self.services_with::<String>("id", id);
        Job::run(prepared, |(services, id)| {
            match services.recon_jobs()?.get(&id) {
                Ok(job) => Json::of(&job),
                Err(Error::NotFound { .. }) => Json::of(&()),
                Err(err) => Err(err),
            }
        })
    }

    /// Lists the store's reconstruction jobs, oldest first, as `GET /api/recon/jobs` does.
    #[napi(ts_return_type = "Promise<ReconJob[]>")]
    pub fn list_reconstruction_jobs(&self) -> AsyncTask<Job<Json>> {
        Job::run(self.services(), |services| {
            Json::of(&services.recon_jobs()?.list())
        })
    }
}
