//! The reconstruction stages after structure from motion, from Node. `Kai` runs the whole
//! pipeline (`reconstructModel`, photos to model files) and each stage on its own as the
//! `kai recon` commands run them, with the settings of a parameter set of the store's
//! registry. The module functions `readMesh` and `writeMesh` pass meshes as typed arrays.

use std::path::PathBuf;

use kai_core::Error;
use kai_core::recon::cloud::PointCloud;
use kai_core::recon::export::gltf::Compression;
use kai_core::recon::export::{PlyFormat, read_colmap_text};
use kai_core::recon::mesh::TriangleMesh;
use kai_core::recon::mesh::lod::build_lods;
use kai_core::recon::pipeline::{
    self, ModelSummary, PipelineOutput, clean_points, densify_photos, export_levels, files,
    mesh_points, read_levels, read_mesh as read_mesh_file, write_levels,
};
use kai_core::recon::progress::{Progress, Stage};
use kai_core::recon::sfm::screen_photos;
use napi::bindgen_prelude::{
    AsyncTask, Float32Array, FromNapiValue, JsObjectValue, Null, Object, Uint8Array, Uint32Array,
    Unknown,
};
use napi::{Env, JsValue, ValueType};
use napi_derive::napi;
use serde::{Deserialize, Serialize};

use crate::convert::{from_js, from_json, options, split_field};
use crate::job::{Job, Json, Outcome};
use crate::kai::Kai;
use crate::recon::{
    Photos, ProgressForwarder, ReconstructionOutcome, ReconstructionRecord, pipeline_options,
    progress_callback,
};

/// The options of `reconstructModel`, without `onProgress`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReconstructModelRequest {
    set: Option<String>,
    work: Option<PathBuf>,
}

/// The options of the stages that report progress, without `onProgress`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StageRequest {
    set: Option<String>,
}

/// The options of `screenPhotos`, without `onProgress`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScreenRequest {
    set: Option<String>,
    output: Option<PathBuf>,
}

/// The options of `levelsOfDetail`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LodRequest {
    set: Option<String>,
}

/// The options of `exportModel`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExportRequest {
    set: Option<String>,
    compression: Option<String>,
}

/// The options of `writeMesh`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WriteMeshRequest {
    compression: Option<String>,
}

/// A whole run: the sparse model's record, with the model's counts.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelRecord {
    #[serde(flatten)]
    sparse: ReconstructionRecord,
    model: ModelSummary,
}

/// The counts of a point or mesh stage and the file it wrote, as `kai recon dense|mesh
/// --json` print them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StageReport {
    output: String,
    points: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    vertices: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    triangles: Option<usize>,
}

/// One written level of detail.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LevelFile {
    file: String,
    vertices: usize,
    triangles: usize,
}

fn level_files(levels: &[TriangleMesh], paths: &[PathBuf]) -> Vec<LevelFile> {
    levels
        .iter()
        .zip(paths)
        .map(|(mesh, path)| LevelFile {
            file: path.display().to_string(),
            vertices: mesh.positions.len(),
            triangles: mesh.triangles.len(),
        })
        .collect()
}

/// Reads a path argument `name`.
fn path_arg(name: &str, value: Unknown<'_>) -> kai_core::Result<PathBuf> {
    from_js::<String>(name, value).map(PathBuf::from)
}

/// Reads a compression name: `meshopt`, `none`, or absent for `default`.
fn compression(name: Option<&str>, default: Compression) -> kai_core::Result<Compression> {
    match name {
        None => Ok(default),
        Some("meshopt") => Ok(Compression::Meshopt),
        Some("none") => Ok(Compression::None),
        Some(other) => Err(Error::invalid(
            "options.compression",
            format!("`{other}` is not a GLB compression; use `meshopt` or `none`"),
        )),
    }
}

/// Splits `options` into its JSON fields and the `onProgress` callback.
fn with_progress<T: serde::de::DeserializeOwned>(
    options: Option<Unknown<'_>>,
) -> kai_core::Result<(T, Option<crate::recon::ProgressCallback>)> {
    let (fields, on_progress) = split_field("options", options, "onProgress")?;
    Ok((
        from_json("options", fields)?,
        progress_callback(on_progress)?,
    ))
}

