//! Typed views of a set's values: the options that recognition, quality assessment and
//! reconstruction take, filled from the `recognition.*`, `quality.*` and `recon.*`
//! parameters.

use super::Values;
use crate::error::{Error, Result};
use crate::image::QualityThresholds;
use crate::recognize::RecognizeOptions;
use crate::recon::CameraModel;
use crate::recon::bundle::LossFunction;
use crate::recon::sfm::SfmOptions;
use crate::recon::{
    dense::DenseOptions,
    export::Compression,
    mesh::PoissonOptions,
    pipeline::{CloudOptions, LodSettings, MeshOptions, PipelineOptions},
};

fn float(values: &Values, name: &str, default: f32) -> Result<f32> {
    match values.get(name) {
        None => Ok(default),
        Some(value) => value
            .as_f64()
            .map(|v| v as f32)
            .ok_or_else(|| wrong(name, "a number")),
    }
}

fn whole(values: &Values, name: &str, default: u32) -> Result<u32> {
    match values.get(name) {
        None => Ok(default),
        Some(value) => value
            .as_i64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| wrong(name, "a whole number from 0 to 4294967295")),
    }
}

fn double(values: &Values, name: &str, default: f64) -> Result<f64> {
    match values.get(name) {
        None => Ok(default),
        Some(value) => value.as_f64().ok_or_else(|| wrong(name, "a number")),
    }
}

fn count(values: &Values, name: &str, default: usize) -> Result<usize> {
    match values.get(name) {
        None => Ok(default),
        Some(value) => value
            .as_i64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| wrong(name, "a whole number of 0 or more")),
    }
}

fn flag(values: &Values, name: &str, default: bool) -> Result<bool> {
    match values.get(name) {
        None => Ok(default),
        Some(value) => value.as_bool().ok_or_else(|| wrong(name, "true or false")),
    }
}

fn choice<'v>(values: &'v Values, name: &str) -> Option<&'v str> {
    values.get(name).and_then(|value| value.as_str())
}

fn wrong(name: &str, expected: &str) -> Error {
    Error::invalid(format!("parameter {name}"), format!("must be {expected}"))
}

/// Returns recognition options from a set's `recognition.*` values; parameters the set
/// lacks keep [`RecognizeOptions::default`].
///
/// # Errors
///
/// Returns [`Error::InvalidInput`] naming a parameter whose value has the wrong type.
pub fn recognize_options(values: &Values) -> Result<RecognizeOptions> {
    let default = RecognizeOptions::default();
    Ok(RecognizeOptions {
        top_k: whole(values, "recognition.top_k", default.top_k as u32)? as usize,
        hint: None,
        hint_weight: float(values, "recognition.hint_weight", default.hint_weight)?,
        min_resolution: whole(values, "recognition.min_resolution", default.min_resolution)?,
        unknown_threshold: float(
            values,
            "recognition.unknown_threshold",
            default.unknown_threshold,
        )?,
    })
}

/// Returns quality thresholds from a set's `quality.*` values; parameters the set lacks
/// keep [`QualityThresholds::default`].
///
/// # Errors
///
/// Returns [`Error::InvalidInput`] naming a parameter whose value has the wrong type.
pub fn quality_thresholds(values: &Values) -> Result<QualityThresholds> {
    let d = QualityThresholds::default();
    Ok(QualityThresholds {
        min_sharpness: float(values, "quality.min_sharpness", d.min_sharpness)?,
        shadow_level: float(values, "quality.shadow_level", d.shadow_level)?,
        max_shadows_clipped: float(values, "quality.max_shadows_clipped", d.max_shadows_clipped)?,
        highlight_level: float(values, "quality.highlight_level", d.highlight_level)?,
        max_highlights_clipped: float(
            values,
            "quality.max_highlights_clipped",
            d.max_highlights_clipped,
        )?,
        min_mean_brightness: float(values, "quality.min_mean_brightness", d.min_mean_brightness)?,
        max_mean_brightness: float(values, "quality.max_mean_brightness", d.max_mean_brightness)?,
        min_contrast: float(values, "quality.min_contrast", d.min_contrast)?,
        max_noise: float(values, "quality.max_noise", d.max_noise)?,
        min_short_side: whole(values, "quality.min_short_side", d.min_short_side)?,
        min_megapixels: float(values, "quality.min_megapixels", d.min_megapixels)?,
    })
}

