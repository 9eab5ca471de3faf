use std::sync::OnceLock;

use nalgebra::{Vector2, Vector3};

use super::sweep::{DepthMap, SweepSettings};
use super::view::View;
use super::*;
use crate::recon::cloud::KdTree;
use crate::recon::synthetic::{SceneOptions, SyntheticScene};

/// Returns the options of a small scene, so a debug-profile test takes seconds. The scene
/// has 10 images of 256x192 on a 100 degree arc, with constant lighting so colours compare
/// directly.
fn small_scene_options() -> SceneOptions {
    SceneOptions {
        images: 10,
        width: 256,
        height: 192,
        seed: 3,
        arc_degrees: 100.0,
        vary_lighting: false,
        ..SceneOptions::default()
    }
}

fn small_scene() -> &'static SyntheticScene {
    static SCENE: OnceLock<SyntheticScene> = OnceLock::new();
    SCENE.get_or_init(|| SyntheticScene::generate(&small_scene_options()).expect("scene"))
}

fn small_options() -> DenseOptions {
    DenseOptions {
        max_image_size: 256,
        depth_planes: 96,
        ..DenseOptions::default()
    }
}

fn small_cloud() -> &'static PointCloud {
    static CLOUD: OnceLock<PointCloud> = OnceLock::new();
    CLOUD.get_or_init(|| {
        let scene = small_scene();
        densify(
            &scene.ground_truth(3000),
            &scene.images,
            &small_options(),
            None,
        )
        .expect("cloud")
    })
}

/// Computes the depth map of `reference` as [`densify`] does.
fn depth_map(
    scene: &SyntheticScene,
    reconstruction: &Reconstruction,
    reference: usize,
    options: &DenseOptions,
) -> (View, DepthMap) {
    let views: Vec<View> = reconstruction
        .images
        .iter()
        .zip(&scene.images)
        .map(|(r, image)| {
            View::new(
                image,
                &reconstruction.cameras[r.camera],
                &r.pose,
                options.max_image_size,
            )
        })
        .collect();
    let visible = selection::visible_points(reconstruction);
    let chosen = selection::select_sources(reconstruction, &visible, reference, options.neighbors);
    assert!(!chosen.is_empty(), "no sources for {reference}");
    let range = selection::depth_range(reconstruction, &visible, reference).expect("range");
    let settings = SweepSettings {
        planes: options.depth_planes,
        radius: options.window_radius,
        min_ncc: options.min_ncc,
    };
    let sources: Vec<&View> = chosen.iter().map(|&i| &views[i]).collect();
    let map = sweep::sweep(&views[reference], &sources, range, &settings);
    (views[reference].clone(), map)
}

/// Median relative depth error against ray-cast depth, and the share of pixels with a
/// depth.
fn depth_errors(scene: &SyntheticScene, image: usize, view: &View, map: &DepthMap) -> (f64, f64) {
    let camera = &scene.cameras[image];
    let pose = &scene.poses[image];
    let mut errors = Vec::new();
    for y in 0..map.height {
        for x in 0..map.width {
            let Some(depth) = map.at(x, y) else { continue };
            let ray = view.intrinsics_inverse * Vector3::new(x as f64 + 0.5, y as f64 + 0.5, 1.0);
            let pixel = camera.normalized_to_pixel(&Vector2::new(ray.x, ray.y));
            let Some(truth) = scene.surface_point_at(image, &pixel) else {
                errors.push(f64::INFINITY);
                continue;
            };
            let true_depth = pose.transform(&truth).z;
            errors.push((depth - true_depth).abs() / true_depth);
        }
    }
    assert!(!errors.is_empty());
    let filled = errors.len() as f64 / (map.width * map.height) as f64;
    errors.sort_unstable_by(f64::total_cmp);
    (errors[errors.len() / 2], filled)
}

