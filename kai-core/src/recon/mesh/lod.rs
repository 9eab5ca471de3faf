//! Levels of detail: meshes simplified to given shares of the original triangle count
//! with meshoptimizer's quadric edge-collapse simplifier, which also weighs normals and
//! colours, so a level keeps shading and colour boundaries where it can.

use std::collections::HashMap;

use meshopt::{SimplifyOptions, VertexDataAdapter};

use crate::error::{Error, Result};
use crate::recon::export::check_mesh;
use crate::recon::mesh::TriangleMesh;

/// Weight of each normal component against position error in the simplifier's metric.
/// Normals span -1..1, so 0.5 lets a flipped normal count about as much as a shift by
/// the mesh's extent.
const NORMAL_WEIGHT: f32 = 0.5;
/// Weight of each colour channel (in 0..1) against position error.
const COLOR_WEIGHT: f32 = 1.0;
/// A level counts as on target when it has at most this factor times the target
/// triangle count.
const TARGET_SLACK: f64 = 1.1;

/// Settings of [`build_lods`].
#[derive(Debug, Clone, PartialEq)]
pub struct LodOptions {
    /// Share of the original triangles that each level keeps, in (0, 1] and strictly
    /// decreasing; a ratio of 1.0 is the original mesh.
    pub ratios: Vec<f64>,
    /// Largest error each simplification may introduce, relative to the mesh's extent
    /// (0.01 is 1 % of the largest bounding-box side). A level stops above its target
    /// count rather than exceed it.
    pub target_error: f64,
    /// Keeps vertices on open borders in place, so adjacent pieces still fit together.
    pub lock_border: bool,
}

impl Default for LodOptions {
    fn default() -> Self {
        Self {
            ratios: vec![1.0, 0.5, 0.25, 0.125],
            target_error: 0.01,
            lock_border: false,
        }
    }
}

impl LodOptions {
    /// Checks the ratios and the error bound.
    pub fn validate(&self) -> Result<()> {
        if self.ratios.is_empty() {
            return Err(Error::invalid("LOD ratios", "the list is empty"));
        }
        for (level, &ratio) in self.ratios.iter().enumerate() {
            check_ratio(ratio).map_err(|e| match e {
                Error::InvalidInput { reason, .. } => {
                    Error::invalid("LOD ratios", format!("level {level}: {reason}"))
                }
                other => other,
            })?;
            if level > 0 && ratio >= self.ratios[level - 1] {
                return Err(Error::invalid(
                    "LOD ratios",
                    format!(
                        "level {level} ratio {ratio} is not below level {} ratio {}; ratios \
                         must decrease strictly",
                        level - 1,
                        self.ratios[level - 1]
                    ),
                ));
            }
        }
        check_target_error(self.target_error)
    }
}

fn check_ratio(ratio: f64) -> Result<()> {
    if !(ratio > 0.0 && ratio <= 1.0) {
        return Err(Error::invalid(
            "simplification ratio",
            format!("{ratio} is outside (0, 1]"),
        ));
    }
    Ok(())
}

fn check_target_error(target_error: f64) -> Result<()> {
    if !(target_error.is_finite() && target_error >= 0.0) {
        return Err(Error::invalid(
            "target error",
            format!("{target_error} is not a finite non-negative number"),
        ));
    }
    Ok(())
}

/// A simplified mesh with the error of the simplification.
#[derive(Debug, Clone, PartialEq)]
pub struct Simplified {
    /// The simplified mesh, without unreferenced vertices.
    pub mesh: TriangleMesh,
    /// Deviation from the input, relative to the input's extent, as meshoptimizer
    /// estimates it (including the weighted normal and colour error).
    pub error: f64,
    /// Whether the topology-ignoring fallback (vertex clustering) produced the mesh.
    pub sloppy: bool,
}

/// Simplifies `mesh` to `ratio` of its triangles without exceeding `target_error`
/// (relative to the mesh's extent); open borders may move.
pub fn simplify(mesh: &TriangleMesh, ratio: f64, target_error: f64) -> Result<Simplified> {
    simplify_with_border(mesh, ratio, target_error, false)
}

