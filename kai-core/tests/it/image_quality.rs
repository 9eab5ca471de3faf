//! Image quality assessment on the committed photos and on degraded copies of them.

use std::path::Path;

use kai_core::ErrorKind;
use kai_core::image::{
    ImageLimits, QualityIssue, QualityReport, QualityThresholds, RgbImage, assess, open,
};

const PHOTOS: [&str; 6] = [
    "chelsea.jpg",
    "coffee.jpg",
    "astronaut.jpg",
    "rocket.jpg",
    "camera.png",
    "brick.png",
];

/// An edit of the default thresholds, for tables of cases.
type Change = fn(&mut QualityThresholds);

fn photo(name: &str) -> RgbImage {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/photos")
        .join(name);
    open(&path, &ImageLimits::default()).unwrap()
}

fn assess_default(image: &RgbImage) -> QualityReport {
    assess(image, &QualityThresholds::default()).unwrap()
}

/// Maps every channel value through `f`, rounding and clipping to 0–255.
fn map_values(image: &RgbImage, f: impl Fn(f32) -> f32) -> RgbImage {
    let mut out = image.clone();
    for value in out.iter_mut() {
        *value = f(f32::from(*value)).round().clamp(0.0, 255.0) as u8;
    }
    out
}

fn blurred(image: &RgbImage, sigma: f32) -> RgbImage {
    ::image::imageops::blur(image, sigma)
}

fn scaled(image: &RgbImage, factor: f32) -> RgbImage {
    let width = ((image.width() as f32 * factor).round() as u32).max(1);
    let height = ((image.height() as f32 * factor).round() as u32).max(1);
    ::image::imageops::resize(image, width, height, ::image::imageops::Triangle)
}

/// A seeded source of standard normal samples: xorshift64* uniforms turned normal by the
/// Box–Muller transform, so every run adds the same noise.
struct GaussianNoise {
    state: u64,
}

impl GaussianNoise {
    fn new(seed: u64) -> Self {
        GaussianNoise { state: seed.max(1) }
    }

    /// Returns a uniform sample in (0, 1].
    fn uniform(&mut self) -> f64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let bits = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        (bits as f64 + 1.0) / (1u64 << 53) as f64
    }

    fn standard_normal(&mut self) -> f32 {
        let radius = (-2.0 * self.uniform().ln()).sqrt();
        let angle = std::f64::consts::TAU * self.uniform();
        (radius * angle.cos()) as f32
    }
}