/// Returns structure-from-motion options from a set's `recon.*` values; parameters the set
/// lacks keep [`SfmOptions::default`]. With `recon.screen_quality` on (the default), photos
/// are screened with the set's `quality.*` thresholds.
///
/// # Errors
///
/// Returns [`Error::InvalidInput`] naming a parameter whose value has the wrong type or is
/// out of range.
pub fn sfm_options(values: &Values) -> Result<SfmOptions> {
    let d = SfmOptions::default();
    let ba_loss = match choice(values, "recon.ba_loss") {
        None => d.ba_loss,
        Some("trivial") => LossFunction::Trivial,
        Some("huber") => LossFunction::Huber,
        Some("cauchy") => LossFunction::Cauchy,
        Some(_) => return Err(wrong("recon.ba_loss", "trivial, huber or cauchy")),
    };
    let camera_model = match choice(values, "recon.camera_model") {
        None => d.camera_model,
        Some("pinhole") => CameraModel::Pinhole,
        Some("opencv") => CameraModel::OpenCv,
        Some(_) => return Err(wrong("recon.camera_model", "pinhole or opencv")),
    };
    let quality = if flag(values, "recon.screen_quality", true)? {
        Some(quality_thresholds(values)?)
    } else {
        None
    };
    let seed = values
        .get("recon.seed")
        .map(|value| {
            value
                .as_i64()
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| wrong("recon.seed", "a whole number of 0 or more"))
        })
        .transpose()?
        .unwrap_or(d.seed);
    let options = SfmOptions {
        max_image_size: whole(values, "recon.max_image_size", d.max_image_size)?,
        max_features: count(values, "recon.max_features", d.max_features)?,
        match_ratio: float(values, "recon.match_ratio", d.match_ratio)?,
        min_pair_inliers: count(values, "recon.min_pair_inliers", d.min_pair_inliers)?,
        ransac_threshold_px: double(values, "recon.ransac_threshold_px", d.ransac_threshold_px)?,
        ransac_confidence: double(values, "recon.ransac_confidence", d.ransac_confidence)?,
        ransac_max_iterations: count(
            values,
            "recon.ransac_max_iterations",
            d.ransac_max_iterations,
        )?,
        pnp_threshold_px: double(values, "recon.pnp_threshold_px", d.pnp_threshold_px)?,
        min_registration_inliers: count(
            values,
            "recon.min_registration_inliers",
            d.min_registration_inliers,
        )?,
        min_triangulation_angle: double(
            values,
            "recon.min_triangulation_angle",
            d.min_triangulation_angle,
        )?,
        max_reprojection_error: double(
            values,
            "recon.max_reprojection_error",
            d.max_reprojection_error,
        )?,
        ba_max_iterations: count(values, "recon.ba_max_iterations", d.ba_max_iterations)?,
        ba_loss,
        ba_loss_scale_px: double(values, "recon.ba_loss_scale_px", d.ba_loss_scale_px)?,
        refine_intrinsics: flag(values, "recon.refine_intrinsics", d.refine_intrinsics)?,
        local_ba_images: count(values, "recon.local_ba_images", d.local_ba_images)?,
        camera_model,
        seed,
        quality,
    };
    options.validate()?;
    Ok(options)
}

