//! Reconstruction from Python: structure from motion over a set of photos, two-view
//! relative pose, the synthetic scene generator and the job queue (the stages after
//! structure from motion are in `model.rs`). Geometry crosses as
//! float64 numpy arrays in COLMAP's conventions, where a pose maps world to camera,
//! `x_cam = R x_world + t`. Summaries and job records cross as JSON text, which
//! `kai/recon.py` turns into dataclasses.

use std::path::PathBuf;
use std::sync::Mutex;

use kai_core::Error;
use kai_core::image::ImageLimits;
use kai_core::recon::Reconstruction as CoreReconstruction;
use kai_core::recon::geometry::{RelativePoseOptions, estimate_relative_pose};
use kai_core::recon::jobs;
use kai_core::recon::pipeline::PipelineOptions;
use kai_core::recon::progress::{Progress, Stage};
use kai_core::recon::sfm::{self, SfmInput};
use kai_core::recon::synthetic::{SceneOptions, SyntheticScene};
use kai_core::registry::{Registry as CoreRegistry, RegistrySettings, SqliteRegistry};
use nalgebra::Vector2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArray3, PyArrayMethods, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};
use serde::Serialize;

use crate::convert::{count, json};
use crate::errors::{detached, raise};
use crate::registry::Registry;

/// A finished reconstruction held in Rust; `kai/recon.py` reads its parts as arrays and
/// JSON and writes it as a COLMAP model.
#[derive(Debug)]
#[pyclass(module = "kai._kai", frozen)]
pub struct Reconstruction {
    pub(crate) inner: CoreReconstruction,
}

/// One camera as JSON: COLMAP's model name and parameter order.
#[derive(Serialize)]
struct CameraRecord {
    model: &'static str,
    width: u32,
    height: u32,
    params: Vec<f64>,
}

#[pymethods]
impl Reconstruction {
    /// Returns the counts, errors and unregistered photos as JSON (snake_case keys).
    fn summary(&self, py: Python<'_>) -> PyResult<String> {
        json(py, &self.inner.summary())
    }

    /// Returns the cameras as JSON: `[{"model", "width", "height", "params"}]`, with the
    /// parameters in COLMAP's order for the model.
    fn cameras(&self, py: Python<'_>) -> PyResult<String> {
        let cameras: Vec<CameraRecord> = self
            .inner
            .cameras
            .iter()
            .map(|camera| CameraRecord {
                model: camera.model.colmap_name(),
                width: camera.width,
                height: camera.height,
                params: camera.params(),
            })
            .collect();
        json(py, &cameras)
    }

    /// Returns the registered photos' names, in the order of the pose arrays.
    fn image_names(&self) -> Vec<String> {
        self.inner.images.iter().map(|i| i.name.clone()).collect()
    }

    /// Returns each registered photo's index into the cameras.
    fn image_cameras(&self) -> Vec<usize> {
        self.inner.images.iter().map(|i| i.camera).collect()
    }

    /// Returns the world-to-camera rotations as a float64 array of shape (images, 3, 3).
    fn rotations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray3<f64>>> {
        let mut flat = Vec::with_capacity(self.inner.images.len() * 9);
        for image in &self.inner.images {
            let matrix = image.pose.rotation_matrix();
            for row in 0..3 {
                for column in 0..3 {
                    flat.push(matrix[(row, column)]);
                }
            }
        }
        flat.into_pyarray(py)
            .reshape([self.inner.images.len(), 3, 3])
    }

