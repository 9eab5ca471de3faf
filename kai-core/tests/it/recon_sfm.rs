//! Incremental structure from motion on rendered scenes with known cameras.

use std::io::Cursor;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use image::RgbImage;
use kai_core::ErrorKind;
use kai_core::image::{ImageLimits, QualityThresholds};
use kai_core::recon::sfm::{SfmInput, SfmOptions, reconstruct, umeyama};
use kai_core::recon::synthetic::{SceneOptions, SyntheticScene};
use kai_core::recon::{Progress, Reconstruction, Stage};
use nalgebra::Vector3;

fn png_bytes(image: &RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    bytes
}

fn inputs(scene: &SyntheticScene) -> Vec<SfmInput> {
    scene
        .images
        .iter()
        .zip(&scene.names)
        .map(|(image, name)| SfmInput::from_bytes(name.clone(), png_bytes(image)))
        .collect()
}

fn no_progress(_: Progress) {}

fn run(inputs: &[SfmInput], options: &SfmOptions) -> kai_core::Result<Reconstruction> {
    reconstruct(inputs, options, &ImageLimits::default(), &no_progress)
}

/// The error of a run that should fail; a model is summarised, not printed whole.
fn expect_error(result: kai_core::Result<Reconstruction>) -> kai_core::Error {
    match result {
        Ok(reconstruction) => panic!("expected an error, got {:?}", reconstruction.summary()),
        Err(err) => err,
    }
}

/// The default 30-image scene, its inputs and the reconstruction with default options,
/// computed once for the tests that share it.
struct DefaultRun {
    scene: SyntheticScene,
    inputs: Vec<SfmInput>,
    reconstruction: Reconstruction,
    seconds: f64,
}

fn default_run() -> &'static DefaultRun {
    static RUN: OnceLock<DefaultRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let scene = SyntheticScene::generate(&SceneOptions::default()).unwrap();
        let inputs = inputs(&scene);
        let start = Instant::now();
        let stage_starts: Mutex<Vec<(Stage, f64)>> = Mutex::new(Vec::new());
        let record = |progress: Progress| {
            let mut starts = stage_starts.lock().unwrap();
            if starts
                .last()
                .is_none_or(|(stage, _)| *stage != progress.stage)
            {
                starts.push((progress.stage, start.elapsed().as_secs_f64()));
            }
        };
        let reconstruction = reconstruct(
            &inputs,
            &SfmOptions::default(),
            &ImageLimits::default(),
            &record,
        )
        .unwrap();
        let seconds = start.elapsed().as_secs_f64();
        let starts = stage_starts.into_inner().unwrap();
        for (index, (stage, began)) in starts.iter().enumerate() {
            let ended = starts.get(index + 1).map_or(seconds, |(_, next)| *next);
            eprintln!("stage {:<12} {:7.2} s", stage.as_str(), ended - began);
        }
        DefaultRun {
            scene,
            inputs,
            reconstruction,
            seconds,
        }
    })
}

/// Errors of a reconstruction against ground truth after similarity alignment of the
/// camera centres.
struct PoseErrors {
    max_rotation_deg: f64,
    median_position: f64,
    scene_size: f64,
}

fn pose_errors(scene: &SyntheticScene, reconstruction: &Reconstruction) -> PoseErrors {
    let mut estimated = Vec::new();
    let mut truth = Vec::new();
    let mut pairs = Vec::new();
    for image in &reconstruction.images {
        let index = scene.names.iter().position(|n| *n == image.name).unwrap();
        estimated.push(image.pose.center());
        truth.push(scene.poses[index].center());
        pairs.push((image.pose, scene.poses[index]));
    }

    let similarity = umeyama(&estimated, &truth).unwrap();
    let mut position_errors: Vec<f64> = estimated
        .iter()
        .zip(&truth)
        .map(|(e, t)| (similarity.transform_point(e) - t).norm())
        .collect();
    position_errors.sort_by(f64::total_cmp);
    let max_rotation_deg = pairs
        .iter()
        .map(|(estimate, truth)| similarity.transform_pose(estimate).rotation_angle_to(truth))
        .fold(0.0, f64::max);

    // Scene size: the diagonal of the bounding box of the true camera centres.
    let mut low = Vector3::repeat(f64::INFINITY);
    let mut high = Vector3::repeat(f64::NEG_INFINITY);
    for center in &truth {
        low = low.inf(center);
        high = high.sup(center);
    }
    PoseErrors {
        max_rotation_deg,
        median_position: position_errors[position_errors.len() / 2],
        scene_size: (high - low).norm(),
    }
}

