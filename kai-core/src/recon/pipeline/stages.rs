//! The model stages after structure from motion, one function each.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use image::RgbImage;
use image::imageops::FilterType;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::files::{self, ModelFormat};
use super::options::{CloudOptions, MeshOptions};
use crate::error::{Error, Result};
use crate::image::ImageLimits;
use crate::recon::cloud::{
    PointCloud, estimate_normals, orient_normals_consistent, statistical_outliers,
    voxel_down_sample,
};
use crate::recon::dense::{DenseOptions, densify};
use crate::recon::export::PlyFormat;
use crate::recon::export::gltf::{Compression, GlbOptions};
use crate::recon::mesh::TriangleMesh;
use crate::recon::mesh::cleanup::{
    remove_non_manifold_edges, remove_small_components, trim_low_density,
};
use crate::recon::mesh::poisson::poisson_reconstruct;
use crate::recon::progress::ProgressFn;
use crate::recon::reconstruction::Reconstruction;
use crate::recon::sfm::{ImageSource, SfmInput};

/// Fewest cleaned points a surface is reconstructed from; below this Poisson has too
/// little to go on and the capture needs more or better photos.
const MIN_SURFACE_POINTS: usize = 100;

/// Runs multi-view stereo on the registered images of `reconstruction`, reading each
/// photo from the input of the same name. Photos are decoded under `limits` one at a
/// time per worker and scaled to the dense resolution at once, so a capture of large
/// photos never has them all in memory at full size.
///
/// # Errors
///
/// [`Error::InvalidInput`] when a registered image has no input of its name or its photo
/// no longer has the size its camera was calibrated at, and the errors of decoding and
/// of [`densify`].
pub fn densify_photos(
    reconstruction: &Reconstruction,
    inputs: &[SfmInput],
    options: &DenseOptions,
    limits: &ImageLimits,
    progress: ProgressFn,
) -> Result<PointCloud> {
    options.validate()?;
    let by_name: HashMap<&str, &SfmInput> = inputs
        .iter()
        .map(|input| (input.name.as_str(), input))
        .collect();
    let mut scaled = reconstruction.clone();
    let images: Vec<(RgbImage, f64)> = reconstruction
        .images
        .par_iter()
        .map(|registered| {
            let input = by_name.get(registered.name.as_str()).ok_or_else(|| {
                Error::invalid(
                    "photos",
                    format!(
                        "no photo named `{}` for this registered image",
                        registered.name
                    ),
                )
            })?;
            let camera = &reconstruction.cameras[registered.camera];
            let photo = decode_input(input, limits)?;
            if photo.dimensions() != (camera.width, camera.height) {
                return Err(Error::invalid(
                    format!("photo `{}`", registered.name),
                    format!(
                        "is {}x{} px but its camera was calibrated at {}x{} px",
                        photo.width(),
                        photo.height(),
                        camera.width,
                        camera.height
                    ),
                ));
            }
            Ok(downscale(photo, options.max_image_size))
        })
        .collect::<Result<_>>()?;
    // Every image of one camera has the camera's size, so they share one scale.
    for (registered, (_, scale)) in reconstruction.images.iter().zip(&images) {
        scaled.cameras[registered.camera] =
            scale_camera(&reconstruction.cameras[registered.camera], *scale);
    }
    for (image, (_, scale)) in scaled.images.iter_mut().zip(&images) {
        for keypoint in &mut image.keypoints {
            *keypoint *= *scale;
        }
    }
    let pixels: Vec<RgbImage> = images.into_iter().map(|(image, _)| image).collect();
    densify(&scaled, &pixels, options, Some(progress))
}

fn decode_input(input: &SfmInput, limits: &ImageLimits) -> Result<RgbImage> {
    match &input.source {
        ImageSource::Path(path) => {
            crate::image::decode(&crate::image::read_file(path, limits)?, limits)
        }
        ImageSource::Bytes(bytes) => crate::image::decode(bytes, limits),
    }
}

