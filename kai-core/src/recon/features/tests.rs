//! Detection and matching tests on seeded procedural textures and the fixture photos.

use std::f32::consts::{PI, TAU};
use std::time::Instant;

use super::test_scene::{Similarity, Texture};
use super::*;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;

fn reference_image(seed: u64, width: u32, height: u32) -> GrayImage {
    Texture::random(seed, width as f32, height as f32, 0.0).render(
        width,
        height,
        &Similarity::identity(),
        1.0,
        0.0,
    )
}

/// Returns `a - b` wrapped to (-π, π].
fn angle_difference(a: f32, b: f32) -> f32 {
    let difference = (a - b).rem_euclid(TAU);
    if difference > PI {
        difference - TAU
    } else {
        difference
    }
}

fn median(mut values: Vec<f32>) -> f32 {
    values.sort_by(f32::total_cmp);
    values[values.len() / 2]
}

#[test]
fn similarity_and_lighting_change_are_matched() {
    let centre = (WIDTH as f32 / 2.0, HEIGHT as f32 / 2.0);
    let transform = Similarity {
        scale: 0.7,
        angle: 30f32.to_radians(),
        centre_from: centre,
        centre_to: centre,
    };
    // The margin covers the part of the scene that the shrunken, rotated view shows
    // beyond the reference image's borders.
    let texture = Texture::random(1, WIDTH as f32, HEIGHT as f32, 300.0);
    let reference = texture.render(WIDTH, HEIGHT, &Similarity::identity(), 1.0, 0.0);
    let warped = texture.render(WIDTH, HEIGHT, &transform, 0.6, 30.0);

    let options = SiftOptions::default();
    let features_a = detect(&reference, &options).unwrap();
    let features_b = detect(&warped, &options).unwrap();
    let matches = match_features(&features_a, &features_b, &MatchOptions::default()).unwrap();

    let mut correct = 0;
    let mut scale_ratios = Vec::new();
    let mut rotations = Vec::new();
    for found in &matches {
        let a = features_a.keypoints[found.a as usize];
        let b = features_b.keypoints[found.b as usize];
        let (expected_x, expected_y) = transform.apply((a.x, a.y));
        if (expected_x - b.x).hypot(expected_y - b.y) <= 2.0 {
            correct += 1;
            scale_ratios.push(b.scale / a.scale);
            rotations.push(angle_difference(b.orientation, a.orientation));
        }
    }
    let inlier_ratio = correct as f32 / matches.len() as f32;
    println!(
        "features {} / {}, matches {}, correct {correct} ({:.1}%)",
        features_a.len(),
        features_b.len(),
        matches.len(),
        100.0 * inlier_ratio
    );
    assert!(correct >= 100, "{correct} correct matches");
    assert!(inlier_ratio >= 0.6, "inlier ratio {inlier_ratio}");
    let scale_ratio = median(scale_ratios);
    assert!(
        (scale_ratio - 0.7).abs() < 0.05,
        "median scale ratio {scale_ratio}"
    );
    let rotation = median(rotations).to_degrees();
    assert!(
        (rotation - 30.0).abs() < 3.0,
        "median rotation {rotation} degrees"
    );
}

