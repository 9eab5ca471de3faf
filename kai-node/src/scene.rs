//! `generateScene`: synthetic scenes with known cameras, rendered by kai-core's scene
//! generator, for trying and testing reconstruction without a camera.

use std::path::PathBuf;

use kai_core::recon::synthetic::{SceneOptions, SyntheticScene};
use napi::bindgen_prelude::{AsyncTask, Unknown};
use napi_derive::napi;
use serde::{Deserialize, Serialize};

use crate::convert::from_js;
use crate::job::{Job, Json};
use crate::recon::{ReconstructionOutcome, ReconstructionRecord, write_model};

/// The options of `generateScene`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct SceneRequest {
    images: usize,
    seed: u64,
    width: u32,
    height: u32,
    points: usize,
    arc_degrees: f64,
}

impl Default for SceneRequest {
    fn default() -> Self {
        let scene = SceneOptions::default();
        Self {
            images: scene.images,
            seed: scene.seed,
            width: scene.width,
            height: scene.height,
            points: DEFAULT_GROUND_TRUTH_POINTS,
            arc_degrees: scene.arc_degrees,
        }
    }
}

/// Surface points sampled for a scene's ground truth when the options give no count, as
/// many as `kai recon synth` samples.
const DEFAULT_GROUND_TRUTH_POINTS: usize = 5000;

/// A rendered scene: the ground truth as a reconstruction, and where its files are.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SceneRecord {
    #[serde(flatten)]
    ground_truth: ReconstructionRecord,
    /// The PNG files, in capture order.
    photos: Vec<String>,
    /// The folder of the ground truth's COLMAP text model and points.ply.
    ground_truth_dir: String,
}

/// Renders a synthetic scene with known cameras into `outDir`, as `kai recon synth` does.
/// The `options.images` photos (default 30) of `options.width` x `options.height` pixels
/// (default 640 x 480), drawn from `options.seed` (default 0) on an arc of
/// `options.arcDegrees` around the objects (default 360, a full ring), go into `outDir`
/// as PNGs.
/// The ground truth, with `options.points` sampled surface points (default 5000), goes
/// into `outDir/ground_truth` as a COLMAP text model and points.ply. The same options
/// give the same pixels. Resolves to the ground truth in the shape `reconstruct`
/// resolves to, with the photo paths.
#[napi(
    ts_args_type = "outDir: string, options?: SceneOptions",
    ts_return_type = "Promise<SyntheticScene>"
)]
pub fn generate_scene(
    out_dir: Unknown<'_>,
    options: Option<Unknown<'_>>,
) -> AsyncTask<Job<ReconstructionOutcome>> {
    let prepared = (|| {
        let out_dir: String = from_js("outDir", out_dir)?;
        let request: SceneRequest = match options {
            Some(options) => from_js("options", options)?,
            None => SceneRequest::default(),
        };
        Ok((PathBuf::from(out_dir), request))
    })();
    Job::run(prepared, |(out_dir, request)| {
        let options = SceneOptions {
            images: request.images,
            seed: request.seed,
            width: request.width,
            height: request.height,
            arc_degrees: request.arc_degrees,
            ..SceneOptions::default()
        };
        let scene = SyntheticScene::generate(&options)?;
        let photos = scene.write_images(&out_dir)?;
        let truth = scene.ground_truth(request.points);
        let truth_dir = out_dir.join("ground_truth");
        let files = write_model(&truth, &truth_dir)?;
        ReconstructionOutcome::with_record(&truth, files, |record| {
            Json::of(&SceneRecord {
                ground_truth: record,
                photos: photos.iter().map(|p| p.display().to_string()).collect(),
                ground_truth_dir: truth_dir.display().to_string(),
            })
        })
    })
}
