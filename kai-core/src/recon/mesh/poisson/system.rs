//! The screened Poisson system of one grid level and its conjugate-gradient solver.
//!
//! The indicator function `χ` is trilinear between the nodes of the band. The energy is
//! the finite-difference form of `∫ |∇χ - V|² + α Σ_p A_p χ(p)²`, in grid units of the
//! level. It has one term per grid edge `(x_j - x_i - V_e)²`, with `V_e` the splatted
//! normal field averaged over the edge's two nodes. The screening term pulls `χ` towards
//! zero at every sample `p` with the weight `α A_p`, where `A_p` is the surface area the
//! sample represents. Its minimum solves `(L + α S) x = b`, with `L` the 7-point graph
//! Laplacian of the band, `S` the sample Gram matrix of the trilinear basis and `b` the
//! negative central divergence of the splatted field.

use nalgebra::Vector3;
use rayon::prelude::*;

use super::grid::{Band, trilinear_weights};

/// The oriented samples, in unit-cube coordinates.
pub(super) struct Samples<'a> {
    /// Positions in the unit cube.
    pub positions: &'a [Vector3<f64>],
    /// Unit normals, pointing outwards.
    pub normals: &'a [Vector3<f64>],
    /// Surface area each sample stands for, in unit-cube units.
    pub areas: &'a [f64],
}

/// Conjugate-gradient stopping rule.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stopping {
    /// Stop once the residual norm falls below this share of the right-hand side's norm.
    pub relative_residual: f64,
    /// Stop after this many iterations regardless.
    pub max_iterations: usize,
}

/// The linear system of one level.
pub(super) struct LevelSystem<'a> {
    band: &'a Band,
    /// Whether each node is solved for; the others keep their given (Dirichlet) values.
    unknown: Vec<bool>,
    rhs: Vec<f64>,
    diagonal: Vec<f64>,
    /// The eight nodes of the cell holding each sample, or `None` outside the band.
    sample_nodes: Vec<Option<[u32; 8]>>,
    sample_weights: Vec<[f64; 8]>,
    /// Screening weight `α A_p` of each sample in this level's grid units.
    sample_screening: Vec<f64>,
    /// CSR index from nodes to `8 * sample + corner`, so that the screening product is a
    /// gather per node and needs no atomic updates.
    node_offsets: Vec<usize>,
    node_entries: Vec<u32>,
}

impl<'a> LevelSystem<'a> {
    /// Assembles the system of `band`. With `neumann` every node is unknown and missing
    /// neighbours drop their edge term; otherwise nodes lacking a neighbour are fixed.
    pub fn new(band: &'a Band, samples: &Samples, screening: f64, neumann: bool) -> Self {
        let scale = f64::from(1u32 << band.depth);
        let (sample_nodes, sample_weights): (Vec<_>, Vec<_>) = samples
            .positions
            .par_iter()
            .map(|p| {
                let q = [p.x * scale, p.y * scale, p.z * scale];
                let base = q.map(f64::floor);
                let nodes = band
                    .node_at(base.map(|c| c as i64))
                    .and_then(|lowest| band.cell_corners(lowest));
                (nodes, trilinear_weights(q, base))
            })
            .unzip();
        let sample_screening: Vec<f64> = samples
            .areas
            .iter()
            .map(|a| screening * a * scale * scale)
            .collect();

        let node_count = band.node_count();
        let mut field = vec![[0.0f64; 3]; node_count];
        for (index, nodes) in sample_nodes.iter().enumerate() {
            let Some(nodes) = nodes else { continue };
            let flux = samples.normals[index] * samples.areas[index] * scale * scale;
            for (corner, &node) in nodes.iter().enumerate() {
                let w = sample_weights[index][corner];
                let entry = &mut field[node as usize];
                for axis in 0..3 {
                    entry[axis] += w * flux[axis];
                }
            }
        }

        let unknown: Vec<bool> = (0..node_count as u32)
            .into_par_iter()
            .map(|node| {
                neumann
                    || (0..3).all(|axis| {
                        band.neighbor(node, axis, false).is_some()
                            && band.neighbor(node, axis, true).is_some()
                    })
            })
            .collect();
        let rhs = (0..node_count as u32)
            .into_par_iter()
            .map(|node| divergence_term(band, &field, node))
            .collect();

        let (node_offsets, node_entries) = node_index(node_count, &sample_nodes);
        let mut system = LevelSystem {
            band,
            unknown,
            rhs,
            diagonal: Vec::new(),
            sample_nodes,
            sample_weights,
            sample_screening,
            node_offsets,
            node_entries,
        };
        system.diagonal = (0..node_count as u32)
            .into_par_iter()
            .map(|node| system.diagonal_at(node))
            .collect();
        system
    }