#[test]
fn photo_rotation_scale_and_lighting_are_matched() {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos");
    for name in ["brick.png", "camera.png"] {
        let photo = image::open(folder.join(name)).unwrap().to_luma8();
        let (width, height) = (photo.width() as f32, photo.height() as f32);
        // Rotate a quarter turn clockwise, shrink with a triangle filter and darken.
        let rotated = image::imageops::rotate90(&photo);
        let (new_width, new_height) = ((0.6 * height).round() as u32, (0.6 * width).round() as u32);
        let mut changed = image::imageops::resize(
            &rotated,
            new_width,
            new_height,
            image::imageops::FilterType::Triangle,
        );
        changed
            .pixels_mut()
            .for_each(|pixel| pixel.0[0] = (0.6 * pixel.0[0] as f32 + 30.0).round() as u8);
        // A clockwise quarter turn maps (x, y) to (height - y, x), then each axis scales.
        let scale_x = new_width as f32 / height;
        let scale_y = new_height as f32 / width;
        let expected = |x: f32, y: f32| (scale_x * (height - y), scale_y * x);

        let options = SiftOptions::default();
        let features_a = detect(&photo, &options).unwrap();
        let features_b = detect(&changed, &options).unwrap();
        let matches = match_features(&features_a, &features_b, &MatchOptions::default()).unwrap();
        let correct = matches
            .iter()
            .filter(|found| {
                let a = features_a.keypoints[found.a as usize];
                let b = features_b.keypoints[found.b as usize];
                let (expected_x, expected_y) = expected(a.x, a.y);
                (expected_x - b.x).hypot(expected_y - b.y) <= 2.0
            })
            .count();
        let inlier_ratio = correct as f32 / matches.len() as f32;
        println!(
            "{name}: features {} / {}, matches {}, correct {correct} ({:.1}%)",
            features_a.len(),
            features_b.len(),
            matches.len(),
            100.0 * inlier_ratio
        );
        assert!(correct >= 100, "{name}: {correct} correct matches");
        assert!(inlier_ratio >= 0.6, "{name}: inlier ratio {inlier_ratio}");
    }
}

#[test]
fn flat_image_gives_no_features() {
    for value in [0u8, 128, 255] {
        let image = GrayImage::from_pixel(200, 150, image::Luma([value]));
        let features = detect(&image, &SiftOptions::default()).unwrap();
        assert!(
            features.is_empty(),
            "value {value}: {} features",
            features.len()
        );
    }
}

#[test]
fn detection_repeats_exactly() {
    let image = reference_image(2, 320, 240);
    let first = detect(&image, &SiftOptions::default()).unwrap();
    let second = detect(&image, &SiftOptions::default()).unwrap();
    assert!(first.len() > 100, "{} features", first.len());
    assert_eq!(first, second);
}

#[test]
fn detection_ignores_thread_count() {
    let image = reference_image(9, 320, 240);
    let parallel = detect(&image, &SiftOptions::default()).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let serial = pool.install(|| detect(&image, &SiftOptions::default()).unwrap());
    assert!(!parallel.is_empty());
    assert_eq!(parallel, serial);
}

#[test]
fn keypoints_lie_inside_image_with_valid_fields() {
    let image = reference_image(3, 300, 200);
    let features = detect(&image, &SiftOptions::default()).unwrap();
    assert_eq!(features.keypoints.len(), features.descriptors.len());
    for keypoint in &features.keypoints {
        assert!((0.0..=300.0).contains(&keypoint.x), "{keypoint:?}");
        assert!((0.0..=200.0).contains(&keypoint.y), "{keypoint:?}");
        assert!(keypoint.scale > 0.5, "{keypoint:?}");
        assert!((0.0..TAU).contains(&keypoint.orientation), "{keypoint:?}");
    }
}

#[test]
fn max_features_keeps_strongest() {
    let image = reference_image(4, 320, 240);
    let all = detect(&image, &SiftOptions::default()).unwrap();
    let options = SiftOptions {
        max_features: 50,
        ..SiftOptions::default()
    };
    let limited = detect(&image, &options).unwrap();
    assert_eq!(limited.len(), 50);
    assert_eq!(limited.keypoints[..], all.keypoints[..50]);
    assert_eq!(limited.descriptors[..], all.descriptors[..50]);
}

#[test]
fn first_octave_zero_finds_fewer_small_features() {
    let image = reference_image(5, 320, 240);
    let doubled = detect(&image, &SiftOptions::default()).unwrap();
    let options = SiftOptions {
        first_octave: 0,
        ..SiftOptions::default()
    };
    let native = detect(&image, &options).unwrap();
    assert!(!native.is_empty());
    assert!(
        native.len() < doubled.len(),
        "{} vs {}",
        native.len(),
        doubled.len()
    );
    let smallest = native
        .keypoints
        .iter()
        .map(|k| k.scale)
        .fold(f32::INFINITY, f32::min);
    assert!(smallest >= 1.6 * 0.99, "smallest scale {smallest}");
}

#[test]
fn tiny_image_is_rejected_with_size() {
    for (width, height) in [(0, 0), (8, 8), (100, 15)] {
        let image = GrayImage::new(width, height);
        let error = detect(&image, &SiftOptions::default()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&format!("{width}x{height}")), "{message}");
    }
}

