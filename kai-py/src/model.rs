//! The reconstruction stages after structure from motion, from Python: the whole pipeline
//! (photos to model files), each stage on its own as the `kai recon` commands run them,
//! and reading and writing meshes and point clouds. Meshes and clouds cross as numpy
//! arrays: a mesh as `(positions, normals, colors, triangles)` with float32 positions and
//! normals, uint8 colours and uint32 triangles, a cloud as `(positions, colors, normals)`
//! with float64 coordinates. Counts cross as JSON text, which `kai/recon.py` turns into
//! dataclasses.

use std::path::{Path, PathBuf};

use kai_core::Error;
use kai_core::image::ImageLimits;
use kai_core::recon::cloud::PointCloud;
use kai_core::recon::export::gltf::Compression;
use kai_core::recon::export::{PlyFormat, read_colmap_text};
use kai_core::recon::mesh::TriangleMesh;
use kai_core::recon::mesh::lod::build_lods;
use kai_core::recon::pipeline::{
    self, PipelineOutput, PipelineSummary, clean_points, densify_photos, export_levels, files,
    mesh_points, read_levels, read_mesh as read_mesh_file, write_levels,
};
use kai_core::recon::progress::{Progress, Stage};
use kai_core::recon::sfm::screen_photos;
use nalgebra::Vector3;
use numpy::{IntoPyArray, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};
use serde::Serialize;

use crate::convert::json;
use crate::errors::{detached, raise};
use crate::recon::{Photos, ProgressForwarder, Reconstruction, pipeline_options};
use crate::registry::Registry;

/// A mesh as numpy arrays: positions (N, 3) float32, normals (N, 3) float32 or None,
/// colours (N, 3) uint8 or None, triangles (M, 3) uint32.
type MeshArrays<'py> = (
    Bound<'py, PyArray2<f32>>,
    Option<Bound<'py, PyArray2<f32>>>,
    Option<Bound<'py, PyArray2<u8>>>,
    Bound<'py, PyArray2<u32>>,
);

/// A point cloud as numpy arrays: positions (N, 3) float64, colours (N, 3) uint8,
/// normals (N, 3) float64 or None.
type PointArrays<'py> = (
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray2<u8>>,
    Option<Bound<'py, PyArray2<f64>>>,
);

/// The mesh tuple as Python passes it, before conversion.
type MeshTuple<'py> = (
    PyReadonlyArray2<'py, f32>,
    Option<PyReadonlyArray2<'py, f32>>,
    Option<PyReadonlyArray2<'py, u8>>,
    PyReadonlyArray2<'py, u32>,
);

/// The cloud tuple as Python passes it, before conversion.
type PointTuple<'py> = (
    PyReadonlyArray2<'py, f64>,
    PyReadonlyArray2<'py, u8>,
    Option<PyReadonlyArray2<'py, f64>>,
);

/// Moves rows of three values into a numpy array of shape (rows, 3) without a copy.
fn rows_to_py<'py, T: numpy::Element + Copy>(
    py: Python<'py>,
    rows: Vec<[T; 3]>,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    let count = rows.len();
    let flat: Vec<T> = rows.into_iter().flatten().collect();
    flat.into_pyarray(py).reshape([count, 3])
}

/// Reads an array of shape (N, 3) named `name` into rows.
fn rows_from_py<T: numpy::Element + Copy>(
    name: &str,
    array: &PyReadonlyArray2<'_, T>,
) -> kai_core::Result<Vec<[T; 3]>> {
    let shape = array.shape();
    if shape[1] != 3 {
        return Err(Error::invalid(
            name,
            format!("has shape ({}, {}); expected (N, 3)", shape[0], shape[1]),
        ));
    }
    Ok(array
        .as_array()
        .rows()
        .into_iter()
        .map(|row| [row[0], row[1], row[2]])
        .collect())
}

