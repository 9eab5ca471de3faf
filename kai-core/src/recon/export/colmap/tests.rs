use super::*;
use crate::recon::synthetic::{SceneOptions, SyntheticScene};

/// The ground truth of a small synthetic scene, plus an OpenCV camera, an unobserved
/// keypoint and an image without keypoints.
fn model() -> Reconstruction {
    let options = SceneOptions {
        images: 4,
        width: 160,
        height: 120,
        ..SceneOptions::default()
    };
    let scene = SyntheticScene::generate(&options).expect("valid scene");
    let mut model = scene.ground_truth(200);
    let mut distorted = Camera::pinhole(800, 600, 700.5, 701.25, 400.1, 299.9);
    distorted.model = CameraModel::OpenCv;
    distorted.k1 = -0.1;
    distorted.k2 = 0.02;
    distorted.p1 = 1e-3;
    distorted.p2 = -2e-4;
    model.cameras.push(distorted);
    model.images[1].camera = 1;
    model.images[0].keypoints.push(Vector2::new(10.25, 20.5));
    model.images[0].point_ids.push(None);
    model.images.push(RegisteredImage {
        name: "empty.jpg".into(),
        camera: 0,
        pose: Pose::from_angle_axis(&Vector3::new(0.1, 0.2, 0.3), Vector3::new(1.0, -2.0, 3.0)),
        keypoints: Vec::new(),
        point_ids: Vec::new(),
    });
    model
}

fn assert_same(a: &Reconstruction, b: &Reconstruction) {
    assert_eq!(a.cameras, b.cameras);
    assert_eq!(a.images.len(), b.images.len());
    for (x, y) in a.images.iter().zip(&b.images) {
        assert_eq!(x.name, y.name);
        assert_eq!(x.camera, y.camera);
        assert_eq!(x.keypoints, y.keypoints);
        assert_eq!(x.point_ids, y.point_ids);
        assert!(x.pose.rotation_angle_to(&y.pose) < 1e-9);
        assert_eq!(x.pose.translation, y.pose.translation);
    }
    assert_eq!(a.points, b.points);
}

#[test]
fn round_trip_is_exact() {
    let original = model();
    assert!(original.points.len() > 50);
    let dir = tempfile::tempdir().expect("temporary folder");
    write_colmap_text(&original, dir.path()).expect("written");
    let back = read_colmap_text(dir.path()).expect("read");
    assert_same(&original, &back);
    let difference = back.mean_reprojection_error() - original.mean_reprojection_error();
    assert!(difference.abs() < 1e-9, "{difference}");
}

#[test]
fn written_lines_follow_colmap_layout() {
    let mut model = Reconstruction::default();
    model
        .cameras
        .push(Camera::pinhole(640, 480, 500.0, 510.0, 320.0, 240.0));
    model.images.push(RegisteredImage {
        name: "a.png".into(),
        camera: 0,
        pose: Pose::identity(),
        keypoints: vec![Vector2::new(1.5, 2.5), Vector2::new(3.0, 4.0)],
        point_ids: vec![Some(0), None],
    });
    model.images.push(RegisteredImage {
        name: "b.png".into(),
        camera: 0,
        pose: Pose::new(UnitQuaternion::identity(), Vector3::new(-1.0, 0.0, 0.0)),
        keypoints: vec![Vector2::new(5.0, 6.0)],
        point_ids: vec![Some(0)],
    });
    model.points.push(Point3D {
        position: Vector3::new(0.5, -0.25, 4.0),
        color: [10, 20, 30],
        error: 0.75,
        track: vec![
            TrackElement {
                image: 0,
                keypoint: 0,
            },
            TrackElement {
                image: 1,
                keypoint: 0,
            },
        ],
    });
    let dir = tempfile::tempdir().expect("temporary folder");
    write_colmap_text(&model, dir.path()).expect("written");
    let data_lines = |name: &str| -> Vec<String> {
        std::fs::read_to_string(dir.path().join(name))
            .expect("read")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        data_lines("cameras.txt"),
        ["1 PINHOLE 640 480 500 510 320 240"]
    );
    assert_eq!(
        data_lines("images.txt"),
        [
            "1 1 0 0 0 0 0 0 1 a.png",
            "1.5 2.5 1 3 4 -1",
            "2 1 0 0 0 -1 0 0 1 b.png",
            "5 6 1",
        ]
    );
    assert_eq!(
        data_lines("points3D.txt"),
        ["1 0.5 -0.25 4 10 20 30 0.75 1 0 2 0"]
    );
}