    /// Returns the world-to-camera translations as a float64 array of shape (images, 3).
    fn translations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let flat: Vec<f64> = self
            .inner
            .images
            .iter()
            .flat_map(|image| image.pose.translation.iter().copied().collect::<Vec<_>>())
            .collect();
        flat.into_pyarray(py).reshape([self.inner.images.len(), 3])
    }

    /// Returns the point positions in world coordinates, float64 of shape (points, 3).
    fn point_positions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let flat: Vec<f64> = self
            .inner
            .points
            .iter()
            .flat_map(|point| [point.position.x, point.position.y, point.position.z])
            .collect();
        flat.into_pyarray(py).reshape([self.inner.points.len(), 3])
    }

    /// Returns the point colours, uint8 RGB of shape (points, 3).
    fn point_colors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u8>>> {
        let flat: Vec<u8> = self.inner.points.iter().flat_map(|p| p.color).collect();
        flat.into_pyarray(py).reshape([self.inner.points.len(), 3])
    }

    /// Returns each point's mean reprojection error in pixels, float64 of shape (points,).
    fn point_errors<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        let errors: Vec<f64> = self.inner.points.iter().map(|p| p.error).collect();
        errors.into_pyarray(py)
    }

    /// Returns each point's track length (observing photos), int64 of shape (points,).
    fn track_lengths<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        let lengths: Vec<i64> = self
            .inner
            .points
            .iter()
            .map(|p| i64::try_from(p.track.len()).unwrap_or(i64::MAX))
            .collect();
        lengths.into_pyarray(py)
    }

    /// Writes the COLMAP text model (cameras.txt, images.txt, points3D.txt) and
    /// points.ply into `out`, creating the folder. The GIL is released meanwhile.
    fn write(&self, py: Python<'_>, out: PathBuf) -> PyResult<()> {
        detached(py, || write_model(&self.inner, &out))
    }

    fn __repr__(&self) -> String {
        format!(
            "Reconstruction(images={}, points={}, unregistered={})",
            self.inner.images.len(),
            self.inner.points.len(),
            self.inner.unregistered.len()
        )
    }
}

/// Writes the COLMAP text model and the PLY point cloud of `reconstruction` into `out`,
/// the same files a reconstruction job produces.
pub(crate) fn write_model(
    reconstruction: &CoreReconstruction,
    out: &std::path::Path,
) -> kai_core::Result<()> {
    std::fs::create_dir_all(out).map_err(|err| Error::io("cannot create folder", out, err))?;
    jobs::write_outputs(reconstruction, out)?;
    Ok(())
}

/// The photos of a reconstruction as Python passes them: a folder, or a list of paths and
/// encoded bytes (read while the GIL is held, opened with it released).
pub(crate) enum Photos {
    Folder(PathBuf),
    List(Vec<SfmInput>),
}

impl Photos {
    pub(crate) fn extract(value: &Bound<'_, PyAny>) -> kai_core::Result<Self> {
        if value.is_instance_of::<PyString>() {
            let folder: PathBuf = value
                .extract()
                .map_err(|err: PyErr| Error::invalid("photos", err.to_string()))?;
            return Ok(Self::Folder(folder));
        }
        let Ok(list) = value.cast::<PyList>() else {
            return Err(Error::invalid(
                "photos",
                "must be a folder path or a list of photo paths and encoded bytes",
            ));
        };
        let mut inputs = Vec::with_capacity(list.len());
        for (index, item) in list.iter().enumerate() {
            inputs.push(photo_input(&item, index)?);
        }
        Ok(Self::List(inputs))
    }

    /// Lists the photos; reads the folder, so call it with the GIL released.
    pub(crate) fn into_inputs(self) -> kai_core::Result<Vec<SfmInput>> {
        match self {
            Self::Folder(folder) => sfm::inputs_from_dir(&folder),
            Self::List(inputs) => Ok(inputs),
        }
    }
}

/// Reads list item `index`: a path string or encoded bytes. Bytes are named
/// `image-N.bin`, counting from 1, as the Node client names unnamed uploads.
fn photo_input(item: &Bound<'_, PyAny>, index: usize) -> kai_core::Result<SfmInput> {
    if let Ok(bytes) = item.cast::<PyBytes>() {
        return Ok(SfmInput::from_bytes(
            format!("image-{}", index + 1),
            bytes.as_bytes().to_vec(),
        ));
    }
    if item.is_instance_of::<PyString>()
        && let Ok(path) = item.extract::<PathBuf>()
    {
        return Ok(SfmInput::from_path(path));
    }
    let kind = item
        .get_type()
        .name()
        .map_or_else(|_| "unknown".to_owned(), |name| name.to_string());
    Err(Error::invalid(
        format!("photos[{index}]"),
        format!("a value of type {kind} is not a photo; pass a path or encoded bytes"),
    ))
}

