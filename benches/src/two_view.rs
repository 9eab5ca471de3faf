//! Measures kai's relative pose estimation on the matches that `benches/recon_two_view.py`
//! writes and prints the estimates and times as JSON; the driver runs OpenCV on the same
//! matches and compares.
//!
//! Each case file contains `n` rows of four little-endian f64 (x1, y1, x2, y2 in pixels).
//! Times cover the whole estimate as a caller sees it: conversion to normalized
//! coordinates, the 5-point RANSAC with local optimisation, refinement and the
//! cheirality test.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use kai_core::recon::geometry::{RelativePoseOptions, estimate_relative_pose};
use nalgebra::Vector2;
use serde::{Deserialize, Serialize};

// The same allocator as kai's command line and bindings.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Two-view relative pose benchmark.
#[derive(Debug, Parser)]
struct Args {
    /// Folder with manifest.json and one `<case>.f64` file per case.
    #[arg(long)]
    data: PathBuf,
}

#[derive(Deserialize)]
struct Manifest {
    focal: f64,
    cx: f64,
    cy: f64,
    threshold_px: f64,
    confidence: f64,
    repeats: usize,
    cases: Vec<String>,
}

#[derive(Serialize)]
struct CaseResult {
    case: String,
    /// Median seconds per estimate.
    seconds: f64,
    /// Row-major rotation of camera 2 relative to camera 1, absent when estimation failed.
    rotation: Option<[[f64; 3]; 3]>,
    translation: Option<[f64; 3]>,
    inliers: usize,
    error: Option<String>,
}

#[derive(Serialize)]
struct Report {
    library: &'static str,
    results: Vec<CaseResult>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(args.data.join("manifest.json"))?)?;
    let mut options = RelativePoseOptions::default();
    options.ransac.max_error = manifest.threshold_px / manifest.focal;
    options.ransac.confidence = manifest.confidence;
    let mut results = Vec::new();
    for case in &manifest.cases {
        let raw = std::fs::read(args.data.join(format!("{case}.f64")))?;
        let values: Vec<f64> = raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8 bytes")))
            .collect();
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..manifest.repeats.max(1) {
            let start = Instant::now();
            let normalize = |x: f64, y: f64| {
                Vector2::new(
                    (x - manifest.cx) / manifest.focal,
                    (y - manifest.cy) / manifest.focal,
                )
            };
            let (x1, x2): (Vec<_>, Vec<_>) = values
                .chunks_exact(4)
                .map(|r| (normalize(r[0], r[1]), normalize(r[2], r[3])))
                .unzip();
            let estimate = estimate_relative_pose(&x1, &x2, &options);
            times.push(start.elapsed().as_secs_f64());
            last = Some(estimate);
        }
        times.sort_by(f64::total_cmp);
        let seconds = times[times.len() / 2];
        let result = match last.expect("at least one repeat") {
            Ok(found) => {
                let r = found.pose.rotation_matrix();
                let t = found.pose.translation;
                CaseResult {
                    case: case.clone(),
                    seconds,
                    rotation: Some(std::array::from_fn(|i| std::array::from_fn(|j| r[(i, j)]))),
                    translation: Some([t.x, t.y, t.z]),
                    inliers: found.num_inliers,
                    error: None,
                }
            }
            Err(err) => CaseResult {
                case: case.clone(),
                seconds,
                rotation: None,
                translation: None,
                inliers: 0,
                error: Some(err.to_string()),
            },
        };
        results.push(result);
    }
    println!(
        "{}",
        serde_json::to_string(&Report {
            library: "kai",
            results
        })?
    );
    Ok(())
}