/// Returns the caller's exception first, then the stage's own outcome.
fn settle<T>(forwarder: &ProgressForwarder, outcome: kai_core::Result<T>) -> kai_core::Result<T> {
    match forwarder.exception() {
        Some(err) => Err(err),
        None => outcome,
    }
}

#[napi]
impl Kai {
    /// Reconstructs a model from `photos` (a folder, or an array of paths and Buffers named
    /// `image-N`): screening, structure from motion, dense multi-view stereo, point
    /// clean-up, Poisson meshing, levels of detail and export, as `kai reconstruct` does.
    /// The full mesh goes to `output`, whose extension (`.glb`, `.ply` or `.obj`) chooses
    /// the format, and each coarser level N next to it as `NAME.lodN.EXT`. `options.set`
    /// names the parameter set of the run's `recon.*` values, and `options.work` a folder
    /// that keeps the stage files (`sparse/`, `dense.ply`, `mesh.ply`, `lod/`).
    /// `options.onProgress(stage, fraction)` is called as for `reconstruct`, through every
    /// stage. Resolves to the sparse model as `reconstruct` does, with `files` (every file
    /// written, the model files first) and `model` (the counts of the dense points, the
    /// mesh and each level). Runs on the libuv thread pool, holding one of its threads
    /// until the run ends.
    #[napi(
        ts_args_type = "photos: string | ImageInput[], output: string, options?: ReconstructModelOptions",
        ts_return_type = "Promise<ModelReconstructionResult>"
    )]
    pub fn reconstruct_model(
        &self,
        photos: Unknown<'_>,
        output: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<ReconstructionOutcome>> {
        let prepared = (|| {
            let photos = Photos::from_js("photos", photos)?;
            let output = path_arg("output", output)?;
            files::ModelFormat::from_path(&output)?;
            let (request, callback): (ReconstructModelRequest, _) = with_progress(options)?;
            Ok((self.services()?, photos, output, request, callback))
        })();
        Job::run(prepared, |(services, photos, output, request, callback)| {
            let options = pipeline_options(&services.registry, request.set.as_deref())?;
            let inputs = photos.into_inputs()?;
            if let Some(work) = &request.work {
                files::create_folder(work)?;
            }
            let work = request.work.as_deref();
            let sparse = work.map(|dir| dir.join(files::SPARSE_DIR));
            let dense = work.map(|dir| dir.join(files::DENSE_FILE));
            let mesh = work.map(|dir| dir.join(files::MESH_FILE));
            let lods = work.map(|dir| dir.join(files::LOD_DIR));
            let out = PipelineOutput {
                model: &output,
                sparse: sparse.as_deref(),
                dense: dense.as_deref(),
                mesh: mesh.as_deref(),
                lods: lods.as_deref(),
            };
            let forwarder = ProgressForwarder::new(callback, Stage::Screening, Stage::Export);
            let report = |p: Progress| forwarder.report(p);
            let outcome = pipeline::run(&inputs, &options, &services.limits, out, &report);
            let result = settle(&forwarder, outcome)?;
            let files = result
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            let model = result.model;
            ReconstructionOutcome::with_record(&result.reconstruction, files, |sparse| {
                Json::of(&ModelRecord { sparse, model })
            })
        })
    }

    /// Screens `photos` as a reconstruction would, without reconstructing: decodes each
    /// under the image limits, reads its EXIF focal length and applies the quality
    /// thresholds of `options.set`, as `kai recon screen` does. Writes the report to
    /// `options.output` as JSON when given. Resolves to the report: `accepted` photos with
    /// their size and focal length, `rejected` ones with the reason.
    #[napi(
        ts_args_type = "photos: string | ImageInput[], options?: ScreenPhotosOptions",
        ts_return_type = "Promise<ScreeningReport>"
    )]
    pub fn screen_photos(
        &self,
        photos: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let photos = Photos::from_js("photos", photos)?;
            let (request, callback): (ScreenRequest, _) = with_progress(options)?;
            Ok((self.services()?, photos, request, callback))
        })();
        Job::run(prepared, |(services, photos, request, callback)| {
            let options = pipeline_options(&services.registry, request.set.as_deref())?;
            let inputs = photos.into_inputs()?;
            let forwarder = ProgressForwarder::new(callback, Stage::Screening, Stage::Screening);
            let report = |p: Progress| forwarder.report(p);
            let outcome = screen_photos(&inputs, &options.sfm, &services.limits, &report);
            let screening = settle(&forwarder, outcome)?;
            if let Some(output) = &request.output {
                screening.write(output)?;
            }
            Json::of(&screening)
        })
    }

    /// Computes dense points by multi-view stereo from the COLMAP text model in the folder
    /// `sparse`, as `reconstruct` with `out` writes it. Each registered photo is read by
    /// name from `photos`. The points go to `output` as binary PLY with normals and
    /// colours, as `kai recon dense` writes them. Resolves to the file and the point
    /// count. `options.onProgress` reports the stages `depth_maps` and `fusion`.
    #[napi(
        ts_args_type = "sparse: string, photos: string | ImageInput[], output: string, options?: StageOptions",
        ts_return_type = "Promise<StageReport>"
    )]
    pub fn densify(
        &self,
        sparse: Unknown<'_>,
        photos: Unknown<'_>,
        output: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let sparse = path_arg("sparse", sparse)?;
            let photos = Photos::from_js("photos", photos)?;
            let output = path_arg("output", output)?;
            let (request, callback): (StageRequest, _) = with_progress(options)?;
            Ok((self.services()?, sparse, photos, output, request, callback))
        })();
        Job::run(
            prepared,
            |(services, sparse, photos, output, request, callback)| {
                let options = pipeline_options(&services.registry, request.set.as_deref())?;
                Error::require_path(&sparse, "sparse model folder")?;
                let reconstruction = read_colmap_text(&sparse)?;
                let inputs = photos.into_inputs()?;
                let forwarder = ProgressForwarder::new(callback, Stage::DepthMaps, Stage::Fusion);
                let report = |p: Progress| forwarder.report(p);
                let outcome = densify_photos(
                    &reconstruction,
                    &inputs,
                    &options.dense,
                    &services.limits,
                    &report,
                );
                let cloud = settle(&forwarder, outcome)?;
                cloud.write_ply(&output, PlyFormat::BinaryLittleEndian)?;
                Json::of(&StageReport {
                    output: output.display().to_string(),
                    points: cloud.len(),
                    vertices: None,
                    triangles: None,
                })
            },
        )
    }

    /// Cleans the points of the PLY file `points` and reconstructs a surface from them by
    /// screened Poisson, trimmed where no points support it, as `kai recon mesh` does. The
    /// mesh goes to `output` (`.ply`, `.obj` or `.glb`). Resolves to the file, the points
    /// the surface was made from and the mesh's counts. `options.onProgress` reports the
    /// stage `meshing`.
    #[napi(
        ts_args_type = "points: string, output: string, options?: StageOptions",
        ts_return_type = "Promise<StageReport>"
    )]
    pub fn mesh_points(
        &self,
        points: Unknown<'_>,
        output: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let points = path_arg("points", points)?;
            let output = path_arg("output", output)?;
            files::ModelFormat::from_path(&output)?;
            let (request, callback): (StageRequest, _) = with_progress(options)?;
            Ok((self.services()?, points, output, request, callback))
        })();
        Job::run(prepared, |(services, points, output, request, callback)| {
            let options = pipeline_options(&services.registry, request.set.as_deref())?;
            Error::require_path(&points, "point cloud")?;
            let cloud = PointCloud::read_ply(&points)?;
            let (cleaned, counts) = clean_points(&cloud, &options.cloud)?;
            let forwarder = ProgressForwarder::new(callback, Stage::Meshing, Stage::Meshing);
            let report = |p: Progress| forwarder.report(p);
            let outcome = mesh_points(&cleaned, &options.mesh, Some(&report));
            let mesh = settle(&forwarder, outcome)?;
            export_levels(std::slice::from_ref(&mesh), &output, options.compression)?;
            Json::of(&StageReport {
                output: output.display().to_string(),
                points: counts.kept,
                vertices: Some(mesh.positions.len()),
                triangles: Some(mesh.triangles.len()),
            })
        })
    }

    /// Simplifies the mesh file `mesh` (`.ply`, `.obj` or `.glb`) into the levels of detail
    /// of `options.set` and writes them into the folder `outputDir` as `lod0.ply` (the full
    /// mesh), `lod1.ply`, ..., as `kai recon lod` does. Resolves to each level's file and
    /// counts.
    #[napi(
        ts_args_type = "mesh: string, outputDir: string, options?: LevelsOfDetailOptions",
        ts_return_type = "Promise<LevelFile[]>"
    )]
    pub fn levels_of_detail(
        &self,
        mesh: Unknown<'_>,
        output_dir: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let mesh = path_arg("mesh", mesh)?;
            let output_dir = path_arg("outputDir", output_dir)?;
            let request: LodRequest = self::options("options", options)?;
            Ok((self.services()?, mesh, output_dir, request))
        })();
        Job::run(prepared, |(services, mesh, output_dir, request)| {
            let options = pipeline_options(&services.registry, request.set.as_deref())?;
            let lod_options = options.lod.lod_options()?;
            Error::require_path(&mesh, "mesh")?;
            let mesh = read_mesh_file(&mesh)?;
            files::create_folder(&output_dir)?;
            let levels = build_lods(&mesh, &lod_options)?;
            let paths = write_levels(&levels, &output_dir)?;
            Json::of(&level_files(&levels, &paths))
        })
    }

    /// Writes levels of detail as model files, as `kai recon export` does: `input` is a
    /// folder of `levelsOfDetail` (`lod0.ply`, ...) or one mesh file. Level 0 goes to
    /// `output`, whose extension (`.glb`, `.ply` or `.obj`) chooses the format, and level
    /// N next to it as `NAME.lodN.EXT`. GLB files use `options.compression` (`meshopt` or
    /// `none`), by default the set's `recon.export.compression`. Resolves to each level's
    /// file and counts.
    #[napi(
        ts_args_type = "input: string, output: string, options?: ExportModelOptions",
        ts_return_type = "Promise<LevelFile[]>"
    )]
    pub fn export_model(
        &self,
        input: Unknown<'_>,
        output: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> AsyncTask<Job<Json>> {
        let prepared = (|| {
            let input = path_arg("input", input)?;
            let output = path_arg("output", output)?;
            files::ModelFormat::from_path(&output)?;
            let request: ExportRequest = self::options("options", options)?;
            // An unknown name fails before the set is resolved, whatever the set specifies.
            compression(request.compression.as_deref(), Compression::Meshopt)?;
            Ok((self.services()?, input, output, request))
        })();
        Job::run(prepared, |(services, input, output, request)| {
            let options = pipeline_options(&services.registry, request.set.as_deref())?;
            let compression = compression(request.compression.as_deref(), options.compression)?;
            Error::require_path(&input, "levels of detail")?;
            let levels = read_levels(&input)?;
            let paths = export_levels(&levels, &output, compression)?;
            Json::of(&level_files(&levels, &paths))
        })
    }
}