/// Scales `photo` so its longer side is at most `max_side`; returns it with the factor.
fn downscale(photo: RgbImage, max_side: u32) -> (RgbImage, f64) {
    let (width, height) = photo.dimensions();
    let longer = width.max(height);
    if longer <= max_side {
        return (photo, 1.0);
    }
    let scale = f64::from(max_side) / f64::from(longer);
    let new_width = ((f64::from(width) * scale).round() as u32).max(1);
    let new_height = ((f64::from(height) * scale).round() as u32).max(1);
    let resized = image::imageops::resize(&photo, new_width, new_height, FilterType::Triangle);
    // The exact factor per axis differs from `scale` by the rounding; the intrinsics
    // follow the width, and the height rounding is under half a pixel.
    (resized, f64::from(new_width) / f64::from(width))
}

fn scale_camera(camera: &crate::recon::Camera, scale: f64) -> crate::recon::Camera {
    let mut scaled = *camera;
    scaled.width = ((f64::from(camera.width) * scale).round() as u32).max(1);
    scaled.height = ((f64::from(camera.height) * scale).round() as u32).max(1);
    scaled.fx *= scale;
    scaled.fy *= scale;
    scaled.cx *= scale;
    scaled.cy *= scale;
    scaled
}

/// Counts of the clean-up steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupCounts {
    /// Points before clean-up.
    pub input: usize,
    /// Points after voxel down-sampling.
    pub down_sampled: usize,
    /// Points after outlier removal.
    pub kept: usize,
}

/// Down-samples `cloud` on a voxel grid scaled to its extent, removes statistical
/// outliers and estimates normals, keeping the sign of normals the cloud already has
/// (dense points face their cameras) and orienting them consistently otherwise.
///
/// # Errors
///
/// [`Error::InvalidInput`] for invalid options or a cloud with non-finite values, and
/// when fewer points than a surface needs are left.
pub fn clean_points(
    cloud: &PointCloud,
    options: &CloudOptions,
) -> Result<(PointCloud, CleanupCounts)> {
    options.validate()?;
    cloud.validate()?;

    let input = cloud.len();
    let mut points = match cloud.bounding_box() {
        Some((low, high)) if options.voxel_size > 0.0 && (high - low).norm() > 0.0 => {
            voxel_down_sample(cloud, options.voxel_size * (high - low).norm())?
        }
        _ => cloud.clone(),
    };
    let down_sampled = points.len();

    if points.len() > options.outlier_neighbors {
        let inliers = statistical_outliers(
            &points,
            options.outlier_neighbors,
            options.outlier_std_ratio,
        )?;
        points = points.select(&inliers);
    }
    if points.len() < MIN_SURFACE_POINTS {
        return Err(Error::invalid(
            "dense points",
            format!(
                "{} of {input} points are left after clean-up, fewer than the \
                 {MIN_SURFACE_POINTS} a surface needs; take more photos with more overlap \
                 and texture",
                points.len()
            ),
        ));
    }

    let had_normals = points.normals.is_some();
    estimate_normals(&mut points, options.normal_neighbors)?;
    if !had_normals {
        orient_normals_consistent(&mut points, options.normal_neighbors)?;
    }

    let kept = points.len();
    Ok((
        points,
        CleanupCounts {
            input,
            down_sampled,
            kept,
        },
    ))
}

/// Reconstructs a surface from oriented points by screened Poisson, trims the parts no
/// points support, and removes non-manifold edges and small pieces.
///
/// # Errors
///
/// The errors of [`poisson_reconstruct`] (no normals, bad settings), and
/// [`Error::InvalidInput`] when nothing is left after trimming.
pub fn mesh_points(
    cloud: &PointCloud,
    options: &MeshOptions,
    progress: Option<ProgressFn>,
) -> Result<TriangleMesh> {
    options.validate()?;
    let surface = poisson_reconstruct(cloud, &options.poisson, progress)?;
    let mut mesh = if options.density_trim > 0.0 {
        trim_low_density(&surface, options.density_trim)
    } else {
        surface.mesh
    };
    remove_non_manifold_edges(&mut mesh);
    remove_small_components(&mut mesh, options.min_component_share);
    mesh.remove_unreferenced_vertices();
    if mesh.triangles.is_empty() {
        return Err(Error::invalid(
            "mesh",
            format!(
                "no surface is left after trimming the {} lowest-density share; lower \
                 recon.mesh.density_trim or give more points",
                options.density_trim
            ),
        ));
    }
    mesh.compute_vertex_normals();
    Ok(mesh)
}

