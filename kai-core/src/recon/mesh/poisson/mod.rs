//! Screened Poisson surface reconstruction (Kazhdan and Hoppe, "Screened Poisson Surface
//! Reconstruction", ACM Transactions on Graphics 32(3), 2013).
//!
//! The oriented samples define a vector field `V` (their normals, each weighted by the
//! surface area it stands for). The indicator function `χ` whose gradient best matches
//! `V`, screened towards zero at the samples, jumps from low values inside the object to
//! high values outside, and the surface is its level set at the mean value over the
//! samples.
//!
//! The solve runs coarse to fine (a cascadic multigrid): a full grid of depth up to
//! [`COARSE_DEPTH`] is solved outright, then each finer level only contains a narrow band of
//! cells around the samples and around the previous level's surface. A band level takes
//! its boundary values and its starting guess from the previous level's solution, so
//! conjugate gradients only need to resolve the detail that the finer grid adds.

mod density;
mod grid;
mod marching;
mod system;

#[cfg(test)]
mod tests;

use nalgebra::Vector3;
use rayon::prelude::*;

use self::density::{DensityGrid, cell_of};
use self::grid::{Band, dilate, morton};
use self::system::{LevelSystem, Samples, Stopping};
use super::TriangleMesh;
use crate::error::{Error, Result};
use crate::recon::cloud::{KdTree, PointCloud};
use crate::recon::progress::{Progress, ProgressFn, Stage};

/// Depth of the full grid that the solve starts from: 64 cells per side, 262,144 nodes.
const COARSE_DEPTH: u32 = 6;

/// Half-width, in cells of the next coarser grid, by which each band reaches beyond the
/// cells holding samples or the coarser surface; 1 gives fine nodes 2 to 4 cells out.
const BAND_RADIUS: u32 = 1;

/// Largest accepted `depth`: 4096 cells per side.
const MAX_DEPTH: u32 = 12;

/// Largest accepted number of points; the solver packs `8 * sample + corner` into 32 bits.
const MAX_POINTS: usize = (u32::MAX / 8) as usize;

/// Settings of [`poisson_reconstruct`].
#[derive(Debug, Clone, PartialEq)]
pub struct PoissonOptions {
    /// Depth of the finest grid: it has `2^depth` cells per side over the scaled bounding
    /// cube of the points. Each step up doubles the resolution and roughly quadruples time
    /// and memory.
    pub depth: u32,
    /// Weight `α` of the screening term that pulls the surface through the samples; 0
    /// solves the plain Poisson equation, which smooths more.
    pub screening: f64,
    /// Minimum mean number of samples per occupied cell of the grid that measures sample
    /// density; sparser clouds are measured on coarser grids.
    pub samples_per_node: f64,
    /// Ratio of the side of the reconstruction cube to the largest side of the points'
    /// bounding box; at least 1.
    pub scale: f64,
}

impl Default for PoissonOptions {
    fn default() -> Self {
        PoissonOptions {
            depth: 8,
            screening: 4.0,
            samples_per_node: 1.5,
            scale: 1.1,
        }
    }
}

impl PoissonOptions {
    /// Checks that every setting is in range.
    pub fn validate(&self) -> Result<()> {
        if !(2..=MAX_DEPTH).contains(&self.depth) {
            return Err(Error::invalid(
                "Poisson depth",
                format!("{} is outside 2..={MAX_DEPTH}", self.depth),
            ));
        }
        if !(self.screening.is_finite() && self.screening >= 0.0) {
            return Err(Error::invalid(
                "Poisson screening",
                format!("{} is not a finite non-negative weight", self.screening),
            ));
        }
        if !(self.samples_per_node.is_finite() && self.samples_per_node > 0.0) {
            return Err(Error::invalid(
                "Poisson samples per node",
                format!("{} is not a finite positive count", self.samples_per_node),
            ));
        }
        if !(self.scale.is_finite() && self.scale >= 1.0) {
            return Err(Error::invalid(
                "Poisson scale",
                format!("{} is not a finite ratio of at least 1", self.scale),
            ));
        }
        Ok(())
    }
}

/// A reconstructed surface with the sample density at each vertex.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoissonSurface {
    /// The closed surface, with vertex normals, and vertex colours when the points had
    /// colours.
    pub mesh: TriangleMesh,
    /// Number of samples near each vertex (a trilinear blend of per-cell counts); parts of
    /// the surface that no sample supports get 0. See
    /// [`trim_low_density`](super::cleanup::trim_low_density).
    pub densities: Vec<f32>,
}

/// The cube the grids cover, in world coordinates.
struct Frame {
    origin: Vector3<f64>,
    side: f64,
}

impl Frame {
    fn around(points: &[Vector3<f64>], scale: f64) -> Result<Frame> {
        let mut low = points[0];
        let mut high = points[0];
        for p in points {
            low = low.inf(p);
            high = high.sup(p);
        }
        let extent = (high - low).max();
        if extent <= 0.0 {
            return Err(Error::invalid(
                "point cloud",
                format!(
                    "all {} points coincide, so there is no surface to fit",
                    points.len()
                ),
            ));
        }
        let side = extent * scale;
        Ok(Frame {
            origin: (low + high) * 0.5 - Vector3::repeat(side * 0.5),
            side,
        })
    }