#[test]
fn depth_map_matches_ray_cast_depth() {
    let scene = small_scene();
    let reconstruction = scene.ground_truth(3000);
    let (view, map) = depth_map(scene, &reconstruction, 4, &small_options());
    let (median, filled) = depth_errors(scene, 4, &view, &map);
    eprintln!("depth map: median relative error {median:.5}, filled {filled:.3}");
    assert!(median < 0.015, "median relative error {median}");
    assert!(filled > 0.3, "filled {filled}");
}

#[test]
fn distorted_camera_depth_matches_ray_cast() {
    let options = SceneOptions {
        images: 5,
        distortion: Some([-0.2, 0.05, 0.002, -0.001]),
        arc_degrees: 50.0,
        ..small_scene_options()
    };
    let scene = SyntheticScene::generate(&options).expect("scene");
    let reconstruction = scene.ground_truth(2000);
    let (view, map) = depth_map(&scene, &reconstruction, 2, &small_options());
    let (median, filled) = depth_errors(&scene, 2, &view, &map);
    eprintln!("distorted depth map: median relative error {median:.5}, filled {filled:.3}");
    assert!(median < 0.015, "median relative error {median}");
    assert!(filled > 0.3, "filled {filled}");
}

#[test]
fn fused_points_lie_on_the_true_surface() {
    let scene = small_scene();
    let cloud = small_cloud();
    assert!(cloud.len() > 1000, "{} points", cloud.len());
    let truth = KdTree::new(&scene.sample_surface_points(300_000));
    // The surface samples cover the ground only within 2.5 units of the origin, so points
    // on the ground beyond it have no truth to compare with.
    let mut distances: Vec<f64> = cloud
        .positions
        .iter()
        .filter(|p| p.xy().norm() < 2.4)
        .map(|p| truth.nearest(p).map_or(f64::INFINITY, |(_, d2)| d2.sqrt()))
        .collect();
    distances.sort_unstable_by(f64::total_cmp);
    let quantile = |q: f64| distances[((distances.len() - 1) as f64 * q) as usize];
    eprintln!(
        "fused: {} points, {} near the objects, distance to the surface p50 {:.4} p90 {:.4} p99 {:.4}",
        cloud.len(),
        distances.len(),
        quantile(0.5),
        quantile(0.9),
        quantile(0.99)
    );
    let tolerance: f64 = 0.05;
    let share =
        distances.iter().filter(|&&d| d < tolerance).count() as f64 / distances.len() as f64;
    assert!(share > 0.9, "share within {tolerance}: {share}");
}

#[test]
fn fused_points_cover_the_seen_surface() {
    let scene = small_scene();
    let cloud = small_cloud();
    let fused = KdTree::new(&cloud.positions);
    // Only surface seen by at least two images can be reconstructed.
    let seen: Vec<Vector3<f64>> = scene
        .sample_surface_points(4000)
        .into_iter()
        .filter(|p| {
            (0..scene.images.len())
                .filter(|&i| scene.observe(p, i).is_some())
                .count()
                >= 2
        })
        .collect();
    let radius: f64 = 0.05;
    let covered = seen
        .iter()
        .filter(|p| fused.nearest(p).is_some_and(|(_, d2)| d2.sqrt() < radius))
        .count();
    let coverage = covered as f64 / seen.len() as f64;
    eprintln!(
        "coverage {coverage:.4} of {} seen samples within {radius}",
        seen.len()
    );
    assert!(coverage > 0.6, "coverage {coverage}");
}

