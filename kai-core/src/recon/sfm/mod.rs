//! Incremental structure from motion: from a set of photos to calibrated cameras, posed
//! images and a sparse point cloud.
//!
//! [`reconstruct`] runs the stages of [`Stage`](crate::recon::progress::Stage) in order:
//!
//! 1. Screening: each photo is decoded under the image limits, its EXIF focal length
//!    read, its quality checked when thresholds are given, and a copy downscaled to the
//!    feature resolution.
//! 2. Features: SIFT keypoints (mapped back to original pixels), descriptors and the
//!    colour at each keypoint.
//! 3. Matching: every pair of photos, mutual nearest neighbours with Lowe's ratio test.
//! 4. Verification: a fundamental matrix RANSAC keeps the matches of one epipolar
//!    geometry. The relative pose from the prior intrinsics and a homography test rate
//!    each pair as a starting pair. Verified matches join into tracks.
//! 5. Registration: the model starts from the pair with the most inliers among those with
//!    a wide enough baseline, then adds the photo that observes the most 3D points (PnP
//!    RANSAC and refinement), triangulates its new tracks and bundle adjusts around it,
//!    with a global bundle adjustment and re-triangulation whenever the model has grown.
//! 6. Refinement: global bundle adjustment with intrinsics refinement and outlier
//!    filtering.
//!
//! Photos that fail screening, have too few features or cannot be registered are listed
//! in [`Reconstruction::unregistered`] with the reason. The run fails only when no model
//! can be started at all, with an error naming the cause (too few usable photos,
//! textureless views, no overlapping pair, or no parallax).

mod align;
mod cameras;
mod extraction;
mod incremental;
mod initialization;
mod input;
mod matching;
mod model;
mod options;
mod refinement;
mod registration;
mod screening;
mod tracks;
mod triangulation;
mod verification;

pub use align::{Similarity, umeyama};
pub use input::{ImageSource, SfmInput, inputs_from_dir};
pub use options::SfmOptions;
pub use screening::{AcceptedPhoto, ScreeningReport, screen_photos};

use crate::error::{Error, Result};
use crate::image::ImageLimits;
use crate::recon::progress::ProgressFn;
use crate::recon::reconstruction::{Reconstruction, UnregisteredImage};

use extraction::ImageFeatures;
use model::Model;
use screening::ScreenedImage;
use tracks::Tracks;
use verification::VerifiedPair;

/// Photos listed by name at most in an error message; the rest are counted.
const MAX_LISTED_PHOTOS: usize = 5;

