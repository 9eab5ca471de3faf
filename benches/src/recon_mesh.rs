//! Runs one of kai's point cloud or mesh operations on a PLY file and prints its time as
//! JSON; `benches/recon_mesh.py` runs Open3D on the same files and compares the results it
//! reads back.
//!
//! Times cover the operation alone, for a caller that already has the data in memory.
//! Reading and writing the files is outside them, as it is for the peers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, Subcommand};
use kai_core::recon::cloud::{
    PointCloud, estimate_normals, orient_normals_consistent, radius_outliers, statistical_outliers,
    voxel_down_sample,
};
use kai_core::recon::dense::{DenseOptions, densify};
use kai_core::recon::export::PlyFormat;
use kai_core::recon::mesh::lod::simplify;
use kai_core::recon::mesh::{PoissonOptions, TriangleMesh, poisson_reconstruct, trim_low_density};
use kai_core::recon::synthetic::{SceneOptions, SyntheticScene};
use serde_json::{Value, json};

/// Points of the true sparse model handed to the dense stage.
const SPARSE_POINTS: usize = 5000;

// The same allocator as kai's command line and bindings.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Point cloud and mesh operation benchmark.
#[derive(Debug, Parser)]
struct Args {
    #[command(subcommand)]
    operation: Operation,
}

