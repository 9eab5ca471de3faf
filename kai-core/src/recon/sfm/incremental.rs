//! The incremental loop: register the image that observes the most 3D points, triangulate
//! its new tracks, bundle adjust locally, and globally whenever the model has grown
//! enough. The final global bundle adjustment with intrinsics refinement follows.

use super::model::Model;
use super::options::SfmOptions;
use super::refinement::{Intrinsics, filter_points, global_adjust, local_adjust};
use super::registration::{register_image, visible_points};
use super::triangulation::{TriangulationRules, retriangulate, triangulate_image};
use crate::error::Result;
use crate::recon::progress::{Progress, ProgressFn, Stage};

/// Growth in registered images, as a fraction, that triggers a global bundle adjustment.
const GLOBAL_BA_IMAGE_GROWTH: f64 = 0.10;

/// Growth in points, as a fraction, that triggers a global bundle adjustment.
const GLOBAL_BA_POINT_GROWTH: f64 = 0.25;

/// Iterations of the global bundle adjustments during growth; the final one runs
/// `options.ba_max_iterations`.
const INTERMEDIATE_GLOBAL_BA_ITERATIONS: usize = 20;

/// Rounds of final bundle adjustment and filtering at most; a round that removes no
/// observation ends them.
const FINAL_ROUNDS: usize = 3;

/// The reason each screened photo is not registered yet: the message of its last failed
/// attempt and how many 3D points it observed then, so it is retried only after it
/// observes more.
#[derive(Debug, Clone, Default)]
pub(crate) struct Failures {
    pub last: Vec<Option<(usize, String)>>,
}

/// Registers images until none more can be, then runs the final refinement.
pub(crate) fn grow(
    model: &mut Model,
    options: &SfmOptions,
    progress: ProgressFn,
) -> Result<Failures> {
    let num_photos = model.features.len();
    let rules = TriangulationRules {
        min_angle_deg: options.min_triangulation_angle,
        max_error_px: options.max_reprojection_error,
    };
    let mut failures = Failures {
        last: vec![None; num_photos],
    };
    let mut images_at_global = model.num_registered();
    let mut points_at_global = model.num_points();
    loop {
        progress(Progress {
            stage: Stage::Registration,
            done: model.num_registered(),
            total: num_photos,
        });
        let Some(image) = register_next(model, options, &mut failures) else {
            break;
        };
        triangulate_image(model, image, &rules);
        let mut local_images = vec![image];
        local_images.extend(model.most_connected(image, options.local_ba_images.saturating_sub(1)));
        if let Err(err) = local_adjust(model, image, options) {
            tracing::warn!(image = %model.rec.images[image].name, error = %err, "local bundle adjustment failed");
        }
        filter_points(model, options, Some(&local_images));

        let images = model.num_registered() as f64;
        let points = model.num_points() as f64;
        if images >= (1.0 + GLOBAL_BA_IMAGE_GROWTH) * images_at_global as f64
            || points >= (1.0 + GLOBAL_BA_POINT_GROWTH) * points_at_global as f64
        {
            global_adjust(
                model,
                options,
                INTERMEDIATE_GLOBAL_BA_ITERATIONS,
                Intrinsics::Refined,
            )?;
            filter_points(model, options, None);
            retriangulate(model, &rules);
            model.compact();
            images_at_global = model.num_registered();
            points_at_global = model.num_points();
        }
    }
    progress(Progress {
        stage: Stage::Registration,
        done: num_photos,
        total: num_photos,
    });

    progress(Progress {
        stage: Stage::Refinement,
        done: 0,
        total: FINAL_ROUNDS,
    });
    retriangulate(model, &rules);
    for round in 0..FINAL_ROUNDS {
        global_adjust(
            model,
            options,
            options.ba_max_iterations,
            Intrinsics::Refined,
        )?;
        let removed = filter_points(model, options, None);
        progress(Progress {
            stage: Stage::Refinement,
            done: round + 1,
            total: FINAL_ROUNDS,
        });
        if removed == 0 {
            break;
        }
    }
    model.compact();
    progress(Progress {
        stage: Stage::Refinement,
        done: FINAL_ROUNDS,
        total: FINAL_ROUNDS,
    });
    Ok(failures)
}

/// Tries the unregistered photos in order of the 3D points they see, most first, and
/// registers the first that succeeds. Returns its model index, or `None` when no photo
/// can be registered.
fn register_next(
    model: &mut Model,
    options: &SfmOptions,
    failures: &mut Failures,
) -> Option<usize> {
    let mut candidates: Vec<(usize, usize)> = Vec::new();
    for photo in 0..model.features.len() {
        if model.registered[photo].is_some() {
            continue;
        }
        let visible = visible_points(model, photo);
        if visible == 0 {
            continue;
        }
        if failures.last[photo]
            .as_ref()
            .is_some_and(|(seen, _)| visible <= *seen)
        {
            continue;
        }
        candidates.push((visible, photo));
    }
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (visible, photo) in candidates {
        match register_image(model, photo, options) {
            Ok(image) => {
                failures.last[photo] = None;
                return Some(image);
            }
            Err(reason) => failures.last[photo] = Some((visible, reason)),
        }
    }
    None
}
