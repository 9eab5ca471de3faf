use nalgebra::{UnitQuaternion, Vector2, Vector3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

const FOCAL: f64 = 1000.0;

fn ground_truth_pose() -> Pose {
    Pose::from_center(
        UnitQuaternion::from_scaled_axis(Vector3::new(0.2, -0.35, 0.1)),
        &Vector3::new(0.5, -0.3, -6.0),
    )
}

/// Points in a 4 m cube centred at the origin that project into a 1000 px wide image.
fn scene(rng: &mut ChaCha8Rng, pose: &Pose, count: usize) -> Vec<Vector3<f64>> {
    let mut points = Vec::with_capacity(count);
    while points.len() < count {
        let p = Vector3::new(
            rng.random_range(-2.0..2.0),
            rng.random_range(-2.0..2.0),
            rng.random_range(-2.0..2.0),
        );
        let c = pose.transform(&p);
        if c.z > 0.5 && (c.x / c.z).abs() < 0.5 && (c.y / c.z).abs() < 0.5 {
            points.push(p);
        }
    }
    points
}

fn project(pose: &Pose, p: &Vector3<f64>) -> Vector2<f64> {
    let c = pose.transform(p);
    Vector2::new(c.x / c.z, c.y / c.z)
}

fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller.
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    let v: f64 = rng.random_range(0.0..1.0);
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Ground-truth pose, normalized image points, world points and which are outliers.
type Problem = (Pose, Vec<Vector2<f64>>, Vec<Vector3<f64>>, Vec<bool>);

/// 500 correspondences with 1 px noise at focal 1000 and 40% outliers.
fn noisy_problem(seed: u64) -> Problem {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pose = ground_truth_pose();
    let points3d = scene(&mut rng, &pose, 500);
    let mut outlier = vec![false; 500];
    let points2d = points3d
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i % 5 < 2 {
                outlier[i] = true;
                Vector2::new(rng.random_range(-0.5..0.5), rng.random_range(-0.5..0.5))
            } else {
                project(&pose, p) + Vector2::new(gaussian(&mut rng), gaussian(&mut rng)) / FOCAL
            }
        })
        .collect();
    (pose, points2d, points3d, outlier)
}

#[test]
fn p3p_recovers_exact_pose() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let pose = ground_truth_pose();
    for _ in 0..20 {
        let points3d = scene(&mut rng, &pose, 3);
        let points2d: Vec<_> = points3d.iter().map(|p| project(&pose, p)).collect();
        let solutions = p3p(
            &[points2d[0], points2d[1], points2d[2]],
            &[points3d[0], points3d[1], points3d[2]],
        );
        assert!(!solutions.is_empty() && solutions.len() <= 4);
        let best = solutions
            .iter()
            .map(|s| {
                let rotation = s.rotation.angle_to(&pose.rotation);
                let translation = (s.translation - pose.translation).norm();
                rotation.max(translation)
            })
            .fold(f64::INFINITY, f64::min);
        assert!(best < 1e-6, "closest P3P solution is {best} away");
    }
}

#[test]
fn p3p_rejects_collinear_points() {
    let points3d = [
        Vector3::new(0.0, 0.0, 5.0),
        Vector3::new(1.0, 1.0, 5.0),
        Vector3::new(2.0, 2.0, 5.0),
    ];
    let points2d = points3d.map(|p| Vector2::new(p.x / p.z, p.y / p.z));
    assert!(p3p(&points2d, &points3d).is_empty());
}

#[test]
fn ransac_pose_with_outliers_is_accurate() {
    let (pose, points2d, points3d, outlier) = noisy_problem(11);
    let options = PnpOptions {
        max_error: 3.0 / FOCAL,
        seed: 7,
        ..PnpOptions::default()
    };
    let result = estimate_absolute_pose(&points2d, &points3d, &options).expect("pose");
    let rotation_error = result.pose.rotation_angle_to(&pose);
    let position_error = (result.pose.center() - pose.center()).norm();
    let depth = pose.center().norm();
    assert!(rotation_error < 0.1, "rotation error {rotation_error} deg");
    assert!(
        position_error < 0.01 * depth,
        "position error {position_error} at depth {depth}"
    );
    let true_inliers = outlier.iter().filter(|&&o| !o).count();
    assert!(
        result.num_inliers >= true_inliers * 97 / 100,
        "{} inliers",
        result.num_inliers
    );
    let false_inliers = (0..500)
        .filter(|&i| outlier[i] && result.inliers[i])
        .count();
    assert!(false_inliers <= 5, "{false_inliers} outliers accepted");
}

#[test]
fn ransac_pose_repeats_for_same_seed() {
    let (_, points2d, points3d, _) = noisy_problem(12);
    let options = PnpOptions {
        max_error: 3.0 / FOCAL,
        seed: 99,
        ..PnpOptions::default()
    };
    let first = estimate_absolute_pose(&points2d, &points3d, &options).expect("pose");
    let second = estimate_absolute_pose(&points2d, &points3d, &options).expect("pose");
    assert_eq!(first, second);
}

#[test]
fn refinement_reduces_perturbation() {
    let (pose, points2d, points3d, outlier) = noisy_problem(13);
    let inliers: Vec<bool> = outlier.iter().map(|o| !o).collect();
    let start = Pose::new(
        UnitQuaternion::from_scaled_axis(Vector3::new(0.02, -0.01, 0.015)) * pose.rotation,
        pose.translation + Vector3::new(0.1, -0.05, 0.2),
    );
    let refined = refine_absolute_pose(
        &points2d,
        &points3d,
        &inliers,
        &start,
        &PoseRefineOptions::default(),
    )
    .expect("refined");
    assert!(refined.rotation_angle_to(&pose) < 0.05);
    assert!((refined.center() - pose.center()).norm() < 0.02);
}

#[test]
fn bad_inputs_are_rejected() {
    let options = PnpOptions::default();
    let (_, points2d, points3d, _) = noisy_problem(14);

    let err = estimate_absolute_pose(&points2d[..3], &points3d[..3], &options).unwrap_err();
    assert!(err.to_string().contains("at least 4"), "{err}");

    let err = estimate_absolute_pose(&points2d[..10], &points3d[..9], &options).unwrap_err();
    assert!(err.to_string().contains("must pair up"), "{err}");

    let mut with_nan = points2d.clone();
    with_nan[4].x = f64::NAN;
    let err = estimate_absolute_pose(&with_nan, &points3d, &options).unwrap_err();
    assert!(err.to_string().contains("point 4 is not finite"), "{err}");

    let line: Vec<_> = (0..20)
        .map(|i| Vector3::new(i as f64 * 0.1, 0.0, 5.0))
        .collect();
    let line2d: Vec<_> = line
        .iter()
        .map(|p| Vector2::new(p.x / p.z, p.y / p.z))
        .collect();
    let err = estimate_absolute_pose(&line2d, &line, &options).unwrap_err();
    assert!(err.to_string().contains("collinear"), "{err}");
}

#[test]
fn pure_outliers_find_no_pose() {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let pose = ground_truth_pose();
    let points3d = scene(&mut rng, &pose, 50);
    let points2d: Vec<_> = (0..50)
        .map(|_| Vector2::new(rng.random_range(-0.5..0.5), rng.random_range(-0.5..0.5)))
        .collect();
    let options = PnpOptions {
        max_error: 1e-6,
        max_iterations: 200,
        ..PnpOptions::default()
    };
    let err = estimate_absolute_pose(&points2d, &points3d, &options).unwrap_err();
    assert!(err.to_string().contains("no pose found"), "{err}");
}