    fn to_unit(&self, p: &Vector3<f64>) -> Vector3<f64> {
        (p - self.origin) / self.side
    }

    fn to_world(&self, unit: &Vector3<f64>) -> Vector3<f64> {
        self.origin + unit * self.side
    }
}

/// Reconstructs a closed surface from a point cloud with outward normals.
///
/// The surface is watertight and edge-manifold. Where the points leave holes or open
/// boundaries it closes them smoothly, and those parts get low `densities`. Vertex
/// colours come from the nearest point when the cloud has colours. Reports
/// [`Stage::Meshing`] progress, one unit per grid level and two for extraction and
/// colouring.
///
/// Fails on an empty cloud, missing normals, non-finite positions or normals, points that
/// all coincide, or invalid `options`.
pub fn poisson_reconstruct(
    cloud: &PointCloud,
    options: &PoissonOptions,
    progress: Option<ProgressFn>,
) -> Result<PoissonSurface> {
    options.validate()?;
    let normals = checked_normals(cloud)?;
    let frame = Frame::around(&cloud.positions, options.scale)?;
    let positions: Vec<Vector3<f64>> = cloud
        .positions
        .par_iter()
        .map(|p| frame.to_unit(p))
        .collect();
    let density = DensityGrid::new(&positions, options.depth, options.samples_per_node);
    let areas = sample_areas(&positions, &density);
    let samples = Samples {
        positions: &positions,
        normals: &normals,
        areas: &areas,
    };

    let coarse_depth = options.depth.min(COARSE_DEPTH);
    let total = (options.depth - coarse_depth + 1) as usize + 2;
    let report = |done: usize| {
        if let Some(progress) = progress {
            progress(Progress {
                stage: Stage::Meshing,
                done,
                total,
            });
        }
    };
    report(0);
    let (band, values, iso) = solve_levels(&samples, options, coarse_depth, &report);
    let surface = marching::extract(&band, &values, iso);
    report(total - 1);

    let cells = f64::from(1u32 << band.depth);
    let unit_vertices: Vec<Vector3<f64>> =
        surface.positions.par_iter().map(|p| p / cells).collect();
    let densities = unit_vertices
        .par_iter()
        .map(|u| density.at(u) as f32)
        .collect();
    let world: Vec<Vector3<f64>> = unit_vertices
        .par_iter()
        .map(|u| frame.to_world(u))
        .collect();
    let colors = vertex_colors(cloud, &world);
    let mut mesh = TriangleMesh {
        positions: world
            .iter()
            .map(|p| [p.x as f32, p.y as f32, p.z as f32])
            .collect(),
        normals: None,
        colors,
        triangles: surface.triangles,
    };
    mesh.compute_vertex_normals();
    report(total);
    Ok(PoissonSurface { mesh, densities })
}

/// Checks the cloud and returns its normals scaled to unit length (zero normals stay zero
/// and add no flux).
fn checked_normals(cloud: &PointCloud) -> Result<Vec<Vector3<f64>>> {
    if cloud.is_empty() {
        return Err(Error::invalid("point cloud", "has no points"));
    }
    if cloud.len() > MAX_POINTS {
        return Err(Error::invalid(
            "point cloud",
            format!("{} points exceed the limit of {MAX_POINTS}", cloud.len()),
        ));
    }
    let Some(normals) = &cloud.normals else {
        return Err(Error::invalid(
            "point cloud normals",
            "missing; estimate and orient them before meshing",
        ));
    };
    if normals.len() != cloud.len() {
        return Err(Error::invalid(
            "point cloud normals",
            format!("{} normals for {} points", normals.len(), cloud.len()),
        ));
    }
    if let Some(index) = cloud
        .positions
        .iter()
        .position(|p| !p.iter().all(|c| c.is_finite()))
    {
        return Err(Error::invalid(
            "point cloud positions",
            format!("point {index} is {:?}, not finite", cloud.positions[index]),
        ));
    }
    if let Some(index) = normals
        .iter()
        .position(|n| !n.iter().all(|c| c.is_finite()))
    {
        return Err(Error::invalid(
            "point cloud normals",
            format!("normal {index} is {:?}, not finite", normals[index]),
        ));
    }
    Ok(normals
        .par_iter()
        .map(|n| n.try_normalize(0.0).unwrap_or_else(Vector3::zeros))
        .collect())
}

/// Returns the surface area each sample stands for (unit-cube units), inversely
/// proportional to the local sample density.
///
/// The total is the area the occupied density cells imply: a plane crosses on average 1.5
/// cells per cell-face area (the mean projected area of a unit cube), so the total is
/// `occupied * cell_side² / 1.5`.
fn sample_areas(positions: &[Vector3<f64>], density: &DensityGrid) -> Vec<f64> {
    let inverse: Vec<f64> = positions.par_iter().map(|p| 1.0 / density.at(p)).collect();
    let cell_side = 1.0 / f64::from(1u32 << density.depth);
    let total_area = density.occupied_cells() as f64 * cell_side * cell_side / 1.5;
    let sum: f64 = inverse.iter().sum();
    inverse.into_iter().map(|w| w * total_area / sum).collect()
}