/// Returns the options of every reconstruction stage of parameter set `set` (the
/// registry's default set when None) in `registry`, or among the shipped sets when no
/// registry is given, as the `kai recon` commands do without a store.
pub(crate) fn pipeline_options(
    py: Python<'_>,
    set: Option<&str>,
    registry: Option<&Registry>,
) -> PyResult<PipelineOptions> {
    detached(py, || {
        let resolution = match registry {
            Some(registry) => registry.inner().resolve(set, &[])?,
            None => shipped_sets()?.resolve(set, &[])?,
        };
        kai_core::registry::pipeline_options(&resolution.values)
    })
}

/// Returns a registry in memory with the shipped parameter sets and the settings of the
/// environment (`DEFAULT_PARAMETER_SET`).
fn shipped_sets() -> kai_core::Result<CoreRegistry> {
    let settings = RegistrySettings::from_env()?;
    Ok(CoreRegistry::with_storage(
        Box::new(SqliteRegistry::in_memory()?),
        settings,
    ))
}

/// Forwards core progress reports to a Python callable as `(stage, fraction)`, where the
/// fraction is of the stages `first..=last` that the call runs.
///
/// Worker threads report concurrently and out of order, so a report whose fraction is
/// below one already forwarded is dropped, and the lock makes the calls one at a time
/// in increasing order. The lock is always taken before the GIL, and the thread that
/// waits for the run holds neither, so the two cannot deadlock.
pub(crate) struct ProgressForwarder {
    callback: Option<Py<PyAny>>,
    first: Stage,
    last_stage: Stage,
    last: Mutex<f64>,
}

impl ProgressForwarder {
    /// Forwards the reports of the stages `first..=last` to `callback`, if any.
    pub(crate) fn new(callback: Option<Py<PyAny>>, first: Stage, last: Stage) -> Self {
        Self {
            callback,
            first,
            last_stage: last,
            last: Mutex::new(0.0),
        }
    }

    pub(crate) fn report(&self, progress: Progress) {
        let Some(callback) = &self.callback else {
            return;
        };
        let fraction = progress.fraction_of(self.first, self.last_stage);
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if fraction < *last {
            return;
        }
        *last = fraction;
        Python::attach(|py| {
            // An exception cannot stop the run, so it goes to sys.unraisablehook.
            if let Err(err) = callback.call1(py, (progress.stage.as_str(), fraction)) {
                err.write_unraisable(py, Some(callback.bind(py)));
            }
        });
    }
}

/// Reconstructs cameras and points from `photos` (a folder path, or a list of paths and
/// encoded bytes) with the options of parameter set `set` in `registry` (the defaults when
/// `set` is None). Writes the COLMAP model and points.ply into `out` when given.
/// `progress` is called as `progress(stage, fraction)`. The GIL is released during the run.
#[pyfunction]
#[pyo3(signature = (photos, out = None, set = None, registry = None, progress = None))]
fn reconstruct(
    py: Python<'_>,
    photos: &Bound<'_, PyAny>,
    out: Option<PathBuf>,
    set: Option<&str>,
    registry: Option<Bound<'_, Registry>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Reconstruction> {
    let photos = raise(py, Photos::extract(photos))?;
    let options = pipeline_options(py, set, registry.as_ref().map(Bound::get))?.sfm;
    let forwarder = ProgressForwarder::new(progress, Stage::Screening, Stage::Refinement);
    // NOTE: the core has no cancellation, so Ctrl-C is only seen after the run ends.
    let inner = detached(py, || {
        let limits = ImageLimits::from_env()?;
        let inputs = photos.into_inputs()?;
        let report = |progress: Progress| forwarder.report(progress);
        let reconstruction = sfm::reconstruct(&inputs, &options, &limits, &report)?;
        if let Some(out) = &out {
            write_model(&reconstruction, out)?;
        }
        Ok(reconstruction)
    })?;
    Ok(Reconstruction { inner })
}