/// Like [`simplify`], and keeps vertices on open borders in place when `lock_border`
/// is set.
pub fn simplify_with_border(
    mesh: &TriangleMesh,
    ratio: f64,
    target_error: f64,
    lock_border: bool,
) -> Result<Simplified> {
    check_ratio(ratio)?;
    check_target_error(target_error)?;
    check_mesh(mesh)?;
    let target = target_triangles(mesh.triangles.len(), ratio);
    Ok(simplify_to(mesh, target, target_error as f32, lock_border))
}

fn target_triangles(original: usize, ratio: f64) -> usize {
    ((original as f64 * ratio).round() as usize).max(1)
}

/// Simplifies to at most `target` triangles with the attribute-aware simplifier. When
/// that stops more than 10 % above the target although the error budget is not used up
/// (the topology blocks further collapses, as with many small disconnected pieces),
/// vertex clustering is tried and kept if it gets closer.
fn simplify_to(
    mesh: &TriangleMesh,
    target: usize,
    target_error: f32,
    lock_border: bool,
) -> Simplified {
    if target >= mesh.triangles.len() {
        return Simplified {
            mesh: mesh.clone(),
            error: 0.0,
            sloppy: false,
        };
    }
    let position_bytes: Vec<u8> = mesh
        .positions
        .iter()
        .flatten()
        .flat_map(|v| v.to_ne_bytes())
        .collect();
    let indices: Vec<u32> = mesh.triangles.iter().flatten().copied().collect();
    let Ok(vertices) = VertexDataAdapter::new(&position_bytes, 12, 0) else {
        // Only an empty position list reaches here, and then there are no triangles.
        return Simplified {
            mesh: mesh.clone(),
            error: 0.0,
            sloppy: false,
        };
    };
    let options = if lock_border {
        SimplifyOptions::LockBorder
    } else {
        SimplifyOptions::None
    };
    let (attributes, weights) = vertex_attributes(mesh);
    let mut error = 0.0f32;
    let result = if weights.is_empty() {
        meshopt::simplify(
            &indices,
            &vertices,
            target * 3,
            target_error,
            options,
            Some(&mut error),
        )
    } else {
        // No vertex is locked individually; LockBorder handles borders.
        let locks = vec![false; mesh.positions.len()];
        meshopt::simplify_with_attributes_and_locks(
            &indices,
            &vertices,
            &attributes,
            &weights,
            weights.len() * 4,
            &locks,
            target * 3,
            target_error,
            options,
            Some(&mut error),
        )
    };
    let mut best = (result, error, false);
    let stuck = (best.0.len() / 3) as f64 > target as f64 * TARGET_SLACK && error < target_error;
    if stuck {
        let locks = if lock_border {
            border_vertices(mesh)
        } else {
            vec![false; mesh.positions.len()]
        };
        let mut sloppy_error = 0.0f32;
        let sloppy = meshopt::simplify_sloppy_with_locks(
            &indices,
            &vertices,
            &locks,
            target * 3,
            target_error,
            Some(&mut sloppy_error),
        );
        if !sloppy.is_empty() && sloppy.len() < best.0.len() {
            best = (sloppy, sloppy_error, true);
        }
    }
    let (indices, error, sloppy) = best;
    Simplified {
        mesh: compact(mesh, &indices),
        error: f64::from(error),
        sloppy,
    }
}

/// Per-vertex normals and colours (in 0..1) in one interleaved array, with their weights.
fn vertex_attributes(mesh: &TriangleMesh) -> (Vec<f32>, Vec<f32>) {
    let mut weights = Vec::new();
    if mesh.normals.is_some() {
        weights.extend([NORMAL_WEIGHT; 3]);
    }
    if mesh.colors.is_some() {
        weights.extend([COLOR_WEIGHT; 3]);
    }
    let mut attributes = Vec::with_capacity(mesh.positions.len() * weights.len());
    for vertex in 0..mesh.positions.len() {
        if let Some(normals) = &mesh.normals {
            attributes.extend(normals[vertex]);
        }
        if let Some(colors) = &mesh.colors {
            attributes.extend(colors[vertex].map(|c| f32::from(c) / 255.0));
        }
    }
    (attributes, weights)
}