    /// Returns `(L + α S)_{ii}`.
    fn diagonal_at(&self, node: u32) -> f64 {
        let mut degree = 0.0;
        for axis in 0..3 {
            for positive in [false, true] {
                if self.band.neighbor(node, axis, positive).is_some() {
                    degree += 1.0;
                }
            }
        }
        let range = self.node_offsets[node as usize]..self.node_offsets[node as usize + 1];
        let screening: f64 = self.node_entries[range]
            .iter()
            .map(|&entry| {
                let (sample, corner) = ((entry / 8) as usize, (entry % 8) as usize);
                let w = self.sample_weights[sample][corner];
                self.sample_screening[sample] * w * w
            })
            .sum();
        // A node with no edges and no samples has an empty row; 1 keeps Jacobi finite.
        if degree + screening > 0.0 {
            degree + screening
        } else {
            1.0
        }
    }

    /// Writes `(L + α S) x` into `out` on the unknown nodes and zero elsewhere, using
    /// `scratch` (one value per sample) for the interpolated sample values.
    fn apply(&self, x: &[f64], out: &mut [f64], scratch: &mut [f64]) {
        scratch
            .par_iter_mut()
            .enumerate()
            .for_each(|(sample, value)| {
                *value = match &self.sample_nodes[sample] {
                    Some(nodes) => {
                        let weights = &self.sample_weights[sample];
                        let at: f64 = (0..8).map(|c| weights[c] * x[nodes[c] as usize]).sum();
                        self.sample_screening[sample] * at
                    }
                    None => 0.0,
                };
            });
        let scratch = &*scratch;
        out.par_iter_mut().enumerate().for_each(|(node, value)| {
            if !self.unknown[node] {
                *value = 0.0;
                return;
            }
            let node32 = node as u32;
            let centre = x[node];
            let mut sum = 0.0;
            for axis in 0..3 {
                for positive in [false, true] {
                    if let Some(other) = self.band.neighbor(node32, axis, positive) {
                        sum += centre - x[other as usize];
                    }
                }
            }
            for &entry in &self.node_entries[self.node_offsets[node]..self.node_offsets[node + 1]] {
                let (sample, corner) = ((entry / 8) as usize, (entry % 8) as usize);
                sum += self.sample_weights[sample][corner] * scratch[sample];
            }
            *value = sum;
        });
    }