/// Reads an (N, 2) array of normalized coordinates named `name`.
fn normalized_points(
    py: Python<'_>,
    name: &str,
    array: &PyReadonlyArray2<'_, f64>,
) -> PyResult<Vec<Vector2<f64>>> {
    let shape = array.shape();
    if shape[1] != 2 {
        return raise(
            py,
            Err(Error::invalid(
                name,
                format!(
                    "has shape ({}, {}); expected (N, 2) normalized coordinates",
                    shape[0], shape[1]
                ),
            )),
        );
    }
    let view = array.as_array();
    Ok(view
        .rows()
        .into_iter()
        .map(|row| Vector2::new(row[0], row[1]))
        .collect())
}

/// Estimates the relative pose of camera 2 with respect to camera 1 from correspondences
/// `x1[i] <-> x2[i]` in undistorted normalized coordinates (float64 arrays of shape
/// (N, 2)), by RANSAC over the 5-point essential matrix with local optimisation and a
/// cheirality check. `threshold` is the Sampson error threshold in normalized units
/// (pixels divided by the focal length). Returns `R` (3, 3) and `t` (3,) with
/// `x_cam2 = R x_cam1 + t` and `|t| = 1`, and the inlier mask (N,). The GIL is released
/// during the estimation.
#[pyfunction]
#[pyo3(signature = (x1, x2, *, threshold = None, confidence = None, seed = 0, max_iterations = None))]
#[allow(clippy::type_complexity)]
fn relative_pose<'py>(
    py: Python<'py>,
    x1: PyReadonlyArray2<'py, f64>,
    x2: PyReadonlyArray2<'py, f64>,
    threshold: Option<f64>,
    confidence: Option<f64>,
    seed: u64,
    max_iterations: Option<i64>,
) -> PyResult<(
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<bool>>,
)> {
    let x1 = normalized_points(py, "x1", &x1)?;
    let x2 = normalized_points(py, "x2", &x2)?;
    let mut options = RelativePoseOptions::default();
    if let Some(threshold) = threshold {
        options.ransac.max_error = threshold;
    }
    if let Some(confidence) = confidence {
        options.ransac.confidence = confidence;
    }
    if let Some(iterations) = max_iterations {
        let iterations: usize = count(py, "max_iterations", iterations)?;
        options.ransac.max_iterations = iterations;
        options.ransac.min_iterations = options.ransac.min_iterations.min(iterations);
    }
    options.ransac.seed = seed;
    let estimate = detached(py, || estimate_relative_pose(&x1, &x2, &options))?;
    let matrix = estimate.pose.rotation_matrix();
    let rotation: Vec<f64> = (0..3)
        .flat_map(|row| (0..3).map(move |column| matrix[(row, column)]))
        .collect();
    let translation: Vec<f64> = estimate.pose.translation.iter().copied().collect();
    Ok((
        rotation.into_pyarray(py).reshape([3, 3])?,
        translation.into_pyarray(py),
        estimate.inliers.into_pyarray(py),
    ))
}