/// Writes each level to its file (see [`files::level_file`]) in the format `output`'s
/// extension names; GLB files use `compression`. Returns the files in level order.
///
/// # Errors
///
/// [`Error::InvalidInput`] for an unknown extension or no levels, and the writers'
/// errors.
pub fn export_levels(
    levels: &[TriangleMesh],
    output: &Path,
    compression: Compression,
) -> Result<Vec<PathBuf>> {
    let format = ModelFormat::from_path(output)?;
    if levels.is_empty() {
        return Err(Error::invalid("levels", "no mesh to export"));
    }
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        files::create_folder(parent)?;
    }
    let written = levels
        .iter()
        .enumerate()
        .map(|(level, mesh)| {
            let path = files::level_file(output, level);
            match format {
                ModelFormat::Glb => mesh.write_glb(&path, &GlbOptions { compression })?,
                ModelFormat::Ply => mesh.write_ply(&path, PlyFormat::BinaryLittleEndian)?,
                ModelFormat::Obj => mesh.write_obj(&path)?,
            }
            Ok(path)
        })
        .collect::<Result<Vec<_>>>()?;
    remove_stale_levels(levels.len(), |level| {
        let path = files::level_file(output, level);
        let library = (format == ModelFormat::Obj).then(|| path.with_extension("mtl"));
        [Some(path), library].into_iter().flatten().collect()
    })?;
    Ok(written)
}

/// Writes each level to `dir` as binary PLY (`lod0.ply`, `lod1.ply`, ...), creating the
/// folder. Returns the files in level order.
///
/// # Errors
///
/// The writer's errors, and [`Error::Io`] when the folder cannot be created.
pub fn write_levels(levels: &[TriangleMesh], dir: &Path) -> Result<Vec<PathBuf>> {
    files::create_folder(dir)?;
    let written = levels
        .iter()
        .enumerate()
        .map(|(level, mesh)| {
            let path = files::lod_file(dir, level);
            mesh.write_ply(&path, PlyFormat::BinaryLittleEndian)?;
            Ok(path)
        })
        .collect::<Result<Vec<_>>>()?;
    remove_stale_levels(levels.len(), |level| vec![files::lod_file(dir, level)])?;
    Ok(written)
}

/// Removes the files of levels `count`, `count + 1`, ... up to the first level without a
/// file. An earlier run with more levels leaves them behind, and readers of the levels
/// would take them for part of this run.
fn remove_stale_levels(count: usize, files_of: impl Fn(usize) -> Vec<PathBuf>) -> Result<()> {
    for level in count.. {
        let stale: Vec<PathBuf> = files_of(level)
            .into_iter()
            .filter(|p| p.is_file())
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        for path in stale {
            std::fs::remove_file(&path).map_err(|e| Error::io("cannot remove", &path, e))?;
            tracing::info!(path = %path.display(), "removed a level of detail left by an earlier run");
        }
    }
    Ok(())
}

/// Reads the levels in a `kai recon lod` folder (`lod0.ply`, `lod1.ply`, ... up to the
/// first missing one), or a single mesh file as one level.
///
/// # Errors
///
/// [`Error::NotFound`] when `input` is missing or a folder without `lod0.ply`, and the
/// reader's errors.
pub fn read_levels(input: &Path) -> Result<Vec<TriangleMesh>> {
    if input.is_file() {
        return Ok(vec![read_mesh(input)?]);
    }
    if !files::lod_file(input, 0).is_file() {
        return Err(Error::NotFound {
            what: "levels of detail",
            name: input.display().to_string(),
            hint: " (give a mesh file or a folder that `kai recon lod` wrote, with lod0.ply)"
                .into(),
        });
    }
    let mut levels = Vec::new();
    while files::lod_file(input, levels.len()).is_file() {
        levels.push(TriangleMesh::read_ply(&files::lod_file(
            input,
            levels.len(),
        ))?);
    }
    Ok(levels)
}

