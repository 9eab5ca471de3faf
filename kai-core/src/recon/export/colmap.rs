//! COLMAP's text model: `cameras.txt`, `images.txt` and `points3D.txt` in one folder, as
//! COLMAP's documentation describes the format (ids start at 1, quaternions are
//! `QW QX QY QZ` of the world-to-camera rotation, 2D point indices start at 0, and
//! `POINT3D_ID` -1 marks a keypoint without a 3D point).
//!
//! The writer numbers cameras, images and points by index + 1. The reader accepts any
//! ids, maps them to indices in file order, and also reads COLMAP's `SIMPLE_PINHOLE`,
//! `SIMPLE_RADIAL` and `RADIAL` cameras, converting them exactly to
//! [`CameraModel::Pinhole`] or [`CameraModel::OpenCv`]. Unregistered images are not
//! part of the format, so they are neither written nor read.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use nalgebra::{Quaternion, UnitQuaternion, Vector2, Vector3};

use crate::error::{Error, Result};
use crate::recon::camera::{Camera, CameraModel};
use crate::recon::export::write_atomically;
use crate::recon::pose::Pose;
use crate::recon::reconstruction::{Point3D, Reconstruction, RegisteredImage, TrackElement};

/// The maximum line length the reader accepts (64 MiB: an image line with about two million
/// keypoints).
const MAX_LINE_BYTES: u64 = 64 << 20;
/// The maximum number of records of one kind (cameras, images or points) the reader accepts.
const MAX_RECORDS: usize = 100_000_000;

/// Writes `reconstruction` into `dir` (created if missing) as `cameras.txt`,
/// `images.txt` and `points3D.txt`. Numbers are written in Rust's shortest form that
/// reads back to the same `f64`, so a round trip is exact.
pub fn write_colmap_text(reconstruction: &Reconstruction, dir: &Path) -> Result<()> {
    check_references(reconstruction)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create folder", dir, e))?;
    write_atomically(&dir.join("cameras.txt"), |out| {
        write_cameras(reconstruction, out)
    })?;
    write_atomically(&dir.join("images.txt"), |out| {
        write_images(reconstruction, out)
    })?;
    write_atomically(&dir.join("points3D.txt"), |out| {
        write_points(reconstruction, out)
    })
}