/// Maps the `recon.*` values of a parameter set to the options of the whole
/// reconstruction pipeline; parameters the set lacks take the code's defaults.
///
/// # Errors
///
/// [`Error::InvalidInput`] naming the parameter whose value has the wrong type or range.
pub fn pipeline_options(values: &Values) -> Result<PipelineOptions> {
    let d = PipelineOptions::default();
    let compression = match choice(values, "recon.export.compression") {
        None => d.compression,
        Some("meshopt") => Compression::Meshopt,
        Some("none") => Compression::None,
        Some(_) => return Err(wrong("recon.export.compression", "meshopt or none")),
    };
    let dense = DenseOptions {
        max_image_size: whole(values, "recon.dense.max_image_size", d.dense.max_image_size)?,
        neighbors: count(values, "recon.dense.neighbors", d.dense.neighbors)?,
        depth_planes: count(values, "recon.dense.depth_planes", d.dense.depth_planes)?,
        window_radius: count(values, "recon.dense.window_radius", d.dense.window_radius)?,
        min_ncc: double(values, "recon.dense.min_ncc", d.dense.min_ncc)?,
        min_consistent_views: count(
            values,
            "recon.dense.min_consistent_views",
            d.dense.min_consistent_views,
        )?,
        ..d.dense
    };
    let cloud = CloudOptions {
        voxel_size: double(values, "recon.cloud.voxel_size", d.cloud.voxel_size)?,
        outlier_neighbors: count(
            values,
            "recon.cloud.outlier_neighbors",
            d.cloud.outlier_neighbors,
        )?,
        outlier_std_ratio: double(
            values,
            "recon.cloud.outlier_std_ratio",
            d.cloud.outlier_std_ratio,
        )?,
        normal_neighbors: count(
            values,
            "recon.cloud.normal_neighbors",
            d.cloud.normal_neighbors,
        )?,
    };
    let mesh = MeshOptions {
        poisson: PoissonOptions {
            depth: whole(values, "recon.mesh.depth", d.mesh.poisson.depth)?,
            screening: double(values, "recon.mesh.screening", d.mesh.poisson.screening)?,
            ..d.mesh.poisson.clone()
        },
        density_trim: double(values, "recon.mesh.density_trim", d.mesh.density_trim)?,
        min_component_share: double(
            values,
            "recon.mesh.min_component_share",
            d.mesh.min_component_share,
        )?,
    };
    let lod = LodSettings {
        levels: count(values, "recon.lod.levels", d.lod.levels)?,
        ratio: double(values, "recon.lod.ratio", d.lod.ratio)?,
        target_error: double(values, "recon.lod.target_error", d.lod.target_error)?,
    };
    let sfm = sfm_options(values)?;
    // Dense stereo shares the SfM seed, so one `recon.seed` repeats the whole run.
    let dense = DenseOptions {
        seed: sfm.seed,
        ..dense
    };
    let options = PipelineOptions {
        sfm,
        dense,
        cloud,
        mesh,
        lod,
        compression,
    };
    options.validate()?;
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ParamValue;

    #[test]
    fn values_fill_options_and_defaults_fill_gaps() {
        let values = Values::from([
            ("recognition.top_k".to_owned(), ParamValue::Int(9)),
            ("quality.max_noise".to_owned(), ParamValue::Float(4.5)),
        ]);
        let options = recognize_options(&values).unwrap();
        assert_eq!(options.top_k, 9);
        assert_eq!(options.hint_weight, RecognizeOptions::default().hint_weight);
        let thresholds = quality_thresholds(&values).unwrap();
        assert_eq!(thresholds.max_noise, 4.5);
        assert_eq!(
            thresholds.min_sharpness,
            QualityThresholds::default().min_sharpness
        );
    }

    #[test]
    fn wrong_types_name_the_parameter() {
        let values = Values::from([("recognition.top_k".to_owned(), ParamValue::Bool(true))]);
        let err = recognize_options(&values).unwrap_err();
        assert!(err.to_string().contains("recognition.top_k"), "{err}");
    }

    #[test]
    fn sfm_options_map_enums_and_reject_bad_values() {
        let values = Values::from([
            ("recon.ba_loss".to_owned(), ParamValue::Text("huber".into())),
            (
                "recon.camera_model".to_owned(),
                ParamValue::Text("pinhole".into()),
            ),
            ("recon.max_features".to_owned(), ParamValue::Int(6000)),
            ("recon.screen_quality".to_owned(), ParamValue::Bool(false)),
        ]);
        let options = sfm_options(&values).unwrap();
        assert_eq!(options.ba_loss, LossFunction::Huber);
        assert_eq!(options.camera_model, CameraModel::Pinhole);
        assert_eq!(options.max_features, 6000);
        assert_eq!(options.quality, None);
        assert_eq!(options.seed, SfmOptions::default().seed);
        assert!(sfm_options(&Values::new()).unwrap().quality.is_some());

        for (name, value) in [
            ("recon.ba_loss", ParamValue::Text("tukey".into())),
            ("recon.max_features", ParamValue::Int(-3)),
            ("recon.refine_intrinsics", ParamValue::Int(1)),
            ("recon.seed", ParamValue::Float(0.5)),
        ] {
            let values = Values::from([(name.to_owned(), value)]);
            let err = sfm_options(&values).unwrap_err();
            assert!(err.to_string().contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn pipeline_options_map_and_reject_bad_values() {
        let values = Values::from([
            (
                "recon.export.compression".to_owned(),
                ParamValue::Text("none".into()),
            ),
            ("recon.mesh.depth".to_owned(), ParamValue::Int(9)),
            ("recon.seed".to_owned(), ParamValue::Int(7)),
        ]);
        let options = pipeline_options(&values).unwrap();
        assert_eq!(options.compression, Compression::None);
        assert_eq!(options.mesh.poisson.depth, 9);
        assert_eq!(options.dense.seed, 7);
        // An empty set resolves to the code's defaults (screening thresholds included,
        // which SfmOptions::default leaves out).
        let empty = pipeline_options(&Values::new()).unwrap();
        assert_eq!(
            PipelineOptions {
                sfm: SfmOptions::default(),
                ..empty
            },
            PipelineOptions::default()
        );

        for (name, value, expected) in [
            (
                "recon.export.compression",
                ParamValue::Text("zip".into()),
                "recon.export.compression",
            ),
            (
                "recon.lod.levels",
                ParamValue::Text("3".into()),
                "recon.lod.levels",
            ),
            ("recon.lod.levels", ParamValue::Int(0), "levels"),
            (
                "recon.cloud.voxel_size",
                ParamValue::Float(0.5),
                "voxel_size",
            ),
            (
                "recon.dense.depth_planes",
                ParamValue::Int(-1),
                "recon.dense.depth_planes",
            ),
        ] {
            let values = Values::from([(name.to_owned(), value)]);
            let err = pipeline_options(&values).unwrap_err();
            assert!(err.to_string().contains(expected), "{name}: {err}");
        }
    }
}