/// A mesh as JS receives it: `positions` (Float32Array, x y z per vertex), `normals`
/// (Float32Array or null), `colors` (Uint8Array, r g b per vertex, or null) and
/// `triangles` (Uint32Array, three vertex indices per triangle).
#[derive(Debug)]
pub struct MeshOutcome(TriangleMesh);

impl Outcome for MeshOutcome {
    type Js = Unknown<'static>;

    fn into_js(self, env: &Env) -> napi::Result<Self::Js> {
        let TriangleMesh {
            positions,
            normals,
            colors,
            triangles,
        } = self.0;
        let flat = |rows: Vec<[f32; 3]>| rows.into_iter().flatten().collect::<Vec<_>>();
        let mut object = Object::new(env)?;
        object.set_named_property("positions", Float32Array::new(flat(positions)))?;
        match normals {
            Some(normals) => {
                object.set_named_property("normals", Float32Array::new(flat(normals)))?
            }
            None => object.set_named_property("normals", Null)?,
        }
        match colors {
            Some(colors) => object.set_named_property(
                "colors",
                Uint8Array::new(colors.into_iter().flatten().collect()),
            )?,
            None => object.set_named_property("colors", Null)?,
        }
        object.set_named_property(
            "triangles",
            Uint32Array::new(triangles.into_iter().flatten().collect()),
        )?;
        Ok(object.to_unknown())
    }
}

