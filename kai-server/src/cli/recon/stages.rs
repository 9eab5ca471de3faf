//! `kai recon screen|dense|mesh|lod|export`: the stages around structure from motion,
//! each reading the previous stage's files and writing its own.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use kai_core::Error;
use kai_core::image::ImageLimits;
use kai_core::recon::Stage;
use kai_core::recon::cloud::PointCloud;
use kai_core::recon::export::gltf::Compression;
use kai_core::recon::export::{PlyFormat, read_colmap_text};
use kai_core::recon::mesh::lod::build_lods;
use kai_core::recon::pipeline::{
    ModelSummary, clean_points, densify_photos, export_levels, files, mesh_points, read_levels,
    read_mesh, write_levels,
};
use kai_core::recon::sfm::screen_photos;
use serde::Serialize;

use super::{
    StageBar, TierArg, display_name, list_files, photo_inputs, prepare_file, prepare_folder,
};
use crate::cli::{emit, print_json};

/// Arguments of `kai recon screen`.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 when the report was written, even if photos were rejected (the report and \
the summary give each reason). 3 for a missing folder or parameter set.")]
pub struct ScreenArgs {
    /// Folder of photos (JPEG, PNG, WebP, BMP, TIFF); subfolders are not read.
    photos: PathBuf,
    /// The report to write (JSON: `accepted` photos with size and EXIF focal length in
    /// pixels, `rejected` photos with the reason), read by `kai recon sfm --screening`.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    #[command(flatten)]
    tier: TierArg,
    /// Print the report as one line of JSON as well.
    #[arg(long)]
    json: bool,
}

pub(super) fn run_screen(args: &ScreenArgs) -> Result<(), Error> {
    let tier = args.tier.resolve()?;
    let limits = ImageLimits::from_env()?;
    let inputs = photo_inputs(&args.photos)?;
    prepare_file(&args.output)?;
    let bar = StageBar::new(Stage::Screening, Stage::Screening);
    let report = screen_photos(&inputs, &tier.options.sfm, &limits, &|p| bar.report(p));
    bar.finish();
    let report = report?;
    report.write(&args.output)?;
    if args.json {
        return print_json(&report);
    }
    emit(format_args!(
        "{} of {} photos passed screening with parameter set {} version {}",
        report.accepted.len(),
        inputs.len(),
        tier.name,
        tier.version
    ))?;
    for photo in &report.rejected {
        emit(format_args!("  {}: {}", photo.name, photo.reason))?;
    }
    emit(format_args!("wrote {}", args.output.display()))
}

/// Arguments of `kai recon dense`.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 when the points were written. 2 for invalid input (a photo whose size \
differs from its calibration, settings out of range). 3 for a missing folder or set.")]
pub struct DenseArgs {
    /// Folder of the sparse model that `kai recon sfm` wrote (cameras.txt, images.txt,
    /// points3D.txt).
    sparse: PathBuf,
    /// Folder of the photos the sparse model was reconstructed from.
    #[arg(long, value_name = "DIR")]
    images: PathBuf,
    /// The dense point cloud to write: binary PLY with positions, normals and colours.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    #[command(flatten)]
    tier: TierArg,
    /// Print the counts as one line of JSON.
    #[arg(long)]
    json: bool,
}

/// The `--json` output of the point and mesh stages.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StageReport {
    output: String,
    set: String,
    set_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    points: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vertices: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    triangles: Option<usize>,
}

pub(super) fn run_dense(args: &DenseArgs) -> Result<(), Error> {
    let tier = args.tier.resolve()?;
    let limits = ImageLimits::from_env()?;
    Error::require_path(&args.sparse, "sparse model folder")?;
    let reconstruction = read_colmap_text(&args.sparse)?;
    let inputs = photo_inputs(&args.images)?;
    prepare_file(&args.output)?;

    let bar = StageBar::new(Stage::DepthMaps, Stage::Fusion);
    let cloud = densify_photos(
        &reconstruction,
        &inputs,
        &tier.options.dense,
        &limits,
        &|p| bar.report(p),
    );
    bar.finish();
    let cloud = cloud?;
    cloud.write_ply(&args.output, PlyFormat::BinaryLittleEndian)?;

    if args.json {
        return print_json(&StageReport {
            output: args.output.display().to_string(),
            set: tier.name,
            set_version: tier.version,
            points: Some(cloud.len()),
            vertices: None,
            triangles: None,
        });
    }
    emit(format_args!(
        "fused {} dense points from {} registered photos with parameter set {} version {}",
        cloud.len(),
        reconstruction.images.len(),
        tier.name,
        tier.version
    ))?;
    emit(format_args!("wrote {}", args.output.display()))
}