#[test]
fn fused_colours_and_normals_match_the_scene() {
    let scene = small_scene();
    let cloud = small_cloud();
    let normals = cloud.normals.as_ref().expect("normals");
    assert_eq!(normals.len(), cloud.len());
    assert_eq!(cloud.colors.len(), cloud.len());

    let mut differences = Vec::new();
    let mut ground_up = Vec::new();
    for ((point, color), normal) in cloud.positions.iter().zip(&cloud.colors).zip(normals) {
        assert!((normal.norm() - 1.0).abs() < 1e-9);
        // Points on the open ground (z = 0, beyond the objects) must have normals near +z.
        if point.z.abs() < 0.01 && point.xy().norm() > 1.5 {
            ground_up.push(normal.z);
        }
        let Some(image) = (0..scene.images.len()).find(|&i| scene.observe(point, i).is_some())
        else {
            continue;
        };
        let pixel = scene.observe(point, image).expect("seen");
        let picture = &scene.images[image];
        let x = (pixel.x as u32).min(picture.width() - 1);
        let y = (pixel.y as u32).min(picture.height() - 1);
        let rendered = picture.get_pixel(x, y).0;
        let difference = (0..3)
            .map(|k| (f64::from(rendered[k]) - f64::from(color[k])).abs())
            .sum::<f64>()
            / 3.0;
        differences.push(difference);
    }

    differences.sort_unstable_by(f64::total_cmp);
    let median = differences[differences.len() / 2];
    eprintln!("colour: median mean absolute difference {median:.2} grey levels");
    ground_up.sort_unstable_by(f64::total_cmp);
    let up = ground_up[ground_up.len() / 2];
    eprintln!(
        "ground normals: {} points, median z {up:.3}",
        ground_up.len()
    );
    assert!(up > 0.85, "median ground normal z {up}");
    assert!(median < 20.0, "median colour difference {median}");
}

#[test]
fn progress_reports_each_image_for_both_stages() {
    let options = SceneOptions {
        images: 3,
        width: 64,
        height: 48,
        arc_degrees: 30.0,
        ..small_scene_options()
    };
    let scene = SyntheticScene::generate(&options).expect("scene");
    let reports = std::sync::Mutex::new(Vec::new());
    let record = |p: Progress| reports.lock().expect("lock").push(p);
    let dense = DenseOptions {
        depth_planes: 16,
        min_consistent_views: 1,
        ..DenseOptions::default()
    };
    densify(
        &scene.ground_truth(500),
        &scene.images,
        &dense,
        Some(&record),
    )
    .expect("cloud");
    let reports = reports.into_inner().expect("lock");
    for stage in [Stage::DepthMaps, Stage::Fusion] {
        let done: Vec<usize> = reports
            .iter()
            .filter(|p| p.stage == stage)
            .map(|p| p.done)
            .collect();
        assert_eq!(done, vec![0, 1, 2, 3], "{stage:?}");
        assert!(
            reports
                .iter()
                .filter(|p| p.stage == stage)
                .all(|p| p.total == 3)
        );
    }
}

fn tiny_scene() -> SyntheticScene {
    let options = SceneOptions {
        images: 2,
        width: 32,
        height: 24,
        ..small_scene_options()
    };
    SyntheticScene::generate(&options).expect("scene")
}

#[test]
fn too_few_registered_images_fail() {
    let scene = tiny_scene();
    let mut reconstruction = scene.ground_truth(100);
    let err = densify(
        &Reconstruction::default(),
        &[],
        &DenseOptions::default(),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("0 registered images"), "{err}");
    reconstruction.images.truncate(1);
    let err = densify(
        &reconstruction,
        &scene.images[..1],
        &DenseOptions::default(),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("1 registered images"), "{err}");
}

#[test]
fn images_that_do_not_fit_the_reconstruction_fail() {
    let scene = tiny_scene();
    let reconstruction = scene.ground_truth(100);
    let options = DenseOptions::default();
    let err = densify(&reconstruction, &scene.images[..1], &options, None).unwrap_err();
    assert!(
        err.to_string().contains("1 images for 2 registered images"),
        "{err}"
    );
    let mut images = scene.images.clone();
    images[1] = RgbImage::new(31, 24);
    let err = densify(&reconstruction, &images, &options, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("image_001.png is 31x24 but its camera is 32x24"),
        "{err}"
    );
}