fn write_cameras(reconstruction: &Reconstruction, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "# Camera list with one line of data per camera:")?;
    writeln!(out, "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]")?;
    writeln!(out, "# Number of cameras: {}", reconstruction.cameras.len())?;
    for (index, camera) in reconstruction.cameras.iter().enumerate() {
        write!(
            out,
            "{} {} {} {}",
            index + 1,
            camera.model.colmap_name(),
            camera.width,
            camera.height
        )?;
        for value in camera.params() {
            write!(out, " {value}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn write_images(reconstruction: &Reconstruction, out: &mut dyn Write) -> std::io::Result<()> {
    let observations: usize = reconstruction
        .images
        .iter()
        .map(|image| image.point_ids.iter().flatten().count())
        .sum();
    let mean = if reconstruction.images.is_empty() {
        0.0
    } else {
        observations as f64 / reconstruction.images.len() as f64
    };
    writeln!(out, "# Image list with two lines of data per image:")?;
    writeln!(
        out,
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME"
    )?;
    writeln!(out, "#   POINTS2D[] as (X, Y, POINT3D_ID)")?;
    writeln!(
        out,
        "# Number of images: {}, mean observations per image: {mean}",
        reconstruction.images.len()
    )?;
    for (index, image) in reconstruction.images.iter().enumerate() {
        let q = image.pose.rotation.quaternion();
        let t = image.pose.translation;
        writeln!(
            out,
            "{} {} {} {} {} {} {} {} {} {}",
            index + 1,
            q.w,
            q.i,
            q.j,
            q.k,
            t.x,
            t.y,
            t.z,
            image.camera + 1,
            image.name
        )?;
        let mut first = true;
        for (keypoint, point) in image.keypoints.iter().zip(&image.point_ids) {
            if !first {
                write!(out, " ")?;
            }
            first = false;
            match point {
                Some(id) => write!(out, "{} {} {}", keypoint.x, keypoint.y, id + 1)?,
                None => write!(out, "{} {} -1", keypoint.x, keypoint.y)?,
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

fn write_points(reconstruction: &Reconstruction, out: &mut dyn Write) -> std::io::Result<()> {
    let summary = reconstruction.summary();
    writeln!(out, "# 3D point list with one line of data per point:")?;
    writeln!(
        out,
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)"
    )?;
    writeln!(
        out,
        "# Number of points: {}, mean track length: {}",
        summary.points, summary.mean_track_length
    )?;
    for (index, point) in reconstruction.points.iter().enumerate() {
        let p = point.position;
        let [r, g, b] = point.color;
        write!(
            out,
            "{} {} {} {} {r} {g} {b} {}",
            index + 1,
            p.x,
            p.y,
            p.z,
            point.error
        )?;
        for element in &point.track {
            write!(out, " {} {}", element.image + 1, element.keypoint)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Checks that every index the model stores is in range and that tracks and the images'
/// `point_ids` describe the same observations, which COLMAP requires.
fn check_references(reconstruction: &Reconstruction) -> Result<()> {
    let fail = |reason: String| Err(Error::invalid("reconstruction", reason));
    for (index, image) in reconstruction.images.iter().enumerate() {
        if image.camera >= reconstruction.cameras.len() {
            return fail(format!(
                "image {index} ({}) refers to camera {} of {}",
                image.name,
                image.camera,
                reconstruction.cameras.len()
            ));
        }
        if image.keypoints.len() != image.point_ids.len() {
            return fail(format!(
                "image {index} ({}) has {} keypoints but {} point ids",
                image.name,
                image.keypoints.len(),
                image.point_ids.len()
            ));
        }
        if image.name.is_empty() || image.name.chars().any(char::is_whitespace) {
            return fail(format!(
                "image {index} name `{}` is empty or contains whitespace, which the text format cannot store",
                image.name
            ));
        }
        for (keypoint, point) in image.point_ids.iter().enumerate() {
            let Some(point) = *point else { continue };
            let element = TrackElement {
                image: index,
                keypoint,
            };
            let listed = reconstruction
                .points
                .get(point)
                .is_some_and(|p| p.track.contains(&element));
            if !listed {
                return fail(format!(
                    "image {index} keypoint {keypoint} refers to point {point}, whose track does not list it"
                ));
            }
        }
    }
    for (index, point) in reconstruction.points.iter().enumerate() {
        for element in &point.track {
            let refers_back = reconstruction
                .images
                .get(element.image)
                .and_then(|image| image.point_ids.get(element.keypoint))
                .is_some_and(|id| *id == Some(index));
            if !refers_back {
                return fail(format!(
                    "point {index} lists image {} keypoint {}, which does not refer back to it",
                    element.image, element.keypoint
                ));
            }
        }
    }
    Ok(())
}

/// Reads a COLMAP text model from `dir`. Malformed content fails with an error that names
/// the file and line.
pub fn read_colmap_text(dir: &Path) -> Result<Reconstruction> {
    let (cameras, camera_ids) = read_cameras(&dir.join("cameras.txt"))?;
    let (mut images, image_ids, pending) = read_images(&dir.join("images.txt"), &camera_ids)?;
    let points = read_points(&dir.join("points3D.txt"), &image_ids, &images)?;

    // Resolve the images' POINT3D_IDs now that the points' ids are known.
    let point_ids: HashMap<u64, usize> = points.1;
    for (image_index, per_keypoint) in pending.into_iter().enumerate() {
        let image = &mut images[image_index];
        for (keypoint, id) in per_keypoint.into_iter().enumerate() {
            image.point_ids[keypoint] = match id {
                None => None,
                Some((id, line)) => Some(*point_ids.get(&id).ok_or_else(|| {
                    line_error(
                        &dir.join("images.txt"),
                        line,
                        format!("POINT3D_ID {id} is not in points3D.txt"),
                    )
                })?),
            };
        }
    }
    Ok(Reconstruction {
        cameras,
        images,
        points: points.0,
        unregistered: Vec::new(),
    })
}

fn line_error(path: &Path, line: usize, reason: impl Into<String>) -> Error {
    Error::invalid(
        format!("COLMAP file {} line {line}", path.display()),
        reason,
    )
}

/// Reads `path` line by line, passing each line with its 1-based number to `visit`,
/// bounding the line length.
fn for_each_line(path: &Path, mut visit: impl FnMut(usize, &str) -> Result<()>) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let mut reader = BufReader::new(file);
    let mut buffer = Vec::new();
    let mut number = 0;
    loop {
        buffer.clear();
        number += 1;
        let read = reader
            .by_ref()
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut buffer)
            .map_err(|e| Error::io("cannot read", path, e))?;
        if read == 0 {
            return Ok(());
        }
        if buffer.len() as u64 > MAX_LINE_BYTES {
            return Err(line_error(
                path,
                number,
                format!("is longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        let text =
            std::str::from_utf8(&buffer).map_err(|_| line_error(path, number, "is not UTF-8"))?;
        visit(number, text.trim_end_matches(['\n', '\r']))?;
    }
}

fn is_skipped(line: &str) -> bool {
    let trimmed = line.trim();
    trimmed.is_empty() || trimmed.starts_with('#')
}

fn parse<T: std::str::FromStr>(path: &Path, line: usize, field: &str, text: &str) -> Result<T> {
    text.parse().map_err(|_| {
        line_error(
            path,
            line,
            format!("{field} `{text}` is not a valid number"),
        )
    })
}

fn parse_finite(path: &Path, line: usize, field: &str, text: &str) -> Result<f64> {
    let value: f64 = parse(path, line, field, text)?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(line_error(
            path,
            line,
            format!("{field} `{text}` is not finite"),
        ))
    }
}

fn check_count(path: &Path, line: usize, count: usize) -> Result<()> {
    if count >= MAX_RECORDS {
        return Err(line_error(
            path,
            line,
            format!("more than {MAX_RECORDS} records"),
        ));
    }
    Ok(())
}

fn read_cameras(path: &Path) -> Result<(Vec<Camera>, HashMap<u64, usize>)> {
    let mut cameras = Vec::new();
    let mut ids = HashMap::new();
    for_each_line(path, |line, text| {
        if is_skipped(text) {
            return Ok(());
        }
        check_count(path, line, cameras.len())?;
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() < 4 {
            return Err(line_error(
                path,
                line,
                "expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]",
            ));
        }
        let id: u64 = parse(path, line, "CAMERA_ID", fields[0])?;
        let width: u32 = parse(path, line, "WIDTH", fields[2])?;
        let height: u32 = parse(path, line, "HEIGHT", fields[3])?;
        let params = fields[4..]
            .iter()
            .map(|text| parse_finite(path, line, "camera parameter", text))
            .collect::<Result<Vec<f64>>>()?;
        let (model, params) = convert_model(fields[1], &params)
            .ok_or_else(|| line_error(path, line, format!("camera model `{}` with {} parameters is not supported; use PINHOLE, OPENCV, SIMPLE_PINHOLE, SIMPLE_RADIAL or RADIAL", fields[1], params.len())))?;
        let camera = Camera::from_params(model, width, height, &params)
            .map_err(|e| line_error(path, line, e.to_string()))?;
        if ids.insert(id, cameras.len()).is_some() {
            return Err(line_error(
                path,
                line,
                format!("CAMERA_ID {id} appears twice"),
            ));
        }
        cameras.push(camera);
        Ok(())
    })?;
    Ok((cameras, ids))
}

/// Converts COLMAP models to the two kai supports; the conversions are exact because
/// the simpler models are special cases (equal focal lengths, fewer radial terms).
fn convert_model(name: &str, params: &[f64]) -> Option<(CameraModel, Vec<f64>)> {
    match (name, params) {
        ("PINHOLE", [_, _, _, _]) => Some((CameraModel::Pinhole, params.to_vec())),
        ("OPENCV", [_, _, _, _, _, _, _, _]) => Some((CameraModel::OpenCv, params.to_vec())),
        ("SIMPLE_PINHOLE", &[f, cx, cy]) => Some((CameraModel::Pinhole, vec![f, f, cx, cy])),
        ("SIMPLE_RADIAL", &[f, cx, cy, k]) => {
            Some((CameraModel::OpenCv, vec![f, f, cx, cy, k, 0.0, 0.0, 0.0]))
        }
        ("RADIAL", &[f, cx, cy, k1, k2]) => {
            Some((CameraModel::OpenCv, vec![f, f, cx, cy, k1, k2, 0.0, 0.0]))
        }
        _ => None,
    }
}

/// Each image's POINT3D_IDs with the line they came from, resolved once points are read.
type PendingPointIds = Vec<Vec<Option<(u64, usize)>>>;

fn read_images(
    path: &Path,
    camera_ids: &HashMap<u64, usize>,
) -> Result<(Vec<RegisteredImage>, HashMap<u64, usize>, PendingPointIds)> {
    let mut images: Vec<RegisteredImage> = Vec::new();
    let mut ids = HashMap::new();
    let mut pending: PendingPointIds = Vec::new();
    // After an image line, the next line (even an empty one) is its POINTS2D line.
    let mut expecting_points = false;
    for_each_line(path, |line, text| {
        if expecting_points {
            expecting_points = false;
            let fields: Vec<&str> = text.split_whitespace().collect();
            if !fields.len().is_multiple_of(3) {
                return Err(line_error(
                    path,
                    line,
                    "POINTS2D must be triples of X Y POINT3D_ID",
                ));
            }
            let image = images
                .last_mut()
                .expect("an image line came before its POINTS2D line");
            let mut per_keypoint = Vec::with_capacity(fields.len() / 3);
            for triple in fields.chunks_exact(3) {
                let x = parse_finite(path, line, "X", triple[0])?;
                let y = parse_finite(path, line, "Y", triple[1])?;
                let id: i64 = parse(path, line, "POINT3D_ID", triple[2])?;
                image.keypoints.push(Vector2::new(x, y));
                image.point_ids.push(None);
                per_keypoint.push(match id {
                    -1 => None,
                    id if id >= 0 => Some((id as u64, line)),
                    other => {
                        return Err(line_error(
                            path,
                            line,
                            format!("POINT3D_ID {other} is negative"),
                        ));
                    }
                });
            }
            pending.push(per_keypoint);
            return Ok(());
        }
        if is_skipped(text) {
            return Ok(());
        }
        check_count(path, line, images.len())?;
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 10 {
            return Err(line_error(
                path,
                line,
                "expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME (a NAME without spaces)",
            ));
        }
        let id: u64 = parse(path, line, "IMAGE_ID", fields[0])?;
        let mut q = [0.0; 4];
        for (slot, (name, text)) in q
            .iter_mut()
            .zip(["QW", "QX", "QY", "QZ"].iter().zip(&fields[1..5]))
        {
            *slot = parse_finite(path, line, name, text)?;
        }
        let quaternion = Quaternion::new(q[0], q[1], q[2], q[3]);
        if quaternion.norm().is_nan() || quaternion.norm() <= 1e-6 {
            return Err(line_error(
                path,
                line,
                "the quaternion QW QX QY QZ has zero length",
            ));
        }
        let mut t = [0.0; 3];
        for (slot, (name, text)) in t
            .iter_mut()
            .zip(["TX", "TY", "TZ"].iter().zip(&fields[5..8]))
        {
            *slot = parse_finite(path, line, name, text)?;
        }
        let camera_id: u64 = parse(path, line, "CAMERA_ID", fields[8])?;
        let camera = *camera_ids.get(&camera_id).ok_or_else(|| {
            line_error(
                path,
                line,
                format!("CAMERA_ID {camera_id} is not in cameras.txt"),
            )
        })?;
        if ids.insert(id, images.len()).is_some() {
            return Err(line_error(
                path,
                line,
                format!("IMAGE_ID {id} appears twice"),
            ));
        }
        images.push(RegisteredImage {
            name: fields[9].to_owned(),
            camera,
            pose: Pose::new(
                UnitQuaternion::from_quaternion(quaternion),
                Vector3::from(t),
            ),
            keypoints: Vec::new(),
            point_ids: Vec::new(),
        });
        expecting_points = true;
        Ok(())
    })?;
    // An image on the last line without a POINTS2D line has no keypoints.
    if expecting_points {
        pending.push(Vec::new());
    }
    Ok((images, ids, pending))
}

fn read_points(
    path: &Path,
    image_ids: &HashMap<u64, usize>,
    images: &[RegisteredImage],
) -> Result<(Vec<Point3D>, HashMap<u64, usize>)> {
    let mut points = Vec::new();
    let mut ids = HashMap::new();
    for_each_line(path, |line, text| {
        if is_skipped(text) {
            return Ok(());
        }
        check_count(path, line, points.len())?;
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() < 8 || !(fields.len() - 8).is_multiple_of(2) {
            return Err(line_error(
                path,
                line,
                "expected POINT3D_ID X Y Z R G B ERROR TRACK[] as IMAGE_ID POINT2D_IDX pairs",
            ));
        }
        let id: u64 = parse(path, line, "POINT3D_ID", fields[0])?;
        let mut position = Vector3::zeros();
        for (axis, name) in ["X", "Y", "Z"].iter().enumerate() {
            position[axis] = parse_finite(path, line, name, fields[1 + axis])?;
        }
        let mut color = [0u8; 3];
        for (channel, name) in ["R", "G", "B"].iter().enumerate() {
            color[channel] = parse(path, line, name, fields[4 + channel])?;
        }
        let error = parse_finite(path, line, "ERROR", fields[7])?;
        let mut track = Vec::with_capacity((fields.len() - 8) / 2);
        for pair in fields[8..].chunks_exact(2) {
            let image_id: u64 = parse(path, line, "IMAGE_ID", pair[0])?;
            let keypoint: usize = parse(path, line, "POINT2D_IDX", pair[1])?;
            let image = *image_ids.get(&image_id).ok_or_else(|| {
                line_error(
                    path,
                    line,
                    format!("IMAGE_ID {image_id} is not in images.txt"),
                )
            })?;
            if keypoint >= images[image].keypoints.len() {
                return Err(line_error(
                    path,
                    line,
                    format!(
                        "POINT2D_IDX {keypoint} is out of range for IMAGE_ID {image_id} ({} points)",
                        images[image].keypoints.len()
                    ),
                ));
            }
            track.push(TrackElement { image, keypoint });
        }
        if ids.insert(id, points.len()).is_some() {
            return Err(line_error(
                path,
                line,
                format!("POINT3D_ID {id} appears twice"),
            ));
        }
        points.push(Point3D {
            position,
            color,
            error,
            track,
        });
        Ok(())
    })?;
    Ok((points, ids))
}

#[cfg(test)]
mod tests;