/// Groups the values of typed array `name` into rows of three.
fn rows<T: Copy>(name: &str, values: &[T], unit: &str) -> kai_core::Result<Vec<[T; 3]>> {
    if !values.len().is_multiple_of(3) {
        return Err(Error::invalid(
            name,
            format!("has {} values, not a multiple of 3 ({unit})", values.len()),
        ));
    }
    Ok(values.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
}

/// Reads property `key` of `object`, or None when it is absent, undefined or null.
fn optional_property<'env>(
    object: &Object<'env>,
    key: &str,
) -> kai_core::Result<Option<Unknown<'env>>> {
    let value: Option<Unknown<'env>> = object
        .get(key)
        .map_err(|err| Error::invalid(format!("mesh.{key}"), err.reason.clone()))?;
    Ok(value.filter(|v| !matches!(v.get_type(), Ok(ValueType::Undefined | ValueType::Null))))
}

/// Reads typed array property `key` of the mesh argument, absent when undefined or null.
fn typed<'env, A: FromNapiValue>(
    object: &Object<'env>,
    key: &str,
    kind: &str,
) -> kai_core::Result<Option<A>> {
    let Some(value) = optional_property(object, key)? else {
        return Ok(None);
    };
    A::from_unknown(value)
        .map(Some)
        .map_err(|_| Error::invalid(format!("mesh.{key}"), format!("must be a {kind}")))
}