#[derive(Debug, Subcommand)]
enum Operation {
    /// Voxel down-sampling; writes the reduced cloud.
    Voxel {
        input: PathBuf,
        output: PathBuf,
        #[arg(long)]
        size: f64,
    },
    /// Statistical outlier removal; writes the kept indices as little-endian u32.
    Statistical {
        input: PathBuf,
        output: PathBuf,
        #[arg(long)]
        neighbors: usize,
        #[arg(long)]
        std_ratio: f64,
    },
    /// Radius outlier removal; writes the kept indices as little-endian u32.
    Radius {
        input: PathBuf,
        output: PathBuf,
        #[arg(long)]
        radius: f64,
        #[arg(long)]
        min_neighbors: usize,
    },
    /// Normal estimation followed by consistent orientation; writes the cloud with normals.
    Normals {
        input: PathBuf,
        output: PathBuf,
        #[arg(long)]
        neighbors: usize,
        /// Neighbours of the orientation graph.
        #[arg(long)]
        orient_neighbors: usize,
    },
    /// Poisson surface reconstruction from oriented points, then the low-density trim;
    /// writes the trimmed mesh.
    Poisson {
        input: PathBuf,
        output: PathBuf,
        #[arg(long)]
        depth: u32,
        /// Share of vertices, by density, that the trim removes.
        #[arg(long)]
        trim_quantile: f64,
    },
    /// Simplification to a share of the triangles; writes the simplified mesh.
    Simplify {
        input: PathBuf,
        output: PathBuf,
        #[arg(long)]
        ratio: f64,
        /// Error bound passed to `simplify`; large, so the triangle ratio decides.
        #[arg(long, default_value_t = 1.0)]
        target_error: f64,
    },
    /// Renders a synthetic scene, densifies it from its true cameras and writes the dense
    /// cloud and points sampled on the true surfaces.
    Scene {
        /// Folder that receives dense.ply and truth.ply.
        output: PathBuf,
        #[arg(long, default_value_t = 30)]
        images: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 640)]
        width: u32,
        #[arg(long, default_value_t = 480)]
        height: u32,
        /// Points sampled on the true surfaces.
        #[arg(long, default_value_t = 200_000)]
        truth_points: usize,
    },
    /// Statistical outlier removal, normal estimation that keeps the sign of the input's
    /// normals, Poisson and the density trim, as one chain; writes the trimmed mesh.
    Chain {
        input: PathBuf,
        output: PathBuf,
        #[arg(long)]
        depth: u32,
        #[arg(long)]
        trim_quantile: f64,
    },
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let report = match Args::parse().operation {
        Operation::Voxel {
            input,
            output,
            size,
        } => {
            let cloud = PointCloud::read_ply(&input)?;
            let (reduced, seconds) = timed(|| voxel_down_sample(&cloud, size))?;
            reduced.write_ply(&output, PlyFormat::BinaryLittleEndian)?;
            json!({"seconds": seconds, "input": cloud.len(), "output": reduced.len()})
        }
        Operation::Statistical {
            input,
            output,
            neighbors,
            std_ratio,
        } => {
            let cloud = PointCloud::read_ply(&input)?;
            let (kept, seconds) = timed(|| statistical_outliers(&cloud, neighbors, std_ratio))?;
            write_indices(&output, &kept)?;
            json!({"seconds": seconds, "input": cloud.len(), "kept": kept.len()})
        }
        Operation::Radius {
            input,
            output,
            radius,
            min_neighbors,
        } => {
            let cloud = PointCloud::read_ply(&input)?;
            let (kept, seconds) = timed(|| radius_outliers(&cloud, radius, min_neighbors))?;
            write_indices(&output, &kept)?;
            json!({"seconds": seconds, "input": cloud.len(), "kept": kept.len()})
        }
        Operation::Normals {
            input,
            output,
            neighbors,
            orient_neighbors,
        } => {
            let mut cloud = PointCloud::read_ply(&input)?;
            // Estimation keeps the sign of normals already present, so normals in the file
            // would give away the true orientation.
            cloud.normals = None;
            let ((), estimate) = timed(|| estimate_normals(&mut cloud, neighbors))?;
            let ((), orient) = timed(|| orient_normals_consistent(&mut cloud, orient_neighbors))?;
            cloud.write_ply(&output, PlyFormat::BinaryLittleEndian)?;
            json!({"seconds": estimate + orient, "estimate_seconds": estimate,
                   "orient_seconds": orient, "input": cloud.len()})
        }
        Operation::Poisson {
            input,
            output,
            depth,
            trim_quantile,
        } => {
            let cloud = PointCloud::read_ply(&input)?;
            let options = PoissonOptions {
                depth,
                ..PoissonOptions::default()
            };
            let (surface, reconstruct) = timed(|| poisson_reconstruct(&cloud, &options, None))?;
            let (mesh, trim) =
                timed(|| Ok::<_, kai_core::Error>(trim_low_density(&surface, trim_quantile)))?;
            mesh.write_ply(&output, PlyFormat::BinaryLittleEndian)?;
            json!({"seconds": reconstruct + trim, "reconstruct_seconds": reconstruct,
                   "trim_seconds": trim, "input": cloud.len(),
                   "untrimmed_triangles": surface.mesh.triangles.len(),
                   "triangles": mesh.triangles.len(), "vertices": mesh.positions.len()})
        }
        Operation::Simplify {
            input,
            output,
            ratio,
            target_error,
        } => {
            let mesh = TriangleMesh::read_ply(&input)?;
            let (simplified, seconds) = timed(|| simplify(&mesh, ratio, target_error))?;
            simplified
                .mesh
                .write_ply(&output, PlyFormat::BinaryLittleEndian)?;
            json!({"seconds": seconds, "input_triangles": mesh.triangles.len(),
                   "triangles": simplified.mesh.triangles.len(),
                   "reported_error": simplified.error, "sloppy": simplified.sloppy})
        }
        Operation::Scene {
            output,
            images,
            seed,
            width,
            height,
            truth_points,
        } => {
            let options = SceneOptions {
                images,
                seed,
                width,
                height,
                ..SceneOptions::default()
            };
            let (scene, render) = timed(|| SyntheticScene::generate(&options))?;
            // True cameras, so the dense stage is measured apart from structure from motion.
            // The sparse points give it the depth range, as the 5,000 ground-truth points of
            // `kai recon synth` would.
            let truth = scene.ground_truth(SPARSE_POINTS);
            let (dense, seconds) =
                timed(|| densify(&truth, &scene.images, &DenseOptions::default(), None))?;
            std::fs::create_dir_all(&output)?;
            dense.write_ply(&output.join("dense.ply"), PlyFormat::BinaryLittleEndian)?;
            let samples = scene.sample_surface_points(truth_points);
            let truth_cloud = PointCloud {
                colors: vec![[128; 3]; samples.len()],
                positions: samples,
                normals: None,
            };
            truth_cloud.write_ply(&output.join("truth.ply"), PlyFormat::BinaryLittleEndian)?;
            json!({"seconds": seconds, "render_seconds": render, "points": dense.len()})
        }
        Operation::Chain {
            input,
            output,
            depth,
            trim_quantile,
        } => {
            let cloud = PointCloud::read_ply(&input)?;
            let (mut kept, outliers) =
                timed(|| statistical_outliers(&cloud, 20, 2.0).map(|kept| cloud.select(&kept)))?;
            let ((), normals) = timed(|| estimate_normals(&mut kept, 30))?;
            let options = PoissonOptions {
                depth,
                ..PoissonOptions::default()
            };
            let (mesh, poisson) = timed(|| {
                poisson_reconstruct(&kept, &options, None)
                    .map(|surface| trim_low_density(&surface, trim_quantile))
            })?;
            mesh.write_ply(&output, PlyFormat::BinaryLittleEndian)?;
            json!({"seconds": outliers + normals + poisson, "outlier_seconds": outliers,
                   "normal_seconds": normals, "poisson_seconds": poisson,
                   "kept": kept.len(), "triangles": mesh.triangles.len()})
        }
    };
    let threads = std::env::var("RAYON_NUM_THREADS").ok();
    let mut report: Value = report;
    report["library"] = json!("kai");
    report["threads"] = json!(threads);
    println!("{report}");
    Ok(())
}

/// Writes indices as little-endian u32, which the driver reads with numpy.
/// Runs `operation` and returns its result with the wall-clock seconds it took.
fn timed<T, E>(operation: impl FnOnce() -> Result<T, E>) -> Result<(T, f64), E> {
    let start = Instant::now();
    let value = operation()?;
    Ok((value, start.elapsed().as_secs_f64()))
}

fn write_indices(path: &Path, indices: &[usize]) -> Result<(), Box<dyn std::error::Error>> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for &index in indices {
        out.write_all(&u32::try_from(index)?.to_le_bytes())?;
    }
    out.flush()?;
    Ok(())
}