/// Reads a mesh from a `.ply`, `.obj` or `.glb` file.
///
/// # Errors
///
/// [`Error::InvalidInput`] for another extension, and the readers' errors.
pub fn read_mesh(path: &Path) -> Result<TriangleMesh> {
    match ModelFormat::from_path(path) {
        Ok(ModelFormat::Ply) => TriangleMesh::read_ply(path),
        Ok(ModelFormat::Obj) => TriangleMesh::read_obj(path),
        Ok(ModelFormat::Glb) => TriangleMesh::read_glb(path),
        Err(_) => Err(Error::invalid(
            "mesh",
            format!("{} is not a .ply, .obj or .glb file", path.display()),
        )),
    }
}

/// Counts of one level of detail and its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LevelSummary {
    /// The level's file name.
    pub file: String,
    /// Vertices of the level.
    pub vertices: usize,
    /// Triangles of the level.
    pub triangles: usize,
}

/// Counts of the model stages of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelSummary {
    /// Points fused from the depth maps.
    pub dense_points: usize,
    /// Points left after clean-up, which the surface was reconstructed from.
    pub surface_points: usize,
    /// Every level of detail, the full mesh first.
    pub levels: Vec<LevelSummary>,
}

impl ModelSummary {
    /// Summarises a run from its counts, its levels and their files.
    pub fn new(
        dense_points: usize,
        surface_points: usize,
        levels: &[TriangleMesh],
        files: &[PathBuf],
    ) -> Self {
        Self {
            dense_points,
            surface_points,
            levels: levels
                .iter()
                .zip(files)
                .map(|(mesh, file)| LevelSummary {
                    file: file
                        .file_name()
                        .map(|name| name.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    vertices: mesh.positions.len(),
                    triangles: mesh.triangles.len(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tetrahedron() -> TriangleMesh {
        TriangleMesh {
            positions: vec![
                [0.0, 0.0, 0.0],
                [1.0, 0.0, 0.0],
                [0.0, 1.0, 0.0],
                [0.0, 0.0, 1.0],
            ],
            normals: None,
            colors: None,
            triangles: vec![[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]],
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_levels_removes_stale_levels() {
        let dir = tempfile::tempdir().unwrap();
        let lod = dir.path().join("lod");
        write_levels(&vec![tetrahedron(); 4], &lod).unwrap();
        std::fs::write(lod.join("notes.txt"), "kept").unwrap();
        let written = write_levels(&vec![tetrahedron(); 2], &lod).unwrap();
        assert_eq!(written, [lod.join("lod0.ply"), lod.join("lod1.ply")]);
        assert_eq!(names(&lod), ["lod0.ply", "lod1.ply", "notes.txt"]);
        assert_eq!(read_levels(&lod).unwrap().len(), 2);
    }

    #[test]
    fn writers_name_a_file_in_the_output_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "kept").unwrap();
        let levels = vec![tetrahedron()];
        for err in [
            write_levels(&levels, &file.join("lod")).unwrap_err(),
            write_levels(&levels, &file).unwrap_err(),
            export_levels(
                &levels,
                &file.join("out").join("model.glb"),
                Compression::None,
            )
            .unwrap_err(),
        ] {
            let message = err.to_string();
            assert!(matches!(err, Error::InvalidInput { .. }), "{message}");
            assert!(
                message.contains("file is a file, not a folder"),
                "{message}"
            );
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "kept");
    }

    #[test]
    fn export_levels_removes_stale_levels() {
        let dir = tempfile::tempdir().unwrap();
        let levels = vec![tetrahedron(); 3];
        let glb = dir.path().join("model.glb");
        export_levels(&levels, &glb, Compression::Meshopt).unwrap();
        export_levels(&levels[..1], &glb, Compression::None).unwrap();
        assert_eq!(names(dir.path()), ["model.glb"]);

        let obj = dir.path().join("obj").join("model.obj");
        export_levels(&levels, &obj, Compression::None).unwrap();
        assert_eq!(
            names(obj.parent().unwrap()).len(),
            6,
            "three OBJ files and their MTL files"
        );
        export_levels(&levels[..2], &obj, Compression::None).unwrap();
        assert_eq!(
            names(obj.parent().unwrap()),
            ["model.lod1.mtl", "model.lod1.obj", "model.mtl", "model.obj"]
        );
    }
}