#[test]
fn reads_colmap_models_with_other_ids_and_cameras() {
    let dir = tempfile::tempdir().expect("temporary folder");
    std::fs::write(
        dir.path().join("cameras.txt"),
        "# comment\n7 SIMPLE_RADIAL 3072 2304 2559.81 1536 1152 -0.0204\n9 SIMPLE_PINHOLE 100 80 90 50 40\n",
    )
    .expect("written");
    std::fs::write(
        dir.path().join("images.txt"),
        "# c\n\n12 0.851773 0.0165051 0.503764 -0.142941 -0.737434 1.02973 3.74354 7 P1.JPG\n\
         2362.39 248.498 58396 1784.7 268.254 -1\n\
         3 1 0 0 0 0 0 0 9 P2.JPG\n\
         10 20 58396\n",
    )
    .expect("written");
    std::fs::write(
        dir.path().join("points3D.txt"),
        "58396 1.67241 0.292931 0.609726 115 121 122 1.33927 12 0 3 0\n",
    )
    .expect("written");
    let model = read_colmap_text(dir.path()).expect("read");
    assert_eq!(model.cameras.len(), 2);
    assert_eq!(model.cameras[0].model, CameraModel::OpenCv);
    assert_eq!(model.cameras[0].fx, 2559.81);
    assert_eq!(model.cameras[0].fy, 2559.81);
    assert_eq!(model.cameras[0].k1, -0.0204);
    assert_eq!(model.cameras[1].model, CameraModel::Pinhole);
    assert_eq!(model.images[0].camera, 0);
    assert_eq!(model.images[1].camera, 1);
    assert_eq!(model.images[0].point_ids, [Some(0), None]);
    assert_eq!(model.images[1].point_ids, [Some(0)]);
    assert_eq!(
        model.points[0].track,
        [
            TrackElement {
                image: 0,
                keypoint: 0
            },
            TrackElement {
                image: 1,
                keypoint: 0
            }
        ]
    );
    let norm = model.images[0].pose.rotation.quaternion().norm();
    assert!((norm - 1.0).abs() < 1e-12);
}

#[test]
fn malformed_lines_name_file_and_line() {
    let good_cameras = "1 PINHOLE 640 480 500 500 320 240\n";
    let good_images = "1 1 0 0 0 0 0 0 1 a.png\n1 2 -1\n";
    let good_points = "";
    let cases: [(&str, &str, &str, &str, &str); 9] = [
        (
            "1 FISHEYE 640 480 1 2 3\n",
            good_images,
            good_points,
            "cameras.txt line 1",
            "not supported",
        ),
        (
            "1 PINHOLE 640 480 500 500 320\n",
            good_images,
            good_points,
            "cameras.txt line 1",
            "3 parameters",
        ),
        (
            "# x\n1 PINHOLE 640 480 nan 500 320 240\n",
            good_images,
            good_points,
            "cameras.txt line 2",
            "not finite",
        ),
        (
            good_cameras,
            "1 1 0 0 0 0 0 0 2 a.png\n\n",
            good_points,
            "images.txt line 1",
            "CAMERA_ID 2",
        ),
        (
            good_cameras,
            "1 0 0 0 0 0 0 0 1 a.png\n\n",
            good_points,
            "images.txt line 1",
            "zero length",
        ),
        (
            good_cameras,
            "1 1 0 0 0 0 0 0 1 a.png\n1 2\n",
            good_points,
            "images.txt line 2",
            "triples",
        ),
        (
            good_cameras,
            "1 1 0 0 0 0 0 0 1 a.png\n1 2 5\n",
            good_points,
            "images.txt line 2",
            "POINT3D_ID 5",
        ),
        (
            good_cameras,
            good_images,
            "1 0 0 1 1 2 3 0.5 1 4\n",
            "points3D.txt line 1",
            "POINT2D_IDX 4",
        ),
        (
            good_cameras,
            good_images,
            "1 0 0 1 300 2 3 0.5\n",
            "points3D.txt line 1",
            "R `300`",
        ),
    ];
    for (index, (cameras, images, points, location, reason)) in cases.into_iter().enumerate() {
        let dir = tempfile::tempdir().expect("temporary folder");
        std::fs::write(dir.path().join("cameras.txt"), cameras).expect("written");
        std::fs::write(dir.path().join("images.txt"), images).expect("written");
        std::fs::write(dir.path().join("points3D.txt"), points).expect("written");
        let err = read_colmap_text(dir.path()).expect_err("malformed");
        let message = err.to_string();
        assert!(message.contains(location), "case {index}: {message}");
        assert!(message.contains(reason), "case {index}: {message}");
    }
}

#[test]
fn missing_file_is_a_storage_error() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let err = read_colmap_text(dir.path()).expect_err("no files");
    assert_eq!(err.kind(), crate::error::ErrorKind::Storage);
    assert!(err.to_string().contains("cameras.txt"), "{err}");
}

#[test]
fn inconsistent_tracks_are_rejected_before_writing() {
    let mut bad = model();
    let last = bad.images.len() - 1;
    bad.points[0].track.push(TrackElement {
        image: last,
        keypoint: 0,
    });
    let dir = tempfile::tempdir().expect("temporary folder");
    let err = write_colmap_text(&bad, dir.path()).expect_err("inconsistent");
    assert!(err.to_string().contains("does not refer back"), "{err}");

    let mut bad = model();
    bad.images[0].name = "with space.png".into();
    let err = write_colmap_text(&bad, dir.path()).expect_err("space in name");
    assert!(err.to_string().contains("whitespace"), "{err}");

    let mut bad = model();
    bad.images[0].camera = 5;
    let err = write_colmap_text(&bad, dir.path()).expect_err("camera out of range");
    assert!(err.to_string().contains("refers to camera 5"), "{err}");
}