fn mesh_to_py(py: Python<'_>, mesh: TriangleMesh) -> PyResult<MeshArrays<'_>> {
    Ok((
        rows_to_py(py, mesh.positions)?,
        mesh.normals.map(|n| rows_to_py(py, n)).transpose()?,
        mesh.colors.map(|c| rows_to_py(py, c)).transpose()?,
        rows_to_py(py, mesh.triangles)?,
    ))
}

fn points_to_py(py: Python<'_>, cloud: PointCloud) -> PyResult<PointArrays<'_>> {
    let vectors = |v: Vec<Vector3<f64>>| v.into_iter().map(|p| [p.x, p.y, p.z]).collect();
    Ok((
        rows_to_py(py, vectors(cloud.positions))?,
        rows_to_py(py, cloud.colors)?,
        cloud
            .normals
            .map(|n| rows_to_py(py, vectors(n)))
            .transpose()?,
    ))
}

/// Converts the arrays of a mesh, checking shapes, index range and finite values.
fn mesh_from_tuple(name: &str, tuple: &MeshTuple<'_>) -> kai_core::Result<TriangleMesh> {
    let (positions, normals, colors, triangles) = tuple;
    let mesh = TriangleMesh {
        positions: rows_from_py(&format!("{name}.positions"), positions)?,
        normals: normals
            .as_ref()
            .map(|n| rows_from_py(&format!("{name}.normals"), n))
            .transpose()?,
        colors: colors
            .as_ref()
            .map(|c| rows_from_py(&format!("{name}.colors"), c))
            .transpose()?,
        triangles: rows_from_py(&format!("{name}.triangles"), triangles)?,
    };
    mesh.validate()?;
    Ok(mesh)
}

/// Converts the arrays of a point cloud, checking shapes and finite values.
fn points_from_tuple(name: &str, tuple: &PointTuple<'_>) -> kai_core::Result<PointCloud> {
    let (positions, colors, normals) = tuple;
    let vectors = |rows: Vec<[f64; 3]>| rows.into_iter().map(Vector3::from).collect();
    let cloud = PointCloud {
        positions: vectors(rows_from_py(&format!("{name}.positions"), positions)?),
        colors: rows_from_py(&format!("{name}.colors"), colors)?,
        normals: normals
            .as_ref()
            .map(|n| rows_from_py(&format!("{name}.normals"), n).map(vectors))
            .transpose()?,
    };
    cloud.validate()?;
    Ok(cloud)
}

/// An input that is a file (or folder) to read, or data that Python already holds.
enum Input<T> {
    Path(PathBuf),
    Data(T),
}

/// Reads a path string, or `None` when `value` is not a string.
fn path_arg(name: &str, value: &Bound<'_, PyAny>) -> kai_core::Result<Option<PathBuf>> {
    if !value.is_instance_of::<PyString>() {
        return Ok(None);
    }
    value
        .extract::<PathBuf>()
        .map(Some)
        .map_err(|err| Error::invalid(name, err.to_string()))
}

/// Reads argument `name`: a mesh file path, or mesh arrays.
fn mesh_input(name: &str, value: &Bound<'_, PyAny>) -> kai_core::Result<Input<TriangleMesh>> {
    if let Some(path) = path_arg(name, value)? {
        return Ok(Input::Path(path));
    }
    let tuple: MeshTuple<'_> = value
        .extract()
        .map_err(|_| Error::invalid(name, "must be a mesh file path or a kai.recon.Mesh"))?;
    mesh_from_tuple(name, &tuple).map(Input::Data)
}

/// Reads argument `name`: a PLY file path, or point cloud arrays.
fn points_input(name: &str, value: &Bound<'_, PyAny>) -> kai_core::Result<Input<PointCloud>> {
    if let Some(path) = path_arg(name, value)? {
        return Ok(Input::Path(path));
    }
    let tuple: PointTuple<'_> = value
        .extract()
        .map_err(|_| Error::invalid(name, "must be a PLY file path or a kai.recon.PointCloud"))?;
    points_from_tuple(name, &tuple).map(Input::Data)
}

/// Fails unless `path` names a PLY file, the only format of point clouds.
fn require_ply(what: &str, path: &Path) -> kai_core::Result<()> {
    let is_ply = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("ply"));
    if is_ply {
        return Ok(());
    }
    Err(Error::invalid(
        what,
        format!(
            "{} has no .ply extension; point clouds are PLY files",
            path.display()
        ),
    ))
}

/// Reads a compression name: `meshopt`, `none`, or None for `default`.
fn compression(name: Option<&str>, default: Compression) -> kai_core::Result<Compression> {
    match name {
        None => Ok(default),
        Some("meshopt") => Ok(Compression::Meshopt),
        Some("none") => Ok(Compression::None),
        Some(other) => Err(Error::invalid(
            "compression",
            format!("`{other}` is not a GLB compression; use `meshopt` or `none`"),
        )),
    }
}

/// One written level of detail: its file and counts.
#[derive(Serialize)]
struct LevelFile {
    path: String,
    vertices: usize,
    triangles: usize,
}

fn level_files(levels: &[TriangleMesh], paths: &[PathBuf]) -> Vec<LevelFile> {
    levels
        .iter()
        .zip(paths)
        .map(|(mesh, path)| LevelFile {
            path: path.display().to_string(),
            vertices: mesh.positions.len(),
            triangles: mesh.triangles.len(),
        })
        .collect()
}

/// The counts and files of a whole run.
#[derive(Serialize)]
struct ModelReport {
    files: Vec<String>,
    summary: PipelineSummary,
}

/// Runs every stage on `photos` and writes the model to `output` (`.glb`, `.ply` or
/// `.obj`; coarser levels go next to it as `NAME.lodN.EXT`). With `work`, the files
/// between the stages are kept there as `kai reconstruct --work` keeps them. Returns the
/// sparse model and the files and counts as JSON. The GIL is released during the run.
#[pyfunction]
#[pyo3(signature = (photos, output, work = None, set = None, registry = None, progress = None))]
fn reconstruct_model(
    py: Python<'_>,
    photos: &Bound<'_, PyAny>,
    output: PathBuf,
    work: Option<PathBuf>,
    set: Option<&str>,
    registry: Option<Bound<'_, Registry>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Reconstruction, String)> {
    let photos = raise(py, Photos::extract(photos))?;
    raise(py, files::ModelFormat::from_path(&output).map(|_| ()))?;
    let options = pipeline_options(py, set, registry.as_ref().map(Bound::get))?;
    let forwarder = ProgressForwarder::new(progress, Stage::Screening, Stage::Export);
    let (reconstruction, report) = detached(py, || {
        let limits = ImageLimits::from_env()?;
        let inputs = photos.into_inputs()?;
        if let Some(work) = &work {
            files::create_folder(work)?;
        }
        let sparse = work.as_ref().map(|dir| dir.join(files::SPARSE_DIR));
        let dense = work.as_ref().map(|dir| dir.join(files::DENSE_FILE));
        let mesh = work.as_ref().map(|dir| dir.join(files::MESH_FILE));
        let lods = work.as_ref().map(|dir| dir.join(files::LOD_DIR));
        let out = PipelineOutput {
            model: &output,
            sparse: sparse.as_deref(),
            dense: dense.as_deref(),
            mesh: mesh.as_deref(),
            lods: lods.as_deref(),
        };
        let report = |p: Progress| forwarder.report(p);
        let result = pipeline::run(&inputs, &options, &limits, out, &report)?;
        let summary = PipelineSummary {
            sparse: result.reconstruction.summary(),
            model: Some(result.model),
        };
        let files = result
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        Ok((result.reconstruction, ModelReport { files, summary }))
    })?;
    Ok((
        Reconstruction {
            inner: reconstruction,
        },
        json(py, &report)?,
    ))
}

/// Screens `photos` as structure from motion does, without reconstructing: decodes each
/// under the image limits, reads its EXIF focal length and applies the quality thresholds
/// of `set`. Writes the report to `output` as `kai recon screen` does when given, and
/// returns it as JSON.
#[pyfunction]
#[pyo3(signature = (photos, output = None, set = None, registry = None, progress = None))]
fn screen(
    py: Python<'_>,
    photos: &Bound<'_, PyAny>,
    output: Option<PathBuf>,
    set: Option<&str>,
    registry: Option<Bound<'_, Registry>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let photos = raise(py, Photos::extract(photos))?;
    let options = pipeline_options(py, set, registry.as_ref().map(Bound::get))?;
    let forwarder = ProgressForwarder::new(progress, Stage::Screening, Stage::Screening);
    let report = detached(py, || {
        let limits = ImageLimits::from_env()?;
        let inputs = photos.into_inputs()?;
        let report = screen_photos(&inputs, &options.sfm, &limits, &|p| forwarder.report(p))?;
        if let Some(output) = &output {
            report.write(output)?;
        }
        Ok(report)
    })?;
    json(py, &report)
}

/// Computes dense points from the registered photos of `sparse` (a `Reconstruction`, or
/// the folder of a COLMAP text model) by multi-view stereo, reading each photo from
/// `photos` by name. Writes them to `output` (binary PLY) when given.
#[pyfunction]
#[pyo3(signature = (sparse, photos, output = None, set = None, registry = None, progress = None))]
fn densify<'py>(
    py: Python<'py>,
    sparse: &Bound<'py, PyAny>,
    photos: &Bound<'py, PyAny>,
    output: Option<PathBuf>,
    set: Option<&str>,
    registry: Option<Bound<'py, Registry>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<PointArrays<'py>> {
    let sparse = match sparse.cast::<Reconstruction>() {
        Ok(model) => Input::Data(model.get().inner.clone()),
        Err(_) => raise(
            py,
            sparse.extract::<PathBuf>().map(Input::Path).map_err(|_| {
                Error::invalid(
                    "sparse",
                    "must be a kai.recon.Reconstruction or the folder of a COLMAP text model",
                )
            }),
        )?,
    };
    let photos = raise(py, Photos::extract(photos))?;
    if let Some(output) = &output {
        raise(py, require_ply("output", output))?;
    }
    let options = pipeline_options(py, set, registry.as_ref().map(Bound::get))?;
    let forwarder = ProgressForwarder::new(progress, Stage::DepthMaps, Stage::Fusion);
    let cloud = detached(py, || {
        let limits = ImageLimits::from_env()?;
        let reconstruction = match sparse {
            Input::Data(reconstruction) => reconstruction,
            Input::Path(dir) => {
                Error::require_path(&dir, "sparse model folder")?;
                read_colmap_text(&dir)?
            }
        };
        let inputs = photos.into_inputs()?;
        let report = |p: Progress| forwarder.report(p);
        let cloud = densify_photos(&reconstruction, &inputs, &options.dense, &limits, &report)?;
        if let Some(output) = &output {
            cloud.write_ply(output, PlyFormat::BinaryLittleEndian)?;
        }
        Ok(cloud)
    })?;
    points_to_py(py, cloud)
}

/// Cleans `points` (a PLY path or cloud arrays) and reconstructs a surface from them by
/// screened Poisson, trimmed where no points support it, with the settings of `set`.
/// Writes it to `output` (`.ply`, `.obj` or `.glb`) when given, and returns it.
#[pyfunction]
#[pyo3(signature = (points, output = None, set = None, registry = None, progress = None))]
fn mesh<'py>(
    py: Python<'py>,
    points: &Bound<'py, PyAny>,
    output: Option<PathBuf>,
    set: Option<&str>,
    registry: Option<Bound<'py, Registry>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<MeshArrays<'py>> {
    let points = raise(py, points_input("points", points))?;
    if let Some(output) = &output {
        raise(py, files::ModelFormat::from_path(output).map(|_| ()))?;
    }
    let options = pipeline_options(py, set, registry.as_ref().map(Bound::get))?;
    let forwarder = ProgressForwarder::new(progress, Stage::Meshing, Stage::Meshing);
    let mesh = detached(py, || {
        let cloud = match points {
            Input::Data(cloud) => cloud,
            Input::Path(path) => {
                Error::require_path(&path, "point cloud")?;
                PointCloud::read_ply(&path)?
            }
        };
        let (cleaned, _) = clean_points(&cloud, &options.cloud)?;
        let mesh = mesh_points(&cleaned, &options.mesh, Some(&|p| forwarder.report(p)))?;
        if let Some(output) = &output {
            export_levels(std::slice::from_ref(&mesh), output, options.compression)?;
        }
        Ok(mesh)
    })?;
    mesh_to_py(py, mesh)
}

/// Simplifies `mesh` (a mesh file or mesh arrays) into the levels of detail of `set` and
/// writes them into the folder `output_dir` as `lod0.ply` (the full mesh), `lod1.ply`,
/// ...; returns each level's file and counts as JSON.
#[pyfunction]
#[pyo3(signature = (mesh, output_dir, set = None, registry = None))]
fn levels_of_detail(
    py: Python<'_>,
    mesh: &Bound<'_, PyAny>,
    output_dir: PathBuf,
    set: Option<&str>,
    registry: Option<Bound<'_, Registry>>,
) -> PyResult<String> {
    let mesh = raise(py, mesh_input("mesh", mesh))?;
    let options = pipeline_options(py, set, registry.as_ref().map(Bound::get))?;
    let levels = detached(py, || {
        let lod_options = options.lod.lod_options()?;
        let mesh = match mesh {
            Input::Data(mesh) => mesh,
            Input::Path(path) => {
                Error::require_path(&path, "mesh")?;
                read_mesh_file(&path)?
            }
        };
        files::create_folder(&output_dir)?;
        let levels = build_lods(&mesh, &lod_options)?;
        let paths = write_levels(&levels, &output_dir)?;
        Ok(level_files(&levels, &paths))
    })?;
    json(py, &levels)
}

/// Writes levels of detail as model files: `input` is a `kai recon lod` folder or a mesh
/// file (paths), or a list of mesh arrays, the full mesh first. Level 0 goes to `output`,
/// whose extension (`.glb`, `.ply`, `.obj`) chooses the format, and level N next to it as
/// `NAME.lodN.EXT`. GLB files use `compression` (`meshopt` or `none`), by default the
/// set's. Returns each level's file and counts as JSON.
#[pyfunction]
#[pyo3(signature = (input, output, compression = None, set = None, registry = None))]
fn export_model(
    py: Python<'_>,
    input: &Bound<'_, PyAny>,
    output: PathBuf,
    compression: Option<&str>,
    set: Option<&str>,
    registry: Option<Bound<'_, Registry>>,
) -> PyResult<String> {
    let input = raise(py, levels_input(input))?;
    raise(py, files::ModelFormat::from_path(&output).map(|_| ()))?;
    let options = pipeline_options(py, set, registry.as_ref().map(Bound::get))?;
    let compression = raise(py, self::compression(compression, options.compression))?;
    let levels = detached(py, || {
        let levels = match input {
            Input::Data(levels) => levels,
            Input::Path(path) => {
                Error::require_path(&path, "levels of detail")?;
                read_levels(&path)?
            }
        };
        let paths = export_levels(&levels, &output, compression)?;
        Ok(level_files(&levels, &paths))
    })?;
    json(py, &levels)
}

/// Reads the input of `export_model`: a path, or a list of mesh tuples.
fn levels_input(value: &Bound<'_, PyAny>) -> kai_core::Result<Input<Vec<TriangleMesh>>> {
    if let Ok(list) = value.cast::<PyList>() {
        let mut levels = Vec::with_capacity(list.len());
        for (index, item) in list.iter().enumerate() {
            let name = format!("input[{index}]");
            let tuple: MeshTuple<'_> = item
                .extract()
                .map_err(|_| Error::invalid(&name, "must be a kai.recon.Mesh"))?;
            levels.push(mesh_from_tuple(&name, &tuple)?);
        }
        return Ok(Input::Data(levels));
    }
    match mesh_input("input", value)? {
        Input::Path(path) => Ok(Input::Path(path)),
        Input::Data(mesh) => Ok(Input::Data(vec![mesh])),
    }
}

/// Reads a mesh from a `.ply`, `.obj` or `.glb` file (GLB with or without
/// EXT_meshopt_compression). The GIL is released while it reads.
#[pyfunction]
fn read_mesh(py: Python<'_>, path: PathBuf) -> PyResult<MeshArrays<'_>> {
    let mesh = detached(py, || {
        Error::require_path(&path, "mesh file")?;
        read_mesh_file(&path)
    })?;
    mesh_to_py(py, mesh)
}

/// Writes a mesh to `path`, in the format of its extension (`.ply`, `.obj` or `.glb`).
/// GLB files use `compression`, `meshopt` unless given.
#[pyfunction]
#[pyo3(signature = (positions, normals, colors, triangles, path, compression = None))]
fn write_mesh(
    py: Python<'_>,
    positions: PyReadonlyArray2<'_, f32>,
    normals: Option<PyReadonlyArray2<'_, f32>>,
    colors: Option<PyReadonlyArray2<'_, u8>>,
    triangles: PyReadonlyArray2<'_, u32>,
    path: PathBuf,
    compression: Option<&str>,
) -> PyResult<()> {
    let compression = raise(py, self::compression(compression, Compression::Meshopt))?;
    raise(py, files::ModelFormat::from_path(&path).map(|_| ()))?;
    let mesh = raise(
        py,
        mesh_from_tuple("mesh", &(positions, normals, colors, triangles)),
    )?;
    detached(py, || {
        export_levels(std::slice::from_ref(&mesh), &path, compression).map(|_| ())
    })
}

/// Reads the points of a PLY file: positions, colours (grey where the file has none) and
/// normals when the file has them.
#[pyfunction]
fn read_points(py: Python<'_>, path: PathBuf) -> PyResult<PointArrays<'_>> {
    let cloud = detached(py, || {
        Error::require_path(&path, "point cloud")?;
        PointCloud::read_ply(&path)
    })?;
    points_to_py(py, cloud)
}

/// Writes points to the PLY file `path`, binary unless `ascii`.
#[pyfunction]
#[pyo3(signature = (positions, colors, normals, path, ascii = false))]
fn write_points(
    py: Python<'_>,
    positions: PyReadonlyArray2<'_, f64>,
    colors: PyReadonlyArray2<'_, u8>,
    normals: Option<PyReadonlyArray2<'_, f64>>,
    path: PathBuf,
    ascii: bool,
) -> PyResult<()> {
    raise(py, require_ply("path", &path))?;
    let cloud = raise(
        py,
        points_from_tuple("points", &(positions, colors, normals)),
    )?;
    let format = if ascii {
        PlyFormat::Ascii
    } else {
        PlyFormat::BinaryLittleEndian
    };
    detached(py, || cloud.write_ply(&path, format))
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(reconstruct_model, module)?)?;
    module.add_function(wrap_pyfunction!(screen, module)?)?;
    module.add_function(wrap_pyfunction!(densify, module)?)?;
    module.add_function(wrap_pyfunction!(mesh, module)?)?;
    module.add_function(wrap_pyfunction!(levels_of_detail, module)?)?;
    module.add_function(wrap_pyfunction!(export_model, module)?)?;
    module.add_function(wrap_pyfunction!(read_mesh, module)?)?;
    module.add_function(wrap_pyfunction!(write_mesh, module)?)?;
    module.add_function(wrap_pyfunction!(read_points, module)?)?;
    module.add_function(wrap_pyfunction!(write_points, module)?)?;
    Ok(())
}
