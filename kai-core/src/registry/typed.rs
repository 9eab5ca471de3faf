//! Typed views of a set's values: the options that recognition and quality assessment
//! take, filled from the `recognition.*` and `quality.*` parameters.

use super::Values;
use crate::error::{Error, Result};
use crate::image::QualityThresholds;
use crate::recognize::RecognizeOptions;

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
}