#[test]
fn densify_from_dir_names_missing_photo() {
    let scene = tiny_scene();
    let reconstruction = scene.ground_truth(200);
    let dir = tempfile::tempdir().expect("temporary folder");
    let paths = scene.write_images(dir.path()).expect("written");
    let options = DenseOptions {
        depth_planes: 8,
        min_consistent_views: 1,
        ..DenseOptions::default()
    };
    let limits = ImageLimits::default();
    let from_dir =
        densify_from_dir(&reconstruction, dir.path(), &limits, &options, None).expect("cloud");
    let in_memory = densify(&reconstruction, &scene.images, &options, None).expect("cloud");
    assert_eq!(from_dir, in_memory);
    std::fs::remove_file(&paths[1]).expect("removed");
    let err = densify_from_dir(&reconstruction, dir.path(), &limits, &options, None).unwrap_err();
    assert!(err.to_string().contains("image_001.png"), "{err}");
}

#[test]
fn invalid_options_name_the_value() {
    let cases: [(DenseOptions, &str); 7] = [
        (
            DenseOptions {
                max_image_size: 8,
                ..DenseOptions::default()
            },
            "max_image_size",
        ),
        (
            DenseOptions {
                neighbors: 0,
                ..DenseOptions::default()
            },
            "neighbors",
        ),
        (
            DenseOptions {
                depth_planes: 2,
                ..DenseOptions::default()
            },
            "depth_planes",
        ),
        (
            DenseOptions {
                window_radius: 0,
                ..DenseOptions::default()
            },
            "window_radius",
        ),
        (
            DenseOptions {
                window_radius: 16,
                ..DenseOptions::default()
            },
            "window_radius",
        ),
        (
            DenseOptions {
                min_ncc: f64::NAN,
                ..DenseOptions::default()
            },
            "min_ncc",
        ),
        (
            DenseOptions {
                min_consistent_views: 0,
                ..DenseOptions::default()
            },
            "min_consistent_views",
        ),
    ];
    DenseOptions::default()
        .validate()
        .expect("default is valid");
    let scene = tiny_scene();
    let reconstruction = scene.ground_truth(100);
    for (options, name) in cases {
        let err = densify(&reconstruction, &scene.images, &options, None).unwrap_err();
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
    let err = DenseOptions {
        min_ncc: 1.0,
        ..DenseOptions::default()
    }
    .validate()
    .unwrap_err();
    assert!(err.to_string().contains("1 is outside -1..1"), "{err}");
}

/// Timing and accuracy on the default 30-image scene; run with
/// `cargo test --release -p kai-core --lib recon::dense -- --ignored --nocapture`.
#[test]
#[ignore = "takes minutes; measures the default scene for the report"]
fn default_scene_measurements() {
    let scene = SyntheticScene::generate(&SceneOptions::default()).expect("scene");
    let reconstruction = scene.ground_truth(5000);
    let start = std::time::Instant::now();
    let cloud = densify(
        &reconstruction,
        &scene.images,
        &DenseOptions::default(),
        None,
    )
    .expect("cloud");
    let seconds = start.elapsed().as_secs_f64();

    let truth = KdTree::new(&scene.sample_surface_points(1_000_000));
    let close = cloud
        .positions
        .iter()
        .filter(|p| truth.nearest(p).is_some_and(|(_, d2)| d2.sqrt() < 0.02))
        .count();

    let fused = KdTree::new(&cloud.positions);
    let seen: Vec<Vector3<f64>> = scene
        .sample_surface_points(5000)
        .into_iter()
        .filter(|p| {
            (0..scene.images.len())
                .filter(|&i| scene.observe(p, i).is_some())
                .count()
                >= 2
        })
        .collect();
    let covered = seen
        .iter()
        .filter(|p| fused.nearest(p).is_some_and(|(_, d2)| d2.sqrt() < 0.05))
        .count();

    eprintln!(
        "default scene: {} points in {seconds:.1} s, {:.4} within 0.02, coverage {:.4}",
        cloud.len(),
        close as f64 / cloud.len() as f64,
        covered as f64 / seen.len() as f64
    );
}