/// Reads the mesh argument of `writeMesh`.
fn mesh_from_js(value: Unknown<'_>) -> kai_core::Result<TriangleMesh> {
    if !matches!(value.get_type(), Ok(ValueType::Object)) {
        return Err(Error::invalid(
            "mesh",
            "must be an object with positions, triangles and optional normals and colors",
        ));
    }
    let object =
        Object::from_unknown(value).map_err(|_| Error::invalid("mesh", "must be an object"))?;
    let positions: Float32Array = typed(&object, "positions", "Float32Array")?
        .ok_or_else(|| Error::invalid("mesh.positions", "is missing"))?;
    let triangles: Uint32Array = typed(&object, "triangles", "Uint32Array")?
        .ok_or_else(|| Error::invalid("mesh.triangles", "is missing"))?;
    let normals: Option<Float32Array> = typed(&object, "normals", "Float32Array")?;
    let colors: Option<Uint8Array> = typed(&object, "colors", "Uint8Array")?;
    let mesh = TriangleMesh {
        positions: rows("mesh.positions", &positions, "x y z per vertex")?,
        normals: normals
            .map(|n| rows("mesh.normals", &n, "x y z per vertex"))
            .transpose()?,
        colors: colors
            .map(|c| rows("mesh.colors", &c, "r g b per vertex"))
            .transpose()?,
        triangles: rows("mesh.triangles", &triangles, "three indices per triangle")?,
    };
    mesh.validate()?;
    Ok(mesh)
}

/// Reads a mesh from a `.ply`, `.obj` or `.glb` file (GLB with or without
/// EXT_meshopt_compression). Resolves to `{positions, normals, colors, triangles}` as
/// typed arrays, three values per vertex or triangle; `normals` and `colors` are null
/// when the file has none.
#[napi(ts_args_type = "path: string", ts_return_type = "Promise<MeshArrays>")]
pub fn read_mesh(path: Unknown<'_>) -> AsyncTask<Job<MeshOutcome>> {
    let prepared = path_arg("path", path);
    Job::run(prepared, |path| {
        Error::require_path(&path, "mesh file")?;
        read_mesh_file(&path).map(MeshOutcome)
    })
}

/// Writes a mesh (`{positions, triangles, normals?, colors?}` as `readMesh` returns it) to
/// `path` in the format of its extension (`.ply`, `.obj` or `.glb`). GLB files use
/// `options.compression`, `meshopt` unless given.
#[napi(
    ts_args_type = "mesh: MeshInput, path: string, options?: WriteMeshOptions",
    ts_return_type = "Promise<void>"
)]
pub fn write_mesh(
    mesh: Unknown<'_>,
    path: Unknown<'_>,
    options: Option<Unknown<'_>>,
) -> AsyncTask<Job<()>> {
    let prepared = (|| {
        let path = path_arg("path", path)?;
        files::ModelFormat::from_path(&path)?;
        let request: WriteMeshRequest = self::options("options", options)?;
        let compression = compression(request.compression.as_deref(), Compression::Meshopt)?;
        // The arrays are copied here, on the JS thread, so JS may change them meanwhile.
        let mesh = mesh_from_js(mesh)?;
        Ok((mesh, path, compression))
    })();
    Job::run(prepared, |(mesh, path, compression)| {
        export_levels(std::slice::from_ref(&mesh), &path, compression).map(|_| ())
    })
}
