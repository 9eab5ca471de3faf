//! Local sample density: how many samples lie near a point, used to give each sample the
//! surface area it stands for and to mark reconstructed vertices far from any sample.

use nalgebra::Vector3;
use rayon::prelude::*;

use super::grid::morton;

/// Sample counts per cell on the finest grid whose occupied cells hold, on average, at
/// least `samples_per_node` samples.
#[derive(Debug)]
pub(super) struct DensityGrid {
    /// Depth of the counting grid.
    pub depth: u32,
    /// Sorted Morton keys of the occupied cells.
    keys: Vec<u64>,
    /// Number of samples in each occupied cell.
    counts: Vec<f64>,
}

impl DensityGrid {
    /// Counts `points` (unit-cube coordinates) on the finest grid no deeper than
    /// `max_depth` whose occupied cells average at least `samples_per_node` samples.
    pub fn new(points: &[Vector3<f64>], max_depth: u32, samples_per_node: f64) -> DensityGrid {
        let mut finest: Vec<u64> = points
            .par_iter()
            .map(|p| morton(cell_of(p, max_depth)))
            .collect();
        finest.par_sort_unstable();
        let mut depth = max_depth;
        while depth > 1 {
            let shift = 3 * (max_depth - depth);
            let occupied = count_runs(&finest, shift);
            if points.len() as f64 >= samples_per_node * occupied as f64 {
                break;
            }
            depth -= 1;
        }
        let shift = 3 * (max_depth - depth);
        let mut keys = Vec::new();
        let mut counts = Vec::new();
        for &key in &finest {
            let key = key >> shift;
            if keys.last() == Some(&key)
                && let Some(count) = counts.last_mut()
            {
                *count += 1.0;
            } else {
                keys.push(key);
                counts.push(1.0);
            }
        }
        DensityGrid {
            depth,
            keys,
            counts,
        }
    }

    /// Returns the number of occupied cells.
    pub fn occupied_cells(&self) -> usize {
        self.keys.len()
    }

    /// Returns the sample count near `point` (unit-cube coordinates): the counts of the
    /// eight cells around it, interpolated trilinearly between cell centres.
    pub fn at(&self, point: &Vector3<f64>) -> f64 {
        let side = f64::from(1u32 << self.depth);
        let centred = [point.x, point.y, point.z].map(|c| c * side - 0.5);
        let base = centred.map(f64::floor);
        let mut total = 0.0;
        for corner in 0..8 {
            let mut weight = 1.0;
            let mut cell = [0i64; 3];
            for axis in 0..3 {
                let t = centred[axis] - base[axis];
                let upper = corner & (1 << axis) != 0;
                weight *= if upper { t } else { 1.0 - t };
                cell[axis] = base[axis] as i64 + i64::from(upper);
            }
            if weight == 0.0 || cell.iter().any(|&c| c < 0 || c >= side as i64) {
                continue;
            }
            let key = morton(cell.map(|c| c as u32));
            if let Ok(found) = self.keys.binary_search(&key) {
                total += weight * self.counts[found];
            }
        }
        total
    }
}

/// Returns the cell of the grid of depth `depth` containing `point` (unit-cube
/// coordinates), clamped into the grid.
pub(super) fn cell_of(point: &Vector3<f64>, depth: u32) -> [u32; 3] {
    let side = 1u32 << depth;
    [point.x, point.y, point.z]
        .map(|c| ((c * f64::from(side)).floor().max(0.0) as u32).min(side - 1))
}

/// Counts the distinct values of `sorted >> shift`.
fn count_runs(sorted: &[u64], shift: u32) -> usize {
    let mut count = 0;
    let mut last = None;
    for &key in sorted {
        let key = key >> shift;
        if last != Some(key) {
            count += 1;
            last = Some(key);
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_coarsens_until_cells_hold_enough_samples() {
        // Two samples per cell of the depth-3 grid along a line of 8 cells.
        let points: Vec<Vector3<f64>> = (0..16)
            .map(|i| Vector3::new((f64::from(i) + 0.5) / 16.0, 0.3, 0.3))
            .collect();
        let grid = DensityGrid::new(&points, 5, 2.0);
        assert_eq!(grid.depth, 3);
        assert_eq!(grid.occupied_cells(), 8);
        // At a cell centre the interpolation returns that cell's count.
        let centre = Vector3::new(4.5 / 8.0, 2.5 / 8.0, 2.5 / 8.0);
        assert!((grid.at(&centre) - 2.0).abs() < 1e-12);
        assert_eq!(grid.at(&Vector3::new(0.5, 0.9, 0.9)), 0.0);
    }
}