/// Solves every level and returns the finest band, its nodal solution and the iso-value.
fn solve_levels(
    samples: &Samples,
    options: &PoissonOptions,
    coarse_depth: u32,
    report: &dyn Fn(usize),
) -> (Band, Vec<f64>, f64) {
    let coarse = Band::full(coarse_depth);
    let mut coarse_values = vec![0.0; coarse.node_count()];
    let system = LevelSystem::new(&coarse, samples, options.screening, true);
    let stopping = Stopping {
        relative_residual: 1e-7,
        max_iterations: 2000,
    };
    let iterations = system.solve(&mut coarse_values, stopping);
    let mut iso = system
        .mean_at_samples(&coarse_values, samples.areas)
        .unwrap_or(0.0);
    tracing::debug!(
        depth = coarse_depth,
        nodes = coarse.node_count(),
        iterations,
        "Poisson level solved"
    );
    drop(system);
    report(1);

    let mut previous: Option<(Band, Vec<f64>)> = None;
    for depth in coarse_depth + 1..=options.depth {
        let (prior_band, prior_values) = match &previous {
            Some((band, values)) => (band, values.as_slice()),
            None => (&coarse, coarse_values.as_slice()),
        };
        let band = refine_band(samples, prior_band, prior_values, iso);
        let mut values = prolongate(&band, (prior_band, prior_values), (&coarse, &coarse_values));
        let system = LevelSystem::new(&band, samples, options.screening, false);
        let stopping = Stopping {
            relative_residual: 1e-6,
            max_iterations: 500,
        };
        let iterations = system.solve(&mut values, stopping);
        iso = system
            .mean_at_samples(&values, samples.areas)
            .unwrap_or(iso);
        tracing::debug!(
            depth,
            nodes = band.node_count(),
            iterations,
            "Poisson level solved"
        );
        drop(system);
        previous = Some((band, values));
        report((depth - coarse_depth + 1) as usize);
    }
    match previous {
        Some((band, values)) => (band, values, iso),
        None => (coarse, coarse_values, iso),
    }
}

/// Returns the band of the next finer level: the cells of `prior`'s grid that hold a
/// sample or that the prior surface crosses, grown by [`BAND_RADIUS`].
fn refine_band(samples: &Samples, prior: &Band, prior_values: &[f64], iso: f64) -> Band {
    let mut cells: Vec<u64> = samples
        .positions
        .par_iter()
        .map(|p| morton(cell_of(p, prior.depth)))
        .collect();
    let crossed: Vec<u64> = (0..prior.node_count() as u32)
        .into_par_iter()
        .filter_map(|node| {
            let corners = prior.cell_corners(node)?;
            let below = corners
                .iter()
                .filter(|&&c| prior_values[c as usize] < iso)
                .count();
            (below > 0 && below < 8).then(|| morton(prior.node_coords(node)))
        })
        .collect();
    cells.extend(crossed);
    let slots = dilate(cells, 1 << prior.depth, BAND_RADIUS);
    Band::new(prior.depth + 1, slots)
}

/// Returns the values of the coarser solutions at the nodes of `band`: from `prior` (the
/// next coarser level) where its band covers the node, and otherwise from the full
/// `coarse` grid, clamped into it (its upper faces hold no nodes).
fn prolongate(band: &Band, prior: (&Band, &[f64]), coarse: (&Band, &[f64])) -> Vec<f64> {
    let to_unit = 1.0 / f64::from(1u32 << band.depth);
    (0..band.node_count() as u32)
        .into_par_iter()
        .map(|node| {
            let unit = band.node_coords(node).map(|c| f64::from(c) * to_unit);
            let prior_cells = f64::from(1u32 << prior.0.depth);
            if let Some(value) = prior.0.interpolate(prior.1, unit.map(|c| c * prior_cells)) {
                return value;
            }
            let cells = f64::from(1u32 << coarse.0.depth);
            let limit = cells - 1.0 - 1e-9;
            let point = unit.map(|c| (c * cells).clamp(0.0, limit));
            coarse.0.interpolate(coarse.1, point).unwrap_or(0.0)
        })
        .collect()
}

/// Returns each vertex's colour from the nearest point, or `None` when the cloud has no
/// colours.
fn vertex_colors(cloud: &PointCloud, vertices: &[Vector3<f64>]) -> Option<Vec<[u8; 3]>> {
    if cloud.colors.len() != cloud.len() {
        return None;
    }
    let tree = KdTree::new(&cloud.positions);
    Some(
        vertices
            .par_iter()
            .map(|v| {
                tree.nearest(v)
                    .map_or([0, 0, 0], |(index, _)| cloud.colors[index])
            })
            .collect(),
    )
}