/// Reconstructs cameras, poses and 3D points from `inputs`, reporting progress to
/// `progress` (from worker threads).
///
/// Images in the result are in input order; points carry their mean reprojection error
/// and the mean colour of their observations. Results repeat exactly for the same inputs
/// and options.
///
/// # Errors
///
/// [`Error::InvalidInput`] for invalid `options` or `limits`. [`Error::InvalidInput`] on
/// `photos` when fewer than two photos are usable (each one's reason named), when no pair
/// of photos shares enough verified matches, or when no pair has enough parallax (photos
/// taken from one spot). The same when no initial pair can be reconstructed. Errors of
/// bundle adjustment pass through.
pub fn reconstruct(
    inputs: &[SfmInput],
    options: &SfmOptions,
    limits: &ImageLimits,
    progress: ProgressFn,
) -> Result<Reconstruction> {
    options.validate()?;
    limits.validate()?;
    if inputs.len() < 2 {
        return Err(Error::invalid(
            "photos",
            format!(
                "{} given; structure from motion needs at least 2 overlapping photos",
                inputs.len()
            ),
        ));
    }

    let (mut screened, mut dropped) = screening::screen(inputs, options, limits, progress);
    let extracted = extraction::extract(&mut screened, options, progress);
    let mut usable: Vec<ScreenedImage> = Vec::new();
    let mut features: Vec<ImageFeatures> = Vec::new();
    for (image, result) in screened.into_iter().zip(extracted) {
        let reason = match result {
            Ok(found) if found.keypoints.len() >= options.min_pair_inliers => {
                usable.push(image);
                features.push(found);
                continue;
            }
            Ok(found) => format!(
                "too few features ({} < {}); the view seems textureless",
                found.keypoints.len(),
                options.min_pair_inliers
            ),
            Err(err) => format!("feature detection failed: {err}"),
        };
        dropped.push((
            image.input,
            UnregisteredImage {
                name: image.name,
                reason,
            },
        ));
    }
    if usable.len() < 2 {
        dropped.sort_by_key(|(input, _)| *input);
        return Err(too_few_usable(inputs.len(), usable.len(), &dropped));
    }

    let names: Vec<String> = usable.iter().map(|image| image.name.clone()).collect();
    let (cameras, camera_of) = cameras::group_cameras(&usable, options.camera_model);
    let prior_of: Vec<_> = camera_of.iter().map(|&camera| cameras[camera]).collect();

    let putative = matching::match_all_pairs(
        &features,
        options.match_ratio,
        options.min_pair_inliers,
        progress,
    )?;
    let verified =
        verification::verify_all_pairs(&putative, &features, &prior_of, options, progress);
    if verified.is_empty() {
        return Err(no_verified_pair(&features, &names, &putative, options));
    }
    let num_keypoints: Vec<usize> = features.iter().map(|f| f.keypoints.len()).collect();
    let tracks = Tracks::build(
        &num_keypoints,
        verified
            .iter()
            .map(|pair| (pair.a, pair.b, &pair.matches[..])),
    );

    let mut model = start_model(
        &verified, &cameras, &features, &tracks, &names, &camera_of, options,
    )?;
    let failures = incremental::grow(&mut model, options, progress)?;

    for (photo, image) in usable.iter().enumerate() {
        if model.registered[photo].is_some() {
            continue;
        }
        let reason = match &failures.last[photo] {
            Some((_, reason)) => reason.clone(),
            None if verified
                .iter()
                .any(|pair| pair.a == photo || pair.b == photo) =>
            {
                "its verified matches lead to no 3D point of the model".to_owned()
            }
            None => format!(
                "no other photo shares {} verified matches with it",
                options.min_pair_inliers
            ),
        };
        dropped.push((
            image.input,
            UnregisteredImage {
                name: image.name.clone(),
                reason,
            },
        ));
    }
    dropped.sort_by_key(|(input, _)| *input);
    let input_of: Vec<usize> = usable.iter().map(|image| image.input).collect();
    Ok(finish(
        model,
        &input_of,
        dropped.into_iter().map(|(_, image)| image).collect(),
    ))
}

/// Tries the initial pair candidates in order and returns the first model that starts.
fn start_model<'a>(
    verified: &[VerifiedPair],
    cameras: &[crate::recon::camera::Camera],
    features: &'a [ImageFeatures],
    tracks: &'a Tracks,
    names: &'a [String],
    camera_of: &'a [usize],
    options: &SfmOptions,
) -> Result<Model<'a>> {
    let candidates = initialization::candidate_pairs(verified, options)?;
    let mut reasons = Vec::new();
    for index in candidates {
        let pair = &verified[index];
        let mut model = Model::new(cameras.to_vec(), features, tracks, names, camera_of);
        match initialization::initialize(&mut model, pair, options) {
            Ok(()) => return Ok(model),
            Err(reason) => {
                reasons.push(format!("{} and {}: {reason}", names[pair.a], names[pair.b]))
            }
        }
    }
    Err(Error::invalid(
        "photos",
        format!(
            "no initial image pair could be reconstructed ({})",
            list_limited(&reasons)
        ),
    ))
}

/// Puts the registered images in input order, drops unused cameras, and sets point
/// colours and errors.
fn finish(
    model: Model,
    input_of: &[usize],
    unregistered: Vec<UnregisteredImage>,
) -> Reconstruction {
    let Model {
        rec,
        features,
        source,
        ..
    } = model;
    let Reconstruction {
        cameras,
        images,
        mut points,
        ..
    } = rec;

    let mut order: Vec<usize> = (0..images.len()).collect();
    order.sort_by_key(|&image| input_of[source[image]]);
    let mut new_image = vec![0usize; images.len()];
    for (new, &old) in order.iter().enumerate() {
        new_image[old] = new;
    }
    let mut camera_used = vec![None; cameras.len()];
    let mut kept_cameras = Vec::new();
    let mut slots: Vec<Option<crate::recon::reconstruction::RegisteredImage>> =
        images.into_iter().map(Some).collect();
    let mut ordered = Vec::with_capacity(slots.len());
    for &old in &order {
        let Some(mut image) = slots[old].take() else {
            continue;
        };
        let camera = *camera_used[image.camera].get_or_insert_with(|| {
            kept_cameras.push(cameras[image.camera]);
            kept_cameras.len() - 1
        });
        image.camera = camera;
        ordered.push(image);
    }

    for point in &mut points {
        let mut sum = [0u32; 3];
        for element in &mut point.track {
            let photo = source[element.image];
            let color = features[photo].colors[element.keypoint];
            for channel in 0..3 {
                sum[channel] += u32::from(color[channel]);
            }
            element.image = new_image[element.image];
        }
        point.track.sort_by_key(|element| element.image);
        let count = point.track.len().max(1) as u32;
        point.color = sum.map(|channel| ((channel + count / 2) / count) as u8);
    }

    let mut reconstruction = Reconstruction {
        cameras: kept_cameras,
        images: ordered,
        points,
        unregistered,
    };
    for index in 0..reconstruction.points.len() {
        let track = reconstruction.points[index].track.clone();
        let errors: Vec<f64> = track
            .iter()
            .filter_map(|element| reconstruction.reprojection_error(index, *element))
            .collect();
        reconstruction.points[index].error = if errors.is_empty() {
            0.0
        } else {
            errors.iter().sum::<f64>() / errors.len() as f64
        };
    }
    reconstruction
}

