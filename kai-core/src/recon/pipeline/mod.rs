//! The whole reconstruction, photos to a model a phone can show: screening and structure
//! from motion, dense points by multi-view stereo, point clean-up, Poisson meshing,
//! levels of detail and export. Each stage is a function of its own here, so the
//! `kai recon` subcommands, the reconstruction jobs and [`run`] share them; [`files`]
//! names the files between stages.

pub mod files;
mod options;
mod stages;

pub use options::{CloudOptions, LodSettings, MeshOptions, PipelineOptions};
pub use stages::{
    CleanupCounts, LevelSummary, ModelSummary, clean_points, densify_photos, export_levels,
    mesh_points, read_levels, read_mesh, write_levels,
};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::image::ImageLimits;
use crate::recon::export::PlyFormat;
use crate::recon::mesh::lod::build_lods;
use crate::recon::progress::{Progress, ProgressFn, Stage};
use crate::recon::reconstruction::Reconstruction;
use crate::recon::sfm::{SfmInput, reconstruct};

/// Output paths of [`run`]: the model files, and optionally the intermediate files of
/// each stage.
#[derive(Debug, Clone, Copy)]
pub struct PipelineOutput<'a> {
    /// The model file of level 0 (`.glb`, `.ply` or `.obj`); coarser levels go next to
    /// it (see [`files::level_file`]).
    pub model: &'a Path,
    /// Folder for the sparse model (COLMAP text and `points.ply`), when it is kept.
    pub sparse: Option<&'a Path>,
    /// PLY file for the dense points, when they are kept.
    pub dense: Option<&'a Path>,
    /// PLY file for the mesh before simplification, when it is kept.
    pub mesh: Option<&'a Path>,
    /// Folder for the levels as `lod0.ply`, `lod1.ply`, ..., when they are kept.
    pub lods: Option<&'a Path>,
}

impl<'a> PipelineOutput<'a> {
    /// Writes the model to `model` and keeps nothing else.
    pub fn model(model: &'a Path) -> Self {
        Self {
            model,
            sparse: None,
            dense: None,
            mesh: None,
            lods: None,
        }
    }
}

/// Result of [`run`]: the sparse model, the model counts and the files written.
#[derive(Debug, Clone)]
pub struct PipelineResult {
    /// The sparse model of structure from motion.
    pub reconstruction: Reconstruction,
    /// Counts of the dense points, the mesh and each level, and the files written.
    pub model: ModelSummary,
    /// Every file written, model files first.
    pub files: Vec<PathBuf>,
}

/// Counts of a finished run, for reports and job results: the structure-from-motion
/// counts, and the model's under `model`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PipelineSummary {
    /// Structure from motion.
    #[serde(flatten)]
    pub sparse: crate::recon::ReconstructionSummary,
    /// Dense points, mesh and levels; `null` for jobs of versions that ran structure
    /// from motion only.
    #[serde(default)]
    pub model: Option<ModelSummary>,
}

/// Runs every stage on `inputs` and writes the model files, reporting progress across
/// the whole run.
///
/// # Errors
///
/// [`Error::InvalidInput`] for invalid `options` (checked before any work) or an output
/// whose extension names no model format. Every error of the stages is returned too, such
/// as a capture that cannot be reconstructed, too few dense points for a surface or files
/// that cannot be written.
pub fn run(
    inputs: &[SfmInput],
    options: &PipelineOptions,
    limits: &ImageLimits,
    output: PipelineOutput,
    progress: ProgressFn,
) -> Result<PipelineResult> {
    options.validate()?;
    files::ModelFormat::from_path(output.model)?;
    files::check_output_file(output.model)?;
    let lod_options = options.lod.lod_options()?;
    let mut written = Vec::new();

    let reconstruction = reconstruct(inputs, &options.sfm, limits, progress)?;
    if let Some(sparse) = output.sparse {
        files::create_folder(sparse)?;
        for name in crate::recon::jobs::write_outputs(&reconstruction, sparse)? {
            written.push(sparse.join(name));
        }
    }

    let mut dense = densify_photos(&reconstruction, inputs, &options.dense, limits, progress)?;
    // Meshing the stored precision gives the same mesh as `kai recon mesh dense.ply`.
    dense.round_to_f32();
    if let Some(path) = output.dense {
        dense.write_ply(path, PlyFormat::BinaryLittleEndian)?;
        written.push(path.to_path_buf());
    }

    progress(Progress {
        stage: Stage::Meshing,
        done: 0,
        total: 1,
    });
    let (cleaned, _) = clean_points(&dense, &options.cloud)?;
    let mesh = mesh_points(&cleaned, &options.mesh, Some(progress))?;
    if let Some(path) = output.mesh {
        mesh.write_ply(path, PlyFormat::BinaryLittleEndian)?;
        written.push(path.to_path_buf());
    }

    progress(Progress {
        stage: Stage::Simplification,
        done: 0,
        total: 1,
    });
    let levels = build_lods(&mesh, &lod_options)?;
    if let Some(dir) = output.lods {
        written.extend(write_levels(&levels, dir)?);
    }

    progress(Progress {
        stage: Stage::Export,
        done: 0,
        total: levels.len(),
    });
    let model_files = export_levels(&levels, output.model, options.compression)?;
    progress(Progress {
        stage: Stage::Export,
        done: levels.len(),
        total: levels.len(),
    });
    let model = ModelSummary::new(dense.len(), cleaned.len(), &levels, &model_files);
    let mut files = model_files;
    files.extend(written);
    Ok(PipelineResult {
        reconstruction,
        model,
        files,
    })
}
