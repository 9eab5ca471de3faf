//! `kai reconstruct`: every stage in one run, photos to model files.

use std::path::PathBuf;

use clap::Args;
use kai_core::Error;
use kai_core::image::ImageLimits;
use kai_core::recon::Stage;
use kai_core::recon::pipeline::{PipelineOutput, PipelineSummary, files, run};
use serde::Serialize;

use super::sfm::print_summary;
use super::{StageBar, TierArg, list_files, photo_inputs, prepare_file, prepare_folder};
use crate::cli::{emit, print_json};

/// Arguments of `kai reconstruct`.
#[derive(Debug, Args)]
#[command(after_help = "\
Runs quality screening, structure from motion, dense multi-view stereo, Poisson meshing, \
levels of detail and export, the stages `kai recon screen|sfm|dense|mesh|lod|export` run \
one at a time. With --work, the intermediate files of every stage are kept there under \
the names those commands use (sparse/, dense.ply, mesh.ply, lod/).

Exit status: 0 when the model was written, even if some photos could not be registered (the \
summary lists them with the reason). 2 for invalid input, such as a folder without photos \
or a capture that cannot be reconstructed (the message names the cause). 3 for a missing \
folder or parameter set.")]
pub struct ReconstructArgs {
    /// Folder of photos (JPEG, PNG, WebP, BMP, TIFF); subfolders are not read.
    photos: PathBuf,
    /// The model file of the full mesh. Its extension (.glb, .ply or .obj) chooses the
    /// format. Each coarser level N goes next to it as NAME.lodN.EXT.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Folder that keeps the intermediate files of every stage; created if missing.
    #[arg(long, value_name = "DIR")]
    work: Option<PathBuf>,
    #[command(flatten)]
    tier: TierArg,
    /// Print the summary as one line of JSON.
    #[arg(long)]
    json: bool,
}

/// The `--json` output of `kai reconstruct`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReconstructReport<'a> {
    files: Vec<String>,
    set: &'a str,
    set_version: u32,
    #[serde(flatten)]
    summary: PipelineSummary,
}

/// Runs `kai reconstruct`.
pub fn run_reconstruct(args: &ReconstructArgs) -> Result<(), Error> {
    let tier = args.tier.resolve()?;
    let limits = ImageLimits::from_env()?;
    let inputs = photo_inputs(&args.photos)?;
    files::ModelFormat::from_path(&args.output)?;
    prepare_file(&args.output)?;
    if let Some(work) = &args.work {
        prepare_folder(work)?;
    }

    let bar = StageBar::new(Stage::Screening, Stage::Export);
    let work = args.work.as_deref();
    let sparse = work.map(|dir| dir.join(files::SPARSE_DIR));
    let dense = work.map(|dir| dir.join(files::DENSE_FILE));
    let mesh = work.map(|dir| dir.join(files::MESH_FILE));
    let lods = work.map(|dir| dir.join(files::LOD_DIR));
    let output = PipelineOutput {
        model: &args.output,
        sparse: sparse.as_deref(),
        dense: dense.as_deref(),
        mesh: mesh.as_deref(),
        lods: lods.as_deref(),
    };
    let result = run(&inputs, &tier.options, &limits, output, &|p| bar.report(p));
    bar.finish();
    let result = result?;

    let sparse = result.reconstruction.summary();
    let model = result.model;
    if args.json {
        return print_json(&ReconstructReport {
            files: result
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect(),
            set: &tier.name,
            set_version: tier.version,
            summary: PipelineSummary {
                sparse,
                model: Some(model),
            },
        });
    }
    print_summary(&sparse, &tier.name, tier.version)?;
    emit(format_args!(
        "{} dense points, {} after clean-up",
        model.dense_points, model.surface_points
    ))?;
    for level in &model.levels {
        emit(format_args!(
            "{}: {} triangles, {} vertices",
            level.file, level.triangles, level.vertices
        ))?;
    }
    let models = model.levels.len();
    emit(format_args!(
        "wrote {}",
        list_files(&result.files[..models])
    ))?;
    if let Some(work) = &args.work {
        emit(format_args!(
            "kept {} stage files in {} ({}/, {}, {}, {}/)",
            result.files.len() - models,
            work.display(),
            files::SPARSE_DIR,
            files::DENSE_FILE,
            files::MESH_FILE,
            files::LOD_DIR
        ))?;
    }
    Ok(())
}
