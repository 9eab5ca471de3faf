//! Fusion of depth maps into one point cloud: a depth survives when other depth maps see
//! the same surface point, and the agreeing observations merge into one point.

use nalgebra::Vector3;
use rayon::prelude::*;

use super::sweep::DepthMap;
use super::view::View;
use crate::recon::cloud::PointCloud;

/// Largest relative difference between a projected depth and the depth map it lands in
/// for the two to count as the same surface point.
const MAX_RELATIVE_DEPTH_DIFFERENCE: f64 = 0.01;

/// One image's depth map with its view, ready for fusion.
pub(super) struct FusionInput<'a> {
    pub view: &'a View,
    pub depth: &'a DepthMap,
    /// Images to check this one's depths against (its sources and the images it was a
    /// source for).
    pub partners: Vec<usize>,
}

/// A pixel of another depth map that agrees with a reference depth.
#[derive(Clone, Copy)]
struct Observation {
    image: usize,
    pixel: usize,
}

/// Fuses the depth maps in image order. A reference pixel becomes a point when at least
/// `min_consistent` partner depth maps agree with its depth. The point is the mean of the
/// agreeing back-projections and its colour their mean colour. Every pixel used is marked,
/// so later images do not emit the same point again. `on_image` runs after each image.
pub(super) fn fuse(
    inputs: &[FusionInput],
    min_consistent: usize,
    on_image: impl Fn(usize),
) -> PointCloud {
    let mut consumed: Vec<Vec<bool>> = inputs
        .iter()
        .map(|input| vec![false; input.depth.depth.len()])
        .collect();
    let mut cloud = PointCloud {
        normals: Some(Vec::new()),
        ..PointCloud::default()
    };
    for (reference, input) in inputs.iter().enumerate() {
        let (w, h) = (input.depth.width, input.depth.height);
        let candidates: Vec<(usize, Vec<Observation>)> = (0..w * h)
            .into_par_iter()
            .filter_map(|pixel| {
                if consumed[reference][pixel] {
                    return None;
                }
                let depth = input.depth.at(pixel % w, pixel / w)?;
                let point = input.view.back_project(pixel % w, pixel / w, depth);
                let agreeing: Vec<Observation> = input
                    .partners
                    .iter()
                    .filter_map(|&image| agreeing_pixel(&inputs[image], image, &point))
                    .filter(|o| !consumed[o.image][o.pixel])
                    .collect();
                (agreeing.len() >= min_consistent).then_some((pixel, agreeing))
            })
            .collect();

        // Candidates were found in parallel against the marks from earlier images. Accepting
        // them in pixel order, re-checked against the marks just made, keeps runs repeatable.
        for (pixel, agreeing) in candidates {
            let agreeing: Vec<Observation> = agreeing
                .into_iter()
                .filter(|o| !consumed[o.image][o.pixel])
                .collect();
            if agreeing.len() < min_consistent {
                continue;
            }
            let own = Observation {
                image: reference,
                pixel,
            };
            let merged = merge(inputs, &agreeing, own);
            for o in agreeing.iter().chain(std::iter::once(&own)) {
                consumed[o.image][o.pixel] = true;
            }
            cloud.positions.push(merged.0);
            cloud.colors.push(merged.1);
            if let Some(normals) = cloud.normals.as_mut() {
                normals.push(merged.2);
            }
        }
        on_image(reference);
    }
    cloud
}

/// Finds the pixel of `input`'s depth map that `point` projects to, when its depth agrees.
fn agreeing_pixel(input: &FusionInput, image: usize, point: &Vector3<f64>) -> Option<Observation> {
    let (pixel, depth) = input.view.project(point)?;
    let (x, y) = (pixel.x.floor(), pixel.y.floor());
    if x < 0.0 || y < 0.0 {
        return None;
    }
    let (x, y) = (x as usize, y as usize);
    if x >= input.depth.width || y >= input.depth.height {
        return None;
    }
    let measured = input.depth.at(x, y)?;
    ((measured - depth).abs() <= MAX_RELATIVE_DEPTH_DIFFERENCE * depth).then_some(Observation {
        image,
        pixel: y * input.depth.width + x,
    })
}

/// Merges observations into a point: the mean of their back-projections and colours, and
/// the mean of their depth-map normals, turned towards the reference camera.
fn merge(
    inputs: &[FusionInput],
    agreeing: &[Observation],
    own: Observation,
) -> (Vector3<f64>, [u8; 3], Vector3<f64>) {
    let mut position = Vector3::zeros();
    let mut color = [0.0; 3];
    let mut normal = Vector3::zeros();
    let all = || agreeing.iter().chain(std::iter::once(&own));
    for o in all() {
        let input = &inputs[o.image];
        let w = input.depth.width;
        let (x, y) = (o.pixel % w, o.pixel / w);
        let depth = f64::from(input.depth.depth[o.pixel]);
        let point = input.view.back_project(x, y, depth);
        position += point;

        for (sum, value) in color.iter_mut().zip(input.view.rgb[o.pixel]) {
            *sum += f64::from(value);
        }
        if let Some(n) = depth_normal(input, x, y) {
            let towards = input.view.center() - point;
            normal += if n.dot(&towards) < 0.0 { -n } else { n };
        }
    }

    let count = (agreeing.len() + 1) as f64;
    let position = position / count;
    let towards = inputs[own.image].view.center() - position;
    let normal = if normal.norm() > 0.0 {
        normal.normalize()
    } else {
        towards.normalize()
    };
    let normal = if normal.dot(&towards) < 0.0 {
        -normal
    } else {
        normal
    };
    let color = color.map(|c| (c / count).round().clamp(0.0, 255.0) as u8);
    (position, color, normal)
}

/// Computes the unit normal of the depth map at `(x, y)` as the cross product of the
/// central differences of the neighbouring 3D points. Returns `None` at borders and gaps.
fn depth_normal(input: &FusionInput, x: usize, y: usize) -> Option<Vector3<f64>> {
    let map = input.depth;
    if x == 0 || y == 0 || x + 1 >= map.width || y + 1 >= map.height {
        return None;
    }
    let at = |px: usize, py: usize| map.at(px, py).map(|d| input.view.back_project(px, py, d));
    let dx = at(x + 1, y)? - at(x - 1, y)?;
    let dy = at(x, y + 1)? - at(x, y - 1)?;
    let normal = dx.cross(&dy);
    let length = normal.norm();
    (length > 0.0 && length.is_finite()).then(|| normal / length)
}