fn with_noise(image: &RgbImage, sigma: f32, seed: u64) -> RgbImage {
    let mut noise = GaussianNoise::new(seed);
    let mut out = image.clone();
    for value in out.iter_mut() {
        let noisy = f32::from(*value) + sigma * noise.standard_normal();
        *value = noisy.round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// Checks a degradation series whose first image is the original photo: the score never
/// rises, ends strictly lower, and the last image fails with `expected` among its reasons.
fn check_series(label: &str, images: &[RgbImage], expected: QualityIssue) {
    let reports: Vec<QualityReport> = images.iter().map(assess_default).collect();
    let scores: Vec<f32> = reports.iter().map(|r| r.score).collect();
    for (step, pair) in reports.windows(2).enumerate() {
        assert!(
            pair[1].score <= pair[0].score,
            "{label}: score rose at step {} ({scores:?}):\n{:?}\n{:?}",
            step + 1,
            pair[0],
            pair[1]
        );
    }
    let (first, last) = (&reports[0], &reports[reports.len() - 1]);
    assert!(first.passed, "{label}: original failed: {first:?}");
    assert!(last.score < first.score, "{label}: {scores:?}");
    assert!(
        !last.passed,
        "{label}: strongest degradation passed: {last:?}"
    );
    assert!(
        last.reasons.contains(&expected),
        "{label}: expected {expected} in {last:?}"
    );
    for report in &reports {
        assert_eq!(report.passed, report.score >= 0.5, "{label}: {report:?}");
    }
}

#[test]
fn committed_photos_pass() {
    for name in PHOTOS {
        let image = photo(name);
        let report = assess_default(&image);
        assert!(report.passed, "{name}: {report:?}");
        assert!(report.reasons.is_empty(), "{name}: {report:?}");
        assert!(report.score >= 0.5, "{name}: {report:?}");
        assert!(report.score <= 1.0, "{name}: {report:?}");
        assert_eq!((report.width, report.height), image.dimensions(), "{name}");
    }
}

#[test]
fn blur_series_ends_blurry() {
    for name in PHOTOS {
        let original = photo(name);
        let mut series = vec![original.clone()];
        series.extend([1.0, 2.0, 4.0, 8.0].map(|sigma| blurred(&original, sigma)));
        check_series(&format!("{name} blurred"), &series, QualityIssue::Blurry);
    }
}

#[test]
fn darkening_series_ends_underexposed() {
    for name in PHOTOS {
        let original = photo(name);
        let series: Vec<RgbImage> = [1.0, 0.7, 0.45, 0.25, 0.1]
            .iter()
            .map(|&factor| map_values(&original, |v| v * factor))
            .collect();
        check_series(
            &format!("{name} darkened"),
            &series,
            QualityIssue::Underexposed,
        );
    }
}

#[test]
fn brightening_series_ends_overexposed() {
    for name in PHOTOS {
        let original = photo(name);
        let series: Vec<RgbImage> = [1.0, 1.3, 1.7, 2.2, 3.0]
            .iter()
            // Gain plus an offset, so the shadows brighten too and highlights clip.
            .map(|&gain| map_values(&original, |v| v * gain + 40.0 * (gain - 1.0)))
            .collect();
        check_series(
            &format!("{name} brightened"),
            &series,
            QualityIssue::Overexposed,
        );
    }
}

#[test]
fn downscaling_series_ends_low_resolution() {
    for name in PHOTOS {
        let original = photo(name);
        let mut series = vec![original.clone()];
        series.extend([0.8, 0.6, 0.4, 0.2].map(|factor| scaled(&original, factor)));
        check_series(
            &format!("{name} downscaled"),
            &series,
            QualityIssue::LowResolution,
        );
    }
}

#[test]
fn added_noise_raises_estimate_until_noisy() {
    for name in ["coffee.jpg", "chelsea.jpg"] {
        let original = photo(name);
        let mut series = vec![original.clone()];
        series.extend([4.0, 8.0, 16.0, 32.0].map(|sigma| with_noise(&original, sigma, 7)));
        let reports: Vec<QualityReport> = series.iter().map(assess_default).collect();
        let estimates: Vec<f32> = reports.iter().map(|r| r.noise).collect();
        assert!(
            estimates.windows(2).all(|pair| pair[1] > pair[0]),
            "{name}: {estimates:?}"
        );
        let last = &reports[reports.len() - 1];
        assert!(
            last.reasons.contains(&QualityIssue::Noisy),
            "{name}: {last:?}"
        );
        assert!(!last.passed, "{name}: {last:?}");
        assert!(last.score < reports[0].score, "{name}: {reports:?}");
    }
}

#[test]
fn noise_estimate_tracks_added_sigma_on_flat_image() {
    // On a flat image the only structure is the added noise, so Immerkær's estimate should
    // recover its standard deviation in luma. Noise drawn independently per channel reaches
    // luma scaled by the root of the summed squared Rec. 601 weights.
    let luma_gain = (0.299f32.powi(2) + 0.587f32.powi(2) + 0.114f32.powi(2)).sqrt();
    let flat = RgbImage::from_pixel(512, 512, ::image::Rgb([128; 3]));
    for sigma in [5.0f32, 10.0, 20.0] {
        let expected = sigma * luma_gain;
        let report = assess_default(&with_noise(&flat, sigma, 11));
        assert!(
            (report.noise - expected).abs() < 0.05 * expected,
            "sigma {sigma}: estimate {}, expected {expected}",
            report.noise
        );
    }
}

#[test]
fn flat_grey_is_low_contrast() {
    let report = assess_default(&RgbImage::from_pixel(640, 480, ::image::Rgb([128; 3])));
    assert_eq!(report.contrast, 0.0);
    assert!(
        report.reasons.contains(&QualityIssue::LowContrast),
        "{report:?}"
    );
    assert!(!report.passed);
}

#[test]
fn stricter_thresholds_fail_good_photo() {
    let image = photo("coffee.jpg");
    let cases: [(Change, QualityIssue); 4] = [
        (|t| t.min_short_side = 1000, QualityIssue::LowResolution),
        (|t| t.min_megapixels = 1.0, QualityIssue::LowResolution),
        (|t| t.min_sharpness = 1e5, QualityIssue::Blurry),
        (|t| t.max_noise = 1.0, QualityIssue::Noisy),
    ];
    for (change, expected) in cases {
        let mut thresholds = QualityThresholds::default();
        change(&mut thresholds);
        let report = assess(&image, &thresholds).unwrap();
        assert_eq!(report.reasons, [expected], "{thresholds:?}");
        assert!(report.score < 0.5, "{report:?}");
    }
}

#[test]
fn invalid_thresholds_name_field_and_value() {
    let cases: [(Change, &str, &str); 8] = [
        (|t| t.min_sharpness = f32::NAN, "min_sharpness", "NaN"),
        (|t| t.max_noise = -1.0, "max_noise", "-1"),
        (
            |t| t.max_shadows_clipped = 1.5,
            "max_shadows_clipped",
            "1.5",
        ),
        (|t| t.highlight_level = 300.0, "highlight_level", "300"),
        (|t| t.min_contrast = f32::INFINITY, "min_contrast", "inf"),
        (|t| t.min_megapixels = -0.5, "min_megapixels", "-0.5"),
        (|t| t.shadow_level = 250.0, "shadow_level", "250"),
        (
            |t| {
                t.min_mean_brightness = 0.8;
                t.max_mean_brightness = 0.7;
            },
            "min_mean_brightness",
            "0.8",
        ),
    ];
    let image = photo("chelsea.jpg");
    for (change, field, value) in cases {
        let mut thresholds = QualityThresholds::default();
        change(&mut thresholds);
        let err = thresholds.validate().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        let message = err.to_string();
        assert!(message.contains(field), "{message}");
        assert!(message.contains(value), "{message}");
        assert!(assess(&image, &thresholds).is_err(), "{field}");
    }
    assert!(QualityThresholds::default().validate().is_ok());
}

#[test]
fn report_serializes_camel_case() {
    let report = assess_default(&photo("rocket.jpg"));
    let json = serde_json::to_value(&report).unwrap();
    for key in [
        "width",
        "height",
        "sharpness",
        "shadowsClipped",
        "highlightsClipped",
        "meanBrightness",
        "contrast",
        "noise",
        "score",
        "reasons",
        "passed",
    ] {
        assert!(json.get(key).is_some(), "{key} missing in {json}");
    }
    let degraded = assess_default(&blurred(&photo("rocket.jpg"), 8.0));
    let json = serde_json::to_value(&degraded).unwrap();
    assert_eq!(json["reasons"][0], "blurry");
}