/// Marks the vertices on edges that only one triangle uses.
fn border_vertices(mesh: &TriangleMesh) -> Vec<bool> {
    let mut edge_uses: HashMap<(u32, u32), u32> = HashMap::new();
    for triangle in &mesh.triangles {
        for k in 0..3 {
            let (a, b) = (triangle[k], triangle[(k + 1) % 3]);
            *edge_uses.entry((a.min(b), a.max(b))).or_insert(0) += 1;
        }
    }
    let mut border = vec![false; mesh.positions.len()];
    for ((a, b), uses) in edge_uses {
        if uses == 1 {
            border[a as usize] = true;
            border[b as usize] = true;
        }
    }
    border
}

/// Builds the mesh of `indices` (into `mesh`'s vertices), keeping only the vertices they
/// use, in order of first use.
fn compact(mesh: &TriangleMesh, indices: &[u32]) -> TriangleMesh {
    let mut remap = vec![u32::MAX; mesh.positions.len()];
    let mut used = Vec::new();
    let triangles = indices
        .chunks_exact(3)
        .map(|t| {
            std::array::from_fn(|k| {
                let old = t[k] as usize;
                if remap[old] == u32::MAX {
                    remap[old] = used.len() as u32;
                    used.push(old);
                }
                remap[old]
            })
        })
        .collect();
    TriangleMesh {
        positions: used.iter().map(|&v| mesh.positions[v]).collect(),
        normals: mesh
            .normals
            .as_ref()
            .map(|n| used.iter().map(|&v| n[v]).collect()),
        colors: mesh
            .colors
            .as_ref()
            .map(|c| used.iter().map(|&v| c[v]).collect()),
        triangles,
    }
}

/// Builds the levels of detail, one per ratio, each with its estimated error relative to
/// the original's extent. Each level is simplified both from the original and from the
/// previous level, and the one with the smaller estimated error is kept. The estimate of
/// a chained level is the sum of the two steps' errors, which is an upper bound.
pub fn build_lod_levels(mesh: &TriangleMesh, options: &LodOptions) -> Result<Vec<Simplified>> {
    options.validate()?;
    check_mesh(mesh)?;
    let target_error = options.target_error as f32;
    let mut levels: Vec<Simplified> = Vec::with_capacity(options.ratios.len());
    for &ratio in &options.ratios {
        let target = target_triangles(mesh.triangles.len(), ratio);
        let direct = simplify_to(mesh, target, target_error, options.lock_border);
        let chained = levels.last().map(|previous| {
            let step = simplify_to(&previous.mesh, target, target_error, options.lock_border);
            Simplified {
                error: previous.error + step.error,
                sloppy: previous.sloppy || step.sloppy,
                mesh: step.mesh,
            }
        });
        let level = match chained {
            Some(chained) if on_target(&chained, target) && chained.error < direct.error => chained,
            Some(chained) if !on_target(&direct, target) && on_target(&chained, target) => chained,
            _ => direct,
        };
        levels.push(level);
    }
    Ok(levels)
}

fn on_target(level: &Simplified, target: usize) -> bool {
    level.mesh.triangles.len() as f64 <= target as f64 * TARGET_SLACK
}