#[test]
fn sfm_registers_every_synthetic_image() {
    let run = default_run();
    let reconstruction = &run.reconstruction;
    let summary = reconstruction.summary();
    eprintln!(
        "30-image scene: {:.2} s, {} registered, {} points, track length {:.2}, mean error {:.3} px, unregistered {:?}",
        run.seconds,
        summary.registered_images,
        summary.points,
        summary.mean_track_length,
        summary.mean_reprojection_error,
        summary.unregistered
    );
    assert_eq!(summary.registered_images, 30, "{:?}", summary.unregistered);
    assert!(summary.unregistered.is_empty());
    assert!(summary.points > 1000, "{} points", summary.points);
}

#[test]
fn sfm_matches_ground_truth_poses() {
    let run = default_run();
    let errors = pose_errors(&run.scene, &run.reconstruction);
    eprintln!(
        "max rotation error {:.4} deg, median position error {:.5} (scene size {:.3}, {:.4}%)",
        errors.max_rotation_deg,
        errors.median_position,
        errors.scene_size,
        100.0 * errors.median_position / errors.scene_size
    );
    assert!(
        errors.max_rotation_deg < 0.5,
        "{} deg",
        errors.max_rotation_deg
    );
    assert!(
        errors.median_position < 0.01 * errors.scene_size,
        "{} of {}",
        errors.median_position,
        errors.scene_size
    );
}

#[test]
fn sfm_reprojection_error_is_subpixel() {
    let run = default_run();
    let error = run.reconstruction.mean_reprojection_error();
    assert!(error < 0.8, "mean reprojection error {error} px");
    let camera = &run.reconstruction.cameras[0];
    let truth = &run.scene.cameras[0];
    let focal_error = (camera.mean_focal() - truth.mean_focal()).abs() / truth.mean_focal();
    eprintln!(
        "focal {:.2} px, truth {:.2} px",
        camera.mean_focal(),
        truth.mean_focal()
    );
    assert!(
        focal_error < 0.01,
        "focal error {:.3}%",
        100.0 * focal_error
    );
    assert_eq!(run.reconstruction.cameras.len(), 1);
}

#[test]
fn sfm_repeats_exactly() {
    let shared = default_run();
    let again = run(&shared.inputs, &SfmOptions::default()).unwrap();
    assert!(again == shared.reconstruction, "second run differs");
}

#[test]
fn sfm_pure_rotation_names_parallax() {
    let scene = SyntheticScene::generate(&SceneOptions {
        images: 12,
        ..SceneOptions::pure_rotation()
    })
    .unwrap();
    let err = expect_error(run(&inputs(&scene), &SfmOptions::default()));
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let message = err.to_string();
    eprintln!("pure rotation: {message}");
    assert!(
        message.contains("no image pair has enough parallax"),
        "{message}"
    );
    assert!(message.contains("taken from one spot"), "{message}");
}

#[test]
fn sfm_textureless_names_features() {
    let scene = SyntheticScene::generate(&SceneOptions {
        images: 12,
        ..SceneOptions::textureless()
    })
    .unwrap();
    let err = expect_error(run(&inputs(&scene), &SfmOptions::default()));
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let message = err.to_string();
    eprintln!("textureless: {message}");
    assert!(message.contains("textureless"), "{message}");
}

#[test]
fn sfm_copies_of_one_photo_name_the_still_camera() {
    let scene = SyntheticScene::generate(&SceneOptions {
        images: 2,
        ..SceneOptions::default()
    })
    .unwrap();
    let photo = png_bytes(&scene.images[0]);
    let copies: Vec<SfmInput> = (0..4)
        .map(|index| SfmInput::from_bytes(format!("copy_{index}.png"), photo.clone()))
        .collect();
    let err = expect_error(run(&copies, &SfmOptions::default()));
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let message = err.to_string();
    assert!(message.contains("show the same view"), "{message}");
}

#[test]
fn sfm_reports_corrupt_and_blurry_photos() {
    let scene = SyntheticScene::generate(&SceneOptions {
        images: 12,
        arc_degrees: 132.0,
        ..SceneOptions::default()
    })
    .unwrap();

    let mut inputs = inputs(&scene);
    inputs[3] = SfmInput::from_bytes("corrupt.png", b"\x89PNG\r\n\x1a\nnot really a png".to_vec());
    let blurred = image::imageops::blur(&scene.images[7], 4.0);
    inputs[7] = SfmInput::from_bytes("blurry.png", png_bytes(&blurred));
    let options = SfmOptions {
        quality: Some(QualityThresholds::default()),
        ..SfmOptions::default()
    };
    let reconstruction = run(&inputs, &options).unwrap();

    let summary = reconstruction.summary();
    assert_eq!(summary.registered_images, 10, "{:?}", summary.unregistered);
    let names: Vec<&str> = summary
        .unregistered
        .iter()
        .map(|u| u.name.as_str())
        .collect();
    assert_eq!(names, ["corrupt.png", "blurry.png"]);
    assert!(
        summary.unregistered[0].reason.contains("cannot be decoded"),
        "{:?}",
        summary.unregistered
    );
    assert!(
        summary.unregistered[1].reason.contains("blurry"),
        "{:?}",
        summary.unregistered
    );
}
