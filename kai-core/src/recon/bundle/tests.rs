use std::time::Instant;

use nalgebra::{Matrix3, UnitQuaternion, Vector2, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::recon::camera::Camera;
use crate::recon::pose::Pose;
use crate::recon::reconstruction::{Point3D, RegisteredImage, TrackElement};

const SIGMA: f64 = 0.5;

fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller.
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let v: f64 = rng.random_range(0.0..1.0);
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn random_unit(rng: &mut ChaCha8Rng) -> Vector3<f64> {
    Vector3::new(gaussian(rng), gaussian(rng), gaussian(rng)).normalize()
}

/// A camera at `center` looking at the origin with y pointing down-ish.
fn look_at(center: Vector3<f64>) -> Pose {
    let z = (-center).normalize();
    let x = Vector3::new(0.0, 1.0, 0.0).cross(&z).normalize();
    let y = z.cross(&x);
    let rotation = Matrix3::from_rows(&[x.transpose(), y.transpose(), z.transpose()]);
    Pose::from_center(UnitQuaternion::from_matrix(&rotation), &center)
}

/// Ground-truth scene: `num_images` cameras on an arc around points in a cube of half
/// size 2, one shared camera (focal 1000 px, 1000x800), keypoints with Gaussian noise of
/// `SIGMA` px. `track_length` limits each point to that many consecutive images.
fn synthetic(
    num_images: usize,
    num_points: usize,
    track_length: Option<usize>,
    seed: u64,
) -> Reconstruction {
    let camera = Camera::pinhole(1000, 800, 1000.0, 1000.0, 500.0, 400.0);
    synthetic_with_camera(camera, num_images, num_points, track_length, seed)
}

/// [`synthetic`] with the given camera.
fn synthetic_with_camera(
    camera: Camera,
    num_images: usize,
    num_points: usize,
    track_length: Option<usize>,
    seed: u64,
) -> Reconstruction {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut images: Vec<RegisteredImage> = (0..num_images)
        .map(|i| {
            let angle = (i as f64 / num_images as f64 - 0.5) * std::f64::consts::PI * 1.2;
            let center = Vector3::new(
                8.0 * angle.sin(),
                rng.random_range(-1.0..1.0),
                -8.0 * angle.cos(),
            );
            RegisteredImage {
                name: format!("{i}.png"),
                camera: 0,
                pose: look_at(center),
                keypoints: Vec::new(),
                point_ids: Vec::new(),
            }
        })
        .collect();
    let mut points = Vec::with_capacity(num_points);
    while points.len() < num_points {
        let position = Vector3::new(
            rng.random_range(-2.0..2.0),
            rng.random_range(-2.0..2.0),
            rng.random_range(-2.0..2.0),
        );
        let visible: Vec<usize> = (0..num_images)
            .filter(|&i| {
                camera
                    .project(&images[i].pose.transform(&position))
                    .is_some_and(|p| camera.contains(&p))
            })
            .collect();
        let chosen: Vec<usize> = match track_length {
            Some(length) if visible.len() >= length => {
                let start = rng.random_range(0..=visible.len() - length);
                visible[start..start + length].to_vec()
            }
            Some(_) => continue,
            None if visible.len() >= 2 => visible,
            None => continue,
        };
        let id = points.len();
        let mut track = Vec::with_capacity(chosen.len());
        for i in chosen {
            let pixel = camera
                .project(&images[i].pose.transform(&position))
                .expect("visible")
                + Vector2::new(gaussian(&mut rng), gaussian(&mut rng)) * SIGMA;
            track.push(TrackElement {
                image: i,
                keypoint: images[i].keypoints.len(),
            });
            images[i].keypoints.push(pixel);
            images[i].point_ids.push(Some(id));
        }
        points.push(Point3D {
            position,
            color: [128, 128, 128],
            error: 0.0,
            track,
        });
    }
    Reconstruction {
        cameras: vec![camera],
        images,
        points,
        unregistered: Vec::new(),
    }
}

/// Rotates each listed image by 2 degrees, moves its centre by 5% of its distance to the
/// scene, and moves every point by 5% of the scene's half size.
fn perturb(reconstruction: &mut Reconstruction, images: &[usize], seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for &i in images {
        let pose = reconstruction.images[i].pose;
        let rotation = UnitQuaternion::from_scaled_axis(random_unit(&mut rng) * 2f64.to_radians())
            * pose.rotation;
        let center = pose.center() + random_unit(&mut rng) * 0.05 * pose.center().norm();
        reconstruction.images[i].pose = Pose::from_center(rotation, &center);
    }
    for point in &mut reconstruction.points {
        point.position += random_unit(&mut rng) * 0.05 * 2.0;
    }
}

fn adjust_global(
    reconstruction: &mut Reconstruction,
    options: &BundleOptions,
) -> Result<BundleReport> {
    let config = BundleConfig::global(reconstruction);
    adjust(reconstruction, &config, options)
}

/// Scale, rotation and translation with `target ≈ s R source + t` (Umeyama's method).
fn similarity(
    source: &[Vector3<f64>],
    target: &[Vector3<f64>],
) -> (f64, Matrix3<f64>, Vector3<f64>) {
    let n = source.len() as f64;
    let ms = source.iter().sum::<Vector3<f64>>() / n;
    let mt = target.iter().sum::<Vector3<f64>>() / n;
    let mut covariance = Matrix3::zeros();
    let mut variance = 0.0;
    for (s, t) in source.iter().zip(target) {
        covariance += (t - mt) * (s - ms).transpose();
        variance += (s - ms).norm_squared();
    }
    covariance /= n;
    variance /= n;
    let svd = covariance.svd(true, true);
    let (u, v_t) = (svd.u.expect("u"), svd.v_t.expect("v"));
    let mut d = Matrix3::identity();
    if (u * v_t).determinant() < 0.0 {
        d[(2, 2)] = -1.0;
    }
    let rotation = u * d * v_t;
    let scale = (svd.singular_values.component_mul(&d.diagonal())).sum() / variance;
    (scale, rotation, mt - scale * rotation * ms)
}

/// Largest rotation error (degrees) and centre error (world units) after aligning the
/// estimate to the ground truth by a similarity.
fn aligned_errors(estimate: &Reconstruction, truth: &Reconstruction) -> (f64, f64) {
    let source: Vec<_> = estimate.images.iter().map(|i| i.pose.center()).collect();
    let target: Vec<_> = truth.images.iter().map(|i| i.pose.center()).collect();
    let (scale, rotation, translation) = similarity(&source, &target);
    let alignment = UnitQuaternion::from_matrix(&rotation);
    let mut rotation_error: f64 = 0.0;
    let mut center_error: f64 = 0.0;
    for (e, t) in estimate.images.iter().zip(&truth.images) {
        let aligned = e.pose.rotation * alignment.inverse();
        rotation_error = rotation_error.max(aligned.angle_to(&t.pose.rotation).to_degrees());
        let center = scale * (rotation * e.pose.center()) + translation;
        center_error = center_error.max((center - t.pose.center()).norm());
    }
    (rotation_error, center_error)
}

/// The RMSE that least squares reaches at the optimum with Gaussian noise `SIGMA` per
/// axis: `σ √2 √(1 - parameters / residuals)`.
fn noise_rmse(observations: usize, parameters: usize) -> f64 {
    SIGMA * 2f64.sqrt() * (1.0 - parameters as f64 / (2.0 * observations as f64)).sqrt()
}

#[test]
fn global_adjustment_reaches_noise_level() {
    let truth = synthetic(10, 2000, None, 1);
    let mut estimate = truth.clone();
    perturb(&mut estimate, &(0..10).collect::<Vec<_>>(), 2);
    estimate.cameras[0].fx *= 1.05;
    estimate.cameras[0].fy *= 1.05;
    let options = BundleOptions {
        max_iterations: 100,
        refine_focal: true,
        function_tolerance: 1e-10,
        ..BundleOptions::default()
    };
    let report = adjust_global(&mut estimate, &options).expect("adjusted");
    // Parameters: 10 poses less 7 gauge, 2000 points, one focal length.
    let bound = noise_rmse(report.num_observations, 10 * 6 - 7 + 2000 * 3 + 1);
    assert!(
        report.final_rmse_px < 1.05 * bound,
        "{report:?}, bound {bound}"
    );
    assert!(
        report.final_rmse_px > 0.9 * bound,
        "{report:?}, bound {bound}"
    );
    assert!(report.initial_rmse_px > 20.0 * bound, "{report:?}");
    assert_eq!(report.num_behind_camera, 0);
    let (rotation_error, center_error) = aligned_errors(&estimate, &truth);
    assert!(rotation_error < 0.05, "rotation error {rotation_error} deg");
    assert!(center_error < 0.01, "centre error {center_error}");
    let focal_error = (estimate.cameras[0].fx / truth.cameras[0].fx - 1.0).abs();
    assert!(focal_error < 0.005, "focal error {focal_error}");
}

#[test]
fn intrinsics_refinement_recovers_distortion() {
    let mut camera = Camera::pinhole(1000, 800, 1000.0, 1000.0, 500.0, 400.0);
    camera.model = crate::recon::camera::CameraModel::OpenCv;
    camera.k1 = -0.08;
    camera.k2 = 0.01;
    camera.p1 = 0.001;
    camera.p2 = -0.0005;
    let truth = synthetic_with_camera(camera, 10, 2000, None, 13);
    let mut estimate = truth.clone();
    perturb(&mut estimate, &(0..10).collect::<Vec<_>>(), 14);
    let start = &mut estimate.cameras[0];
    start.fx *= 0.97;
    start.fy *= 0.97;
    start.cx += 8.0;
    start.cy -= 6.0;
    (start.k1, start.k2, start.p1, start.p2) = (0.0, 0.0, 0.0, 0.0);
    let options = BundleOptions {
        max_iterations: 100,
        function_tolerance: 1e-10,
        refine_focal: true,
        refine_principal_point: true,
        refine_distortion: true,
        ..BundleOptions::default()
    };
    let report = adjust_global(&mut estimate, &options).expect("adjusted");

    let bound = noise_rmse(report.num_observations, 10 * 6 - 7 + 2000 * 3 + 7);
    assert!(
        report.final_rmse_px < 1.05 * bound,
        "{report:?}, bound {bound}"
    );
    let refined = estimate.cameras[0];
    assert!((refined.k1 - camera.k1).abs() < 0.005, "k1 {}", refined.k1);
    assert!(
        (refined.fx / camera.fx - 1.0).abs() < 0.005,
        "fx {}",
        refined.fx
    );
    assert!((refined.cx - camera.cx).abs() < 3.0, "cx {}", refined.cx);
    assert!((refined.cy - camera.cy).abs() < 3.0, "cy {}", refined.cy);
    // A principal point shift of δ px nearly equals a rotation of δ / f radians, so with the
    // principal point free the rotations are only as good as the 3 px bound on it allows.
    let (rotation_error, _) = aligned_errors(&estimate, &truth);
    assert!(rotation_error < 0.25, "rotation error {rotation_error} deg");
}

#[test]
fn constant_images_stay_identical() {
    let truth = synthetic(10, 1000, None, 3);
    let mut estimate = truth.clone();
    let variable: Vec<usize> = (3..10).collect();
    perturb(&mut estimate, &variable, 4);
    let config = BundleConfig::local(&estimate, &variable);
    assert_eq!(config.constant_images, vec![0, 1, 2]);
    let before: Vec<Pose> = estimate.images.iter().map(|i| i.pose).collect();
    let report = adjust(&mut estimate, &config, &BundleOptions::default()).expect("adjusted");
    for (i, pose) in before.iter().enumerate().take(3) {
        assert_eq!(estimate.images[i].pose, *pose, "image {i} moved");
    }
    // The constant images fix the gauge at the ground truth, so no alignment is needed.
    for i in variable {
        let error = estimate.images[i]
            .pose
            .rotation_angle_to(&truth.images[i].pose);
        assert!(error < 0.05, "image {i}: {error} deg");
    }
    let bound = noise_rmse(report.num_observations, 7 * 6 + 1000 * 3);
    assert!(
        report.final_rmse_px < 1.05 * bound,
        "{report:?}, bound {bound}"
    );
}

#[test]
fn cauchy_loss_tolerates_gross_outliers() {
    let truth = synthetic(10, 2000, None, 5);
    let mut estimate = truth.clone();
    perturb(&mut estimate, &(0..10).collect::<Vec<_>>(), 6);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut outliers = std::collections::HashSet::new();
    for (index, point) in estimate.points.iter().enumerate() {
        for element in &point.track {
            if rng.random_bool(0.1) {
                outliers.insert((index, *element));
            }
        }
    }
    for (_, element) in &outliers {
        let offset = random_unit(&mut rng).xy().normalize() * rng.random_range(20.0..80.0);
        estimate.images[element.image].keypoints[element.keypoint] += offset;
    }
    let options = BundleOptions {
        max_iterations: 100,
        loss: LossFunction::Cauchy,
        loss_scale_px: 2.0,
        ..BundleOptions::default()
    };
    adjust_global(&mut estimate, &options).expect("adjusted");
    let (rotation_error, _) = aligned_errors(&estimate, &truth);
    assert!(rotation_error < 0.05, "rotation error {rotation_error} deg");
    let mut sum = 0.0;
    let mut count = 0;
    for (index, point) in estimate.points.iter().enumerate() {
        // With fewer than three clean observations no loss can tell which is the outlier.
        let clean = point
            .track
            .iter()
            .filter(|e| !outliers.contains(&(index, **e)))
            .count();
        if clean < 3 || clean < point.track.len() {
            continue;
        }
        for element in &point.track {
            if !outliers.contains(&(index, *element)) {
                sum += estimate
                    .reprojection_error(index, *element)
                    .expect("in front")
                    .powi(2);
                count += 1;
            }
        }
    }
    let inlier_rmse = (sum / count as f64).sqrt();
    assert!(
        inlier_rmse < 1.1 * SIGMA * 2f64.sqrt(),
        "inlier RMSE {inlier_rmse}"
    );
}

#[test]
fn points_behind_cameras_do_not_break_adjustment() {
    let truth = synthetic(6, 500, None, 8);
    let mut estimate = truth.clone();
    perturb(&mut estimate, &(0..6).collect::<Vec<_>>(), 9);
    // Put five points behind the first camera.
    let pose = estimate.images[0].pose;
    for point in estimate.points.iter_mut().take(5) {
        point.position = pose.center() - pose.viewing_direction() * 2.0;
    }
    // Their observations in the other images are now gross errors, so a robust loss keeps
    // them from bending the poses.
    let options = BundleOptions {
        loss: LossFunction::Cauchy,
        loss_scale_px: 2.0,
        ..BundleOptions::default()
    };
    let report = adjust_global(&mut estimate, &options).expect("adjusted");
    assert_eq!(report.initial_num_behind_camera, 5);
    assert!(report.final_cost.is_finite());
    assert!(report.final_cost < report.initial_cost);
    let (rotation_error, _) = aligned_errors(&estimate, &truth);
    assert!(rotation_error < 0.1, "rotation error {rotation_error} deg");
}

#[test]
fn bad_configurations_are_rejected() {
    let mut reconstruction = synthetic(3, 50, None, 10);
    let options = BundleOptions::default();
    let config = |variable: Vec<usize>, constant: Vec<usize>| BundleConfig {
        variable_images: variable,
        constant_images: constant,
        gauge: GaugeFixing::Automatic,
    };

    let err = adjust(&mut reconstruction, &config(vec![0, 5], vec![]), &options).unwrap_err();
    assert!(err.to_string().contains("image 5 is out of range"), "{err}");

    let err = adjust(&mut reconstruction, &config(vec![0, 1], vec![1]), &options).unwrap_err();
    assert!(err.to_string().contains("listed twice"), "{err}");

    let err = adjust(&mut reconstruction, &config(vec![], vec![0]), &options).unwrap_err();
    assert!(err.to_string().contains("variable_images"), "{err}");

    let bad_scale = BundleOptions {
        loss: LossFunction::Huber,
        loss_scale_px: 0.0,
        ..BundleOptions::default()
    };
    let err = adjust_global(&mut reconstruction, &bad_scale).unwrap_err();
    assert!(err.to_string().contains("loss_scale_px"), "{err}");

    reconstruction.points[3].position.y = f64::NAN;
    let err = adjust_global(&mut reconstruction, &options).unwrap_err();
    assert!(err.to_string().contains("point 3 position"), "{err}");
}

/// Timing of 10 iterations on 30 images, 10,000 points and 60,000 observations. Run with
/// `cargo test -p kai-core --lib recon::bundle::tests::timing -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark; prints timings"]
fn timing_30_images_10k_points() {
    let start = Instant::now();
    let truth = synthetic(30, 10_000, Some(6), 11);
    let mut estimate = truth.clone();
    perturb(&mut estimate, &(0..30).collect::<Vec<_>>(), 12);
    let built = start.elapsed();
    let options = BundleOptions {
        max_iterations: 10,
        function_tolerance: 0.0,
        parameter_tolerance: 0.0,
        refine_focal: true,
        ..BundleOptions::default()
    };
    let start = Instant::now();
    let report = adjust_global(&mut estimate, &options).expect("adjusted");
    let elapsed = start.elapsed();
    println!(
        "setup {built:?}; adjust {elapsed:?} for {} iterations, {} observations, {} points: rmse {:.3} -> {:.3} px ({:?})",
        report.iterations,
        report.num_observations,
        report.num_points,
        report.initial_rmse_px,
        report.final_rmse_px,
        report.termination
    );
    assert_eq!(report.num_observations, 60_000);

    let options = BundleOptions {
        max_iterations: 200,
        ..options
    };
    let start = Instant::now();
    let report = adjust_global(&mut estimate, &options).expect("adjusted");
    println!(
        "continued to convergence: {:?} for {} more iterations: rmse {:.3} px ({:?})",
        start.elapsed(),
        report.iterations,
        report.final_rmse_px,
        report.termination
    );
}