#[test]
fn invalid_luma_is_rejected() {
    let short = detect_luma(20, 20, &[0.5; 399], &SiftOptions::default()).unwrap_err();
    assert!(short.to_string().contains("399"), "{short}");
    let mut values = vec![0.5; 400];
    values[17] = f32::NAN;
    let nan = detect_luma(20, 20, &values, &SiftOptions::default()).unwrap_err();
    assert!(nan.to_string().contains("index 17"), "{nan}");
}

#[test]
fn invalid_options_are_rejected() {
    let cases = [
        (
            "max_features",
            SiftOptions {
                max_features: 0,
                ..SiftOptions::default()
            },
        ),
        (
            "first_octave",
            SiftOptions {
                first_octave: 2,
                ..SiftOptions::default()
            },
        ),
        (
            "levels_per_octave",
            SiftOptions {
                levels_per_octave: 0,
                ..SiftOptions::default()
            },
        ),
        (
            "sigma",
            SiftOptions {
                sigma: f32::NAN,
                ..SiftOptions::default()
            },
        ),
        (
            "contrast_threshold",
            SiftOptions {
                contrast_threshold: -1.0,
                ..SiftOptions::default()
            },
        ),
        (
            "edge_threshold",
            SiftOptions {
                edge_threshold: 1.0,
                ..SiftOptions::default()
            },
        ),
        (
            "max_orientations",
            SiftOptions {
                max_orientations: 0,
                ..SiftOptions::default()
            },
        ),
    ];
    let image = GrayImage::new(32, 32);
    for (name, options) in cases {
        let error = detect(&image, &options).unwrap_err();
        assert!(error.to_string().contains(name), "{name}: {error}");
    }
}

/// Returns the CPU time this process has used, all threads together, in seconds, from
/// Linux's `/proc/self/stat` at its usual 100 ticks per second; NaN where that is missing.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields 14 and 15 (user and system ticks) follow the parenthesised command name.
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// Runs `work` three times and returns its result with the shortest wall time and the
/// CPU time of that run, in seconds.
fn time_best_of_three<T>(mut work: impl FnMut() -> T) -> (T, f64, f64) {
    let mut best: Option<(T, f64, f64)> = None;
    for _ in 0..3 {
        let cpu_start = process_cpu_seconds();
        let start = Instant::now();
        let result = work();
        let wall = start.elapsed().as_secs_f64();
        let cpu = process_cpu_seconds() - cpu_start;
        if best
            .as_ref()
            .is_none_or(|(_, best_wall, _)| wall < *best_wall)
        {
            best = Some((result, wall, cpu));
        }
    }
    best.expect("three runs")
}

/// Prints detection and matching times (best wall time of three runs, and that run's CPU
/// time); run with
/// `cargo test -p kai-core --lib recon::features::tests::timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing report, not a check"]
fn timing() {
    println!("rayon threads: {}", rayon::current_num_threads());
    for (width, height) in [(640, 480), (1600, 1200)] {
        let image = reference_image(6, width, height);
        for first_octave in [-1, 0] {
            let options = SiftOptions {
                first_octave,
                ..SiftOptions::default()
            };
            let (features, wall, cpu) = time_best_of_three(|| detect(&image, &options).unwrap());
            println!(
                "detect {width}x{height}, first octave {first_octave}: {} features, \
                 {wall:.3} s wall, {cpu:.2} s CPU",
                features.len()
            );
        }
    }
    let image_a = reference_image(7, 1600, 1200);
    let image_b = reference_image(8, 1600, 1200);
    let options = SiftOptions {
        max_features: 4000,
        ..SiftOptions::default()
    };
    let a = detect(&image_a, &options).unwrap();
    let b = detect(&image_b, &options).unwrap();
    let (matches, wall, cpu) =
        time_best_of_three(|| match_features(&a, &b, &MatchOptions::default()).unwrap());
    println!(
        "match {} x {}: {} matches, {wall:.3} s wall, {cpu:.2} s CPU",
        a.len(),
        b.len(),
        matches.len()
    );
}
