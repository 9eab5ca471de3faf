use std::sync::OnceLock;

use super::*;

/// The default scene (30 images of 640x480), rendered once for every test that reads it.
fn default_scene() -> &'static SyntheticScene {
    static SCENE: OnceLock<SyntheticScene> = OnceLock::new();
    SCENE.get_or_init(|| {
        SyntheticScene::generate(&SceneOptions::default()).expect("default options are valid")
    })
}

fn small(seed: u64) -> SceneOptions {
    SceneOptions {
        images: 4,
        width: 160,
        height: 120,
        seed,
        ..SceneOptions::default()
    }
}

/// Variance of the 4-neighbour Laplacian of the grey image, in grey levels squared.
fn laplacian_variance(picture: &RgbImage) -> f64 {
    let grey = image::imageops::grayscale(picture);
    let (width, height) = grey.dimensions();
    let at = |x: u32, y: u32| f64::from(grey.get_pixel(x, y).0[0]);
    let mut values = Vec::new();
    for y in 1..height - 1 {
        for x in 1..width - 1 {
            values.push(at(x - 1, y) + at(x + 1, y) + at(x, y - 1) + at(x, y + 1) - 4.0 * at(x, y));
        }
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / values.len() as f64
}

#[test]
fn same_seed_gives_identical_scene() {
    let first = SyntheticScene::generate(&small(11)).expect("valid");
    let second = SyntheticScene::generate(&small(11)).expect("valid");
    assert_eq!(first.poses, second.poses);
    assert_eq!(first.cameras, second.cameras);
    for (a, b) in first.images.iter().zip(&second.images) {
        assert!(a.as_raw() == b.as_raw(), "images differ for the same seed");
    }
    assert_eq!(
        first.sample_surface_points(50),
        second.sample_surface_points(50)
    );

    let other = SyntheticScene::generate(&small(12)).expect("valid");
    assert_ne!(first.poses, other.poses);
    assert!(first.images[0].as_raw() != other.images[0].as_raw());
}

#[test]
fn default_scene_has_expected_shape() {
    let scene = default_scene();
    assert_eq!(scene.images.len(), 30);
    assert_eq!(scene.names[0], "image_000.png");
    assert_eq!(scene.names[29], "image_029.png");
    for picture in &scene.images {
        assert_eq!(picture.dimensions(), (640, 480));
    }
    assert_eq!(scene.cameras[0].fx, 640.0);
}

#[test]
fn orbit_varies_distance_and_roll() {
    let scene = default_scene();
    let target = scene.object_center();
    let distances: Vec<f64> = scene
        .poses
        .iter()
        .map(|p| (p.center() - target).norm())
        .collect();
    let nearest = distances.iter().copied().fold(f64::INFINITY, f64::min);
    let farthest = distances.iter().copied().fold(0.0, f64::max);
    assert!(farthest / nearest > 1.3, "distances {nearest}..{farthest}");
    assert!(farthest / nearest < 1.6, "distances {nearest}..{farthest}");

    // Roll: the angle of the world's up direction in the image, away from image-up.
    let mut largest_roll: f64 = 0.0;
    for pose in &scene.poses {
        let up = pose.rotation * Vector3::z();
        let roll = up.x.atan2(-up.y).to_degrees();
        assert!(roll.abs() <= 30.5, "roll {roll}");
        largest_roll = largest_roll.max(roll.abs());
    }
    assert!(largest_roll > 15.0, "largest roll {largest_roll}");
}

#[test]
fn observed_points_are_seen_through_their_pixel() {
    let scene = default_scene();
    let points = scene.sample_surface_points(400);
    let mut observations = 0;
    for image in 0..scene.images.len() {
        let mut seen = 0;
        for point in &points {
            let Some(pixel) = scene.observe(point, image) else {
                continue;
            };
            seen += 1;
            assert!(scene.cameras[image].contains(&pixel));
            let hit = scene
                .surface_point_at(image, &pixel)
                .expect("the pixel sees a surface");
            let error = (hit - point).norm();
            assert!(error < 1e-6, "image {image}: {point:?} seen at {hit:?}");
        }
        assert!(seen >= 100, "image {image} sees only {seen} of 400 points");
        observations += seen;
    }
    assert!(observations > 30 * 150, "{observations} observations");
}

#[test]
fn objects_are_inside_every_image() {
    let scene = default_scene();
    for (image, (camera, pose)) in scene.cameras.iter().zip(&scene.poses).enumerate() {
        for cuboid in &scene.world.boxes {
            for corner in 0..8 {
                let sign = |bit: usize| if corner & bit == 0 { -1.0 } else { 1.0 };
                let local = Vector3::new(
                    sign(1) * cuboid.half.x,
                    sign(2) * cuboid.half.y,
                    sign(4) * cuboid.half.z,
                );
                let world = cuboid.center + cuboid.to_local.inverse() * local;
                let pixel = camera.project(&pose.transform(&world)).expect("in front");
                assert!(
                    camera.contains(&pixel),
                    "image {image}: box corner at {pixel:?}"
                );
            }
        }
    }
}

#[test]
fn default_scene_is_richly_textured() {
    let scene = default_scene();
    for (index, picture) in scene.images.iter().enumerate() {
        let variance = laplacian_variance(picture);
        assert!(
            variance > 300.0,
            "image {index}: Laplacian variance {variance}"
        );
    }
}

#[test]
fn textureless_scene_is_flat() {
    let options = SceneOptions {
        images: 3,
        width: 320,
        height: 240,
        ..SceneOptions::textureless()
    };
    let scene = SyntheticScene::generate(&options).expect("valid");
    for (index, picture) in scene.images.iter().enumerate() {
        let variance = laplacian_variance(picture);
        // Only the outlines of the shaded boxes remain; rich images measure 500 and more.
        assert!(
            variance < 100.0,
            "image {index}: Laplacian variance {variance}"
        );
    }
}

#[test]
fn pure_rotation_shares_one_center() {
    let options = SceneOptions {
        images: 6,
        width: 160,
        height: 120,
        ..SceneOptions::pure_rotation()
    };
    let scene = SyntheticScene::generate(&options).expect("valid");
    let center = scene.poses[0].center();
    for pose in &scene.poses[1..] {
        assert!((pose.center() - center).norm() < 1e-9);
        assert!(pose.rotation_angle_to(&scene.poses[0]) > 0.5);
    }
}

#[test]
fn distorted_camera_sees_points_through_their_pixel() {
    let options = SceneOptions {
        images: 3,
        width: 320,
        height: 240,
        distortion: Some([-0.15, 0.04, 0.002, -0.001]),
        ..SceneOptions::default()
    };
    let scene = SyntheticScene::generate(&options).expect("valid");
    assert_eq!(scene.cameras[0].model, CameraModel::OpenCv);
    let mut seen = 0;
    for point in scene.sample_surface_points(200) {
        for image in 0..3 {
            if let Some(pixel) = scene.observe(&point, image) {
                let hit = scene.surface_point_at(image, &pixel).expect("surface");
                assert!((hit - point).norm() < 1e-6, "{point:?} seen at {hit:?}");
                seen += 1;
            }
        }
    }
    assert!(seen > 200, "{seen} observations");
}

#[test]
fn ground_truth_reprojects_exactly() {
    let scene = SyntheticScene::generate(&small(5)).expect("valid");
    let truth = scene.ground_truth(300);
    assert_eq!(truth.cameras.len(), 1);
    assert_eq!(truth.images.len(), 4);
    assert!(truth.points.len() > 100, "{} points", truth.points.len());
    assert!(truth.points.iter().all(|p| p.track.len() >= 2));
    assert!(truth.mean_reprojection_error() < 1e-9);
    for image in &truth.images {
        assert_eq!(image.keypoints.len(), image.point_ids.len());
    }
}

#[test]
fn written_images_decode_to_the_same_pixels() {
    let scene = SyntheticScene::generate(&small(3)).expect("valid");
    let dir = tempfile::tempdir().expect("temporary folder");
    let paths = scene
        .write_images(&dir.path().join("photos"))
        .expect("written");
    assert_eq!(paths.len(), 4);
    assert!(paths[2].ends_with("image_002.png"));
    let decoded = image::open(&paths[2]).expect("decodes").to_rgb8();
    assert!(decoded.as_raw() == scene.images[2].as_raw());
}

#[test]
fn invalid_options_are_rejected() {
    let cases = [
        (
            SceneOptions {
                images: 0,
                ..small(0)
            },
            "scene images",
        ),
        (
            SceneOptions {
                width: 8,
                ..small(0)
            },
            "scene width",
        ),
        (
            SceneOptions {
                focal_px: Some(f64::NAN),
                ..small(0)
            },
            "scene focal_px",
        ),
        (
            SceneOptions {
                distortion: Some([0.9, 0.0, 0.0, 0.0]),
                ..small(0)
            },
            "scene distortion",
        ),
        (
            SceneOptions {
                distance_ratio: 0.5,
                ..small(0)
            },
            "scene distance_ratio",
        ),
        (
            SceneOptions {
                supersampling: 0,
                ..small(0)
            },
            "scene supersampling",
        ),
        (
            SceneOptions {
                images: 1000,
                width: 8192,
                height: 8192,
                ..small(0)
            },
            "scene size",
        ),
    ];
    for (options, name) in cases {
        let error = SyntheticScene::generate(&options).expect_err(name);
        assert!(error.to_string().contains(name), "{error}");
    }
}

#[test]
fn observe_rejects_out_of_range_image() {
    let scene = SyntheticScene::generate(&small(1)).expect("valid");
    assert!(scene.observe(&Vector3::zeros(), 4).is_none());
    assert!(scene.surface_point_at(9, &Vector2::new(1.0, 1.0)).is_none());
}