/// Renders a synthetic scene of `images` photos of `width` x `height` pixels from seed
/// `seed`, on an arc of `arc_degrees` around the objects, as `kai recon synth` does, so
/// the same arguments give the same pixels. The
/// PNGs go into `out_dir`. The ground truth goes into `out_dir/ground_truth` as a COLMAP
/// text model and points.ply: the true cameras and poses, and `points` sampled surface
/// points seen by at least two photos. Returns the photo paths and the ground truth. The
/// GIL is released while the scene renders.
#[pyfunction]
#[pyo3(signature = (out_dir, *, images = 30, seed = 0, width = 640, height = 480, points = 5000, arc_degrees = 360.0))]
#[allow(clippy::too_many_arguments)]
fn generate_scene(
    py: Python<'_>,
    out_dir: PathBuf,
    images: i64,
    seed: u64,
    width: i64,
    height: i64,
    points: i64,
    arc_degrees: f64,
) -> PyResult<(Vec<PathBuf>, Reconstruction)> {
    let options = SceneOptions {
        images: count(py, "images", images)?,
        width: count(py, "width", width)?,
        height: count(py, "height", height)?,
        seed,
        arc_degrees,
        ..SceneOptions::default()
    };
    let points: usize = count(py, "points", points)?;
    let (paths, truth) = detached(py, || {
        let scene = SyntheticScene::generate(&options)?;
        let paths = scene.write_images(&out_dir)?;
        let truth = scene.ground_truth(points);
        write_model(&truth, &out_dir.join("ground_truth"))?;
        Ok((paths, truth))
    })?;
    Ok((paths, Reconstruction { inner: truth }))
}

/// A folder of reconstruction jobs run by worker threads of this process, as kai-server
/// runs them. Job records cross as JSON text with the REST API's keys.
#[derive(Debug)]
#[pyclass(module = "kai._kai", frozen)]
pub struct JobQueue {
    inner: jobs::JobQueue,
}

#[pymethods]
impl JobQueue {
    /// Opens (creating when absent) the job folder `root` and starts `workers` threads.
    /// Jobs left queued or running by an earlier process are marked failed.
    #[new]
    #[pyo3(signature = (root, workers = 1))]
    fn new(py: Python<'_>, root: PathBuf, workers: i64) -> PyResult<Self> {
        let workers: usize = count(py, "workers", workers)?;
        let inner = detached(py, || jobs::JobQueue::open(&root, workers))?;
        Ok(Self { inner })
    }

    /// Returns the job folder.
    #[getter]
    fn root(&self) -> PathBuf {
        self.inner.root().to_path_buf()
    }

    /// Returns the maximum number of photos per job.
    #[getter]
    fn max_images(&self) -> usize {
        self.inner.max_images()
    }

    /// Stores the photos in a new job's folder and queues it; returns the job as JSON.
    /// The job runs every stage, photos to model files, with the options of `set` in
    /// `registry`, or of the shipped sets.
    #[pyo3(signature = (photos, set = None, registry = None))]
    fn submit(
        &self,
        py: Python<'_>,
        photos: &Bound<'_, PyAny>,
        set: Option<&str>,
        registry: Option<Bound<'_, Registry>>,
    ) -> PyResult<String> {
        let photos = raise(py, Photos::extract(photos))?;
        let options = pipeline_options(py, set, registry.as_ref().map(Bound::get))?;
        let job = detached(py, || {
            let limits = ImageLimits::from_env()?;
            self.inner.submit(photos.into_inputs()?, options, limits)
        })?;
        json(py, &job)
    }

    /// Returns the job `id` as JSON, or None when no job has that id.
    fn get(&self, py: Python<'_>, id: &str) -> PyResult<Option<String>> {
        match self.inner.get(id) {
            Ok(job) => json(py, &job).map(Some),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => raise(py, Err(err)),
        }
    }

    /// Returns every job as a JSON array, oldest first.
    fn list(&self, py: Python<'_>) -> PyResult<String> {
        json(py, &self.inner.list())
    }

    /// Returns the path of the output file `name` of a succeeded job.
    fn file(&self, py: Python<'_>, id: &str, name: &str) -> PyResult<PathBuf> {
        raise(py, self.inner.file(id, name))
    }

    fn __repr__(&self) -> String {
        format!("JobQueue(root={:?})", self.inner.root())
    }
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Reconstruction>()?;
    module.add_class::<JobQueue>()?;
    module.add_function(wrap_pyfunction!(generate_scene, module)?)?;
    module.add_function(wrap_pyfunction!(reconstruct, module)?)?;
    module.add_function(wrap_pyfunction!(relative_pose, module)?)?;
    Ok(())
}