    /// Solves the system by Jacobi-preconditioned conjugate gradients, starting from `x`
    /// (whose fixed entries are the boundary values), and returns the iterations run.
    pub fn solve(&self, x: &mut [f64], stopping: Stopping) -> usize {
        let n = x.len();
        let mut scratch = vec![0.0; self.sample_nodes.len()];
        let mut product = vec![0.0; n];
        self.apply(x, &mut product, &mut scratch);
        let mut residual: Vec<f64> = (0..n)
            .into_par_iter()
            .map(|i| {
                if self.unknown[i] {
                    self.rhs[i] - product[i]
                } else {
                    0.0
                }
            })
            .collect();

        let rhs_norm = dot_masked(&self.rhs, &self.rhs, &self.unknown).sqrt();
        let target = stopping.relative_residual * rhs_norm.max(f64::MIN_POSITIVE);
        let mut direction: Vec<f64> = residual
            .par_iter()
            .zip(&self.diagonal)
            .map(|(r, d)| r / d)
            .collect();
        let mut rz = dot(&residual, &direction);

        let mut iterations = 0;
        while iterations < stopping.max_iterations && dot(&residual, &residual).sqrt() > target {
            self.apply(&direction, &mut product, &mut scratch);
            let curvature = dot(&direction, &product);
            if curvature <= 0.0 {
                break;
            }
            let step = rz / curvature;
            x.par_iter_mut()
                .zip(&direction)
                .for_each(|(xi, di)| *xi += step * di);
            residual
                .par_iter_mut()
                .zip(&product)
                .for_each(|(ri, qi)| *ri -= step * qi);
            let rz_next: f64 = residual
                .par_iter()
                .zip(&self.diagonal)
                .map(|(r, d)| r * r / d)
                .sum();
            let beta = rz_next / rz;
            rz = rz_next;
            direction
                .par_iter_mut()
                .zip(residual.par_iter().zip(&self.diagonal))
                .for_each(|(di, (ri, d))| *di = ri / d + beta * *di);
            iterations += 1;
        }
        iterations
    }

    /// Returns the mean of the solution `x` at the samples, weighted by their areas: the
    /// iso-value of the reconstructed surface.
    pub fn mean_at_samples(&self, x: &[f64], areas: &[f64]) -> Option<f64> {
        let (sum, weight) = self
            .sample_nodes
            .par_iter()
            .enumerate()
            .filter_map(|(sample, nodes)| {
                let nodes = nodes.as_ref()?;
                let weights = &self.sample_weights[sample];
                let at: f64 = (0..8).map(|c| weights[c] * x[nodes[c] as usize]).sum();
                Some((areas[sample] * at, areas[sample]))
            })
            .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        (weight > 0.0).then(|| sum / weight)
    }
}

/// Returns `b_i`: the flux of the edge-averaged field into node `i` minus the flux out.
fn divergence_term(band: &Band, field: &[[f64; 3]], node: u32) -> f64 {
    let centre = &field[node as usize];
    let mut sum = 0.0;
    for axis in 0..3 {
        if let Some(lower) = band.neighbor(node, axis, false) {
            sum += 0.5 * (field[lower as usize][axis] + centre[axis]);
        }
        if let Some(upper) = band.neighbor(node, axis, true) {
            sum -= 0.5 * (centre[axis] + field[upper as usize][axis]);
        }
    }
    sum
}

/// Builds the node-to-sample index by counting sort.
fn node_index(node_count: usize, sample_nodes: &[Option<[u32; 8]>]) -> (Vec<usize>, Vec<u32>) {
    let mut offsets = vec![0usize; node_count + 1];
    for nodes in sample_nodes.iter().flatten() {
        for &node in nodes {
            offsets[node as usize + 1] += 1;
        }
    }
    for i in 0..node_count {
        offsets[i + 1] += offsets[i];
    }
    let mut cursor = offsets.clone();
    let mut entries = vec![0u32; offsets[node_count]];
    for (sample, nodes) in sample_nodes.iter().enumerate() {
        let Some(nodes) = nodes else { continue };
        for (corner, &node) in nodes.iter().enumerate() {
            entries[cursor[node as usize]] = (sample * 8 + corner) as u32;
            cursor[node as usize] += 1;
        }
    }
    (offsets, entries)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.par_iter().zip(b).map(|(x, y)| x * y).sum()
}

fn dot_masked(a: &[f64], b: &[f64], mask: &[bool]) -> f64 {
    a.par_iter()
        .zip(b)
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|((x, y), _)| x * y)
        .sum()
}
