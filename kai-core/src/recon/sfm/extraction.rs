//! Feature extraction: SIFT keypoints and descriptors of each screened photo, with
//! keypoints mapped back to the original photo's pixels and their colours sampled, so the
//! photos need not stay in memory afterwards.

use std::sync::Mutex;

use image::RgbImage;
use nalgebra::Vector2;
use rayon::prelude::*;

use super::options::SfmOptions;
use super::screening::ScreenedImage;
use crate::error::Result;
use crate::recon::features::{self, DESCRIPTOR_LENGTH, SiftOptions};
use crate::recon::progress::{Progress, ProgressFn, Stage};

/// The features of one photo.
#[derive(Debug, Clone)]
pub(crate) struct ImageFeatures {
    /// Keypoint positions in pixels of the original photo.
    pub keypoints: Vec<Vector2<f64>>,
    /// Colour of the photo at each keypoint, RGB.
    pub colors: Vec<[u8; 3]>,
    /// SIFT descriptors, parallel to `keypoints`.
    pub descriptors: Vec<[u8; DESCRIPTOR_LENGTH]>,
}

/// Extracts the features of every photo in parallel, consuming the working images.
/// Returns one result per photo; a photo whose detection fails does not stop the others.
pub(crate) fn extract(
    images: &mut [ScreenedImage],
    options: &SfmOptions,
    progress: ProgressFn,
) -> Vec<Result<ImageFeatures>> {
    let sift = SiftOptions {
        max_features: options.max_features,
        ..SiftOptions::default()
    };
    let total = images.len();
    let done = Mutex::new(0usize);
    progress(Progress {
        stage: Stage::Features,
        done: 0,
        total,
    });
    images
        .par_iter_mut()
        .map(|image| {
            let working = std::mem::take(&mut image.working);
            let result = extract_one(&working, image.width, image.height, &sift);
            let mut done = done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *done += 1;
            progress(Progress {
                stage: Stage::Features,
                done: *done,
                total,
            });
            result
        })
        .collect()
}

fn extract_one(
    working: &RgbImage,
    width: u32,
    height: u32,
    sift: &SiftOptions,
) -> Result<ImageFeatures> {
    let gray = image::imageops::grayscale(working);
    let found = features::detect(&gray, sift)?;
    let (working_width, working_height) = working.dimensions();
    let scale_x = f64::from(width) / f64::from(working_width);
    let scale_y = f64::from(height) / f64::from(working_height);
    let mut keypoints = Vec::with_capacity(found.len());
    let mut colors = Vec::with_capacity(found.len());
    for keypoint in &found.keypoints {
        let x = f64::from(keypoint.x);
        let y = f64::from(keypoint.y);
        keypoints.push(Vector2::new(x * scale_x, y * scale_y));
        // Keypoint coordinates put pixel (i, j) over [i, i+1) x [j, j+1).
        let column = (x.floor().max(0.0) as u32).min(working_width - 1);
        let row = (y.floor().max(0.0) as u32).min(working_height - 1);
        colors.push(working.get_pixel(column, row).0);
    }
    Ok(ImageFeatures {
        keypoints,
        colors,
        descriptors: found.descriptors,
    })
}