/// Builds the levels of detail, one mesh per ratio (see [`build_lod_levels`]).
pub fn build_lods(mesh: &TriangleMesh, options: &LodOptions) -> Result<Vec<TriangleMesh>> {
    Ok(build_lod_levels(mesh, options)?
        .into_iter()
        .map(|level| level.mesh)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recon::export::test_meshes::{grid, sphere};

    /// Largest distance from a simplified vertex to the unit sphere.
    fn sphere_deviation(mesh: &TriangleMesh) -> f32 {
        mesh.positions
            .iter()
            .map(|p| ((p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt() - 1.0).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn sphere_levels_meet_targets() {
        let mesh = sphere(64, 128);
        let original = mesh.triangles.len();
        let options = LodOptions {
            ratios: vec![1.0, 0.5, 0.2, 0.05],
            target_error: 0.05,
            lock_border: false,
        };
        let levels = build_lod_levels(&mesh, &options).expect("levels");
        assert_eq!(levels.len(), 4);
        assert_eq!(levels[0].mesh, mesh);
        for (level, ratio) in levels.iter().zip(&options.ratios) {
            let target = original as f64 * ratio;
            let count = level.mesh.triangles.len() as f64;
            assert!(
                (count - target).abs() <= 0.1 * target,
                "ratio {ratio}: {count} triangles for a target of {target}"
            );
            assert!(level.error < 0.01, "ratio {ratio}: error {}", level.error);
            assert!(!level.sloppy, "ratio {ratio}");
            assert!(
                sphere_deviation(&level.mesh) < 1e-5,
                "vertices stay on the sphere"
            );
            check_mesh(&level.mesh).expect("valid level");
            assert_eq!(
                level.mesh.normals.as_ref().map(Vec::len),
                Some(level.mesh.positions.len())
            );
        }
    }

    #[test]
    fn error_bound_stops_simplification() {
        let mesh = sphere(32, 64);
        let tight = simplify(&mesh, 0.05, 1e-4).expect("simplified");
        assert!(tight.error <= 1e-4, "error {}", tight.error);
        assert!(
            tight.mesh.triangles.len() > mesh.triangles.len() / 4,
            "{} triangles",
            tight.mesh.triangles.len()
        );
    }

    #[test]
    fn flat_grid_simplifies_without_error() {
        let mesh = grid(40);
        let result = simplify(&mesh, 0.1, 0.01).expect("simplified");
        let target = mesh.triangles.len() as f64 * 0.1;
        let count = result.mesh.triangles.len() as f64;
        assert!(
            (count - target).abs() <= 0.1 * target,
            "{count} vs {target}"
        );
        assert!(result.error < 1e-4, "error {}", result.error);
    }

    #[test]
    fn locked_border_stays() {
        let mesh = grid(30);
        let result = simplify_with_border(&mesh, 0.2, 0.01, true).expect("simplified");
        let on_border = |p: &[f32; 3]| p[0] == 0.0 || p[0] == 1.0 || p[1] == 0.0 || p[1] == 1.0;
        let before = mesh.positions.iter().filter(|p| on_border(p)).count();
        let after = result
            .mesh
            .positions
            .iter()
            .filter(|p| on_border(p))
            .count();
        assert_eq!(after, before, "all 120 border vertices are kept");
        let free = simplify(&mesh, 0.2, 0.01).expect("simplified");
        let free_border = free.mesh.positions.iter().filter(|p| on_border(p)).count();
        assert!(
            free_border < before,
            "{free_border} border vertices without the lock"
        );
    }

    #[test]
    fn disconnected_triangles_fall_back_to_clustering() {
        // Every triangle has its own vertices, so no edge can collapse.
        let grid = grid(20);
        let mut soup = TriangleMesh::default();
        for triangle in &grid.triangles {
            let base = soup.positions.len() as u32;
            for &v in triangle {
                soup.positions.push(grid.positions[v as usize]);
            }
            soup.triangles.push([base, base + 1, base + 2]);
        }
        let result = simplify(&soup, 0.25, 0.5).expect("simplified");
        let target = soup.triangles.len() as f64 * 0.25;
        assert!(result.sloppy);
        assert!(
            result.mesh.triangles.len() as f64 <= target * 1.1,
            "{} triangles for a target of {target}",
            result.mesh.triangles.len()
        );
        assert!(!result.mesh.triangles.is_empty());
    }

    #[test]
    fn bad_options_are_rejected() {
        let mesh = sphere(4, 6);
        let cases: [(Vec<f64>, f64, &str); 6] = [
            (vec![], 0.01, "the list is empty"),
            (vec![1.0, 1.5], 0.01, "level 1: 1.5 is outside (0, 1]"),
            (vec![1.0, 0.0], 0.01, "level 1: 0 is outside (0, 1]"),
            (vec![1.0, f64::NAN], 0.01, "level 1: NaN is outside (0, 1]"),
            (
                vec![1.0, 0.5, 0.5],
                0.01,
                "level 2 ratio 0.5 is not below level 1 ratio 0.5",
            ),
            (
                vec![1.0, 0.5],
                f64::NAN,
                "target error: NaN is not a finite",
            ),
        ];
        for (ratios, target_error, expected) in cases {
            let options = LodOptions {
                ratios,
                target_error,
                lock_border: false,
            };
            let err = build_lods(&mesh, &options).expect_err(expected);
            assert!(err.to_string().contains(expected), "{err}");
        }
        let err = simplify(&mesh, -0.5, 0.01).expect_err("negative ratio");
        assert!(err.to_string().contains("-0.5 is outside (0, 1]"), "{err}");
    }
}