fn list_limited(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(MAX_LISTED_PHOTOS)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > MAX_LISTED_PHOTOS {
        text.push_str(&format!("; and {} more", items.len() - MAX_LISTED_PHOTOS));
    }
    text
}

fn too_few_usable(total: usize, usable: usize, dropped: &[(usize, UnregisteredImage)]) -> Error {
    let reasons: Vec<String> = dropped
        .iter()
        .map(|(_, image)| format!("{}: {}", image.name, image.reason))
        .collect();
    let textureless = dropped
        .iter()
        .any(|(_, image)| image.reason.starts_with("too few features"));
    let hint = if textureless {
        "; textureless views give too few features to match, so photograph a surface with \
         visible texture or pattern"
    } else {
        ""
    };
    Error::invalid(
        "photos",
        format!(
            "{usable} of {total} photos are usable and at least 2 are needed ({}){hint}",
            list_limited(&reasons)
        ),
    )
}

/// Median keypoint displacement, in pixels, below which two photos count as the same view.
const SAME_VIEW_DISPLACEMENT_PX: f64 = 1.0;

/// Returns the median distance between the matched keypoints of a pair, in pixels.
fn median_displacement(features: &[ImageFeatures], pair: &matching::PairMatches) -> Option<f64> {
    let mut moved: Vec<f64> = pair
        .matches
        .iter()
        .map(|&(a, b)| {
            (features[pair.a].keypoints[a as usize] - features[pair.b].keypoints[b as usize]).norm()
        })
        .collect();
    if moved.is_empty() {
        return None;
    }
    moved.sort_by(f64::total_cmp);
    Some(moved[moved.len() / 2])
}

fn no_verified_pair(
    features: &[ImageFeatures],
    names: &[String],
    putative: &[matching::PairMatches],
    options: &SfmOptions,
) -> Error {
    let mut counts: Vec<usize> = features.iter().map(|f| f.keypoints.len()).collect();
    counts.sort_unstable();
    let median_features = counts[counts.len() / 2];
    let best = putative
        .iter()
        .max_by_key(|pair| (pair.matches.len(), std::cmp::Reverse((pair.a, pair.b))))
        .map_or_else(
            || {
                format!(
                    "no pair has even {} putative matches",
                    options.min_pair_inliers
                )
            },
            |pair| {
                format!(
                    "the most putative matches, {} between {} and {}, fail geometric verification",
                    pair.matches.len(),
                    names[pair.a],
                    names[pair.b]
                )
            },
        );
    let best_pair = putative
        .iter()
        .max_by_key(|pair| (pair.matches.len(), std::cmp::Reverse((pair.a, pair.b))));
    let displacement = best_pair.and_then(|pair| median_displacement(features, pair));
    let textureless = if median_features < 10 * options.min_pair_inliers {
        "; the views seem textureless, so photograph a surface with visible texture or pattern"
            .to_owned()
    } else if let Some(moved) = displacement.filter(|moved| *moved < SAME_VIEW_DISPLACEMENT_PX) {
        format!(
            "; the matched keypoints moved {moved:.2} px (median) between the two photos, so \
             they show the same view: the camera did not move, take the photos from \
             different positions around the object"
        )
    } else {
        "; make sure consecutive photos overlap by more than half".to_owned()
    };
    Error::invalid(
        "photos",
        format!(
            "no image pair has {} verified matches: {best} (median {median_features} features per \
             photo){textureless}",
            options.min_pair_inliers
        ),
    )
}