/// Arguments of `kai recon mesh`.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 when the mesh was written. 2 for invalid input (a malformed PLY, too few \
points for a surface). 3 for a missing file or parameter set.")]
pub struct MeshArgs {
    /// Point cloud to mesh (PLY, such as the dense.ply of `kai recon dense`); normals in
    /// it keep their sign, and are estimated when missing.
    points: PathBuf,
    /// The mesh to write: binary PLY with positions, normals, colours and faces (or .obj,
    /// .glb by extension).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    #[command(flatten)]
    tier: TierArg,
    /// Print the counts as one line of JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run_mesh(args: &MeshArgs) -> Result<(), Error> {
    let tier = args.tier.resolve()?;
    Error::require_path(&args.points, "point cloud")?;
    files::ModelFormat::from_path(&args.output)?;
    let cloud = PointCloud::read_ply(&args.points)?;
    prepare_file(&args.output)?;

    let bar = StageBar::new(Stage::Meshing, Stage::Meshing);
    let (cleaned, counts) = clean_points(&cloud, &tier.options.cloud)?;
    let mesh = mesh_points(&cleaned, &tier.options.mesh, Some(&|p| bar.report(p)));
    bar.finish();
    let mesh = mesh?;
    export_levels(
        std::slice::from_ref(&mesh),
        &args.output,
        tier.options.compression,
    )?;

    if args.json {
        return print_json(&StageReport {
            output: args.output.display().to_string(),
            set: tier.name,
            set_version: tier.version,
            points: Some(counts.kept),
            vertices: Some(mesh.positions.len()),
            triangles: Some(mesh.triangles.len()),
        });
    }
    emit(format_args!(
        "meshed {} of {} points ({} after down-sampling) into {} triangles, {} vertices, \
         with parameter set {} version {}",
        counts.kept,
        counts.input,
        counts.down_sampled,
        mesh.triangles.len(),
        mesh.positions.len(),
        tier.name,
        tier.version
    ))?;
    emit(format_args!("wrote {}", args.output.display()))
}

/// Arguments of `kai recon lod`.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 when the levels were written. 2 for invalid input (a malformed mesh file). \
3 for a missing file or parameter set.")]
pub struct LodArgs {
    /// The mesh to simplify (.ply, .obj or .glb), such as the mesh.ply of `kai recon mesh`.
    mesh: PathBuf,
    /// Folder that receives lod0.ply (the full mesh), lod1.ply, ... as binary PLY;
    /// created if missing.
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
    #[command(flatten)]
    tier: TierArg,
    /// Print the levels as one line of JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run_lod(args: &LodArgs) -> Result<(), Error> {
    let tier = args.tier.resolve()?;
    let lod_options = tier.options.lod.lod_options()?;
    Error::require_path(&args.mesh, "mesh")?;
    let mesh = read_mesh(&args.mesh)?;
    prepare_folder(&args.output)?;
    let levels = build_lods(&mesh, &lod_options)?;
    let written = write_levels(&levels, &args.output)?;
    report_levels(&levels, &written, &tier.name, tier.version, args.json)
}

/// Mesh compression of GLB files, as `--compression` names it.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum CompressionArg {
    /// EXT_meshopt_compression: small files that viewers decode quickly.
    Meshopt,
    /// Plain vertex and index buffers.
    None,
}

/// Arguments of `kai recon export`.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 when every level was written. 2 for invalid input (an unknown extension, a \
malformed mesh file). 3 for a missing input or parameter set.")]
pub struct ExportArgs {
    /// A `kai recon lod` folder (lod0.ply, lod1.ply, ...) or one mesh file (.ply, .obj,
    /// .glb).
    input: PathBuf,
    /// The model file of level 0; its extension (.glb, .ply or .obj) chooses the format,
    /// and each coarser level N goes next to it as NAME.lodN.EXT.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Mesh compression of GLB files [default: the set's recon.export.compression].
    #[arg(long, value_enum)]
    compression: Option<CompressionArg>,
    #[command(flatten)]
    tier: TierArg,
    /// Print the files as one line of JSON.
    #[arg(long)]
    json: bool,
}

pub(super) fn run_export(args: &ExportArgs) -> Result<(), Error> {
    let tier = args.tier.resolve()?;
    files::ModelFormat::from_path(&args.output)?;
    Error::require_path(&args.input, "levels of detail")?;
    let levels = read_levels(&args.input)?;
    prepare_file(&args.output)?;
    let compression = match args.compression {
        Some(CompressionArg::Meshopt) => Compression::Meshopt,
        Some(CompressionArg::None) => Compression::None,
        None => tier.options.compression,
    };
    let written = export_levels(&levels, &args.output, compression)?;
    report_levels(&levels, &written, &tier.name, tier.version, args.json)
}

/// Prints each level's file and counts, or the same as JSON.
fn report_levels(
    levels: &[kai_core::recon::TriangleMesh],
    written: &[PathBuf],
    set: &str,
    version: u32,
    json: bool,
) -> Result<(), Error> {
    let points = levels.first().map_or(0, |mesh| mesh.positions.len());
    let summary = ModelSummary::new(points, points, levels, written);
    if json {
        return print_json(&summary.levels);
    }
    for (level, file) in summary.levels.iter().zip(written) {
        emit(format_args!(
            "{}: {} triangles, {} vertices",
            display_name(file),
            level.triangles,
            level.vertices
        ))?;
    }
    emit(format_args!(
        "wrote {} with parameter set {set} version {version}",
        list_files(written)
    ))
}
