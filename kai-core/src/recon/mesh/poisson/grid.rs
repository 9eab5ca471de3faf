//! Sparse node sets on regular grids: the narrow bands that the finer Poisson levels solve
//! on, and the full grid of the coarsest level.
//!
//! A grid of depth `d` has `2^d` cells per side over the unit cube. Its nodes are grouped
//! by the cell of the next coarser grid (depth `d - 1`) that contains them: the cell with
//! integer coordinates `c` owns the eight nodes `2c + {0, 1}^3`. A band is a sorted list of
//! such coarse cells ("slots"), so node `8 * slot + local` needs no hash map, and the three
//! neighbours of a node that lie in another slot are found through the slot's six face
//! neighbours.

use rayon::prelude::*;

/// Marks a missing face neighbour.
const NONE: u32 = u32::MAX;

/// Spreads the low 21 bits of `v` so that two zero bits follow each one.
fn spread_bits(v: u32) -> u64 {
    let mut x = u64::from(v) & 0x1f_ffff;
    x = (x | (x << 32)) & 0x001f_0000_0000_ffff;
    x = (x | (x << 16)) & 0x001f_0000_ff00_00ff;
    x = (x | (x << 8)) & 0x100f_00f0_0f00_f00f;
    x = (x | (x << 4)) & 0x10c3_0c30_c30c_30c3;
    x = (x | (x << 2)) & 0x1249_2492_4924_9249;
    x
}

/// Inverts [`spread_bits`].
fn compact_bits(x: u64) -> u32 {
    let mut x = x & 0x1249_2492_4924_9249;
    x = (x ^ (x >> 2)) & 0x10c3_0c30_c30c_30c3;
    x = (x ^ (x >> 4)) & 0x100f_00f0_0f00_f00f;
    x = (x ^ (x >> 8)) & 0x001f_0000_ff00_00ff;
    x = (x ^ (x >> 16)) & 0x001f_0000_0000_ffff;
    x = (x ^ (x >> 32)) & 0x1f_ffff;
    x as u32
}

/// Returns the Morton (Z-order) key of a cell, so that sorted keys keep nearby cells
/// close in memory.
pub(super) fn morton(cell: [u32; 3]) -> u64 {
    spread_bits(cell[0]) | (spread_bits(cell[1]) << 1) | (spread_bits(cell[2]) << 2)
}

/// Inverts [`morton`].
pub(super) fn morton_cell(key: u64) -> [u32; 3] {
    [
        compact_bits(key),
        compact_bits(key >> 1),
        compact_bits(key >> 2),
    ]
}

/// Adds every face, edge and corner neighbour (within `radius` cells) of `cells` on a grid
/// with `side` cells per side, and returns the sorted, deduplicated keys.
///
/// Dilates one axis at a time, so each pass only multiplies the set by `2 * radius + 1`.
pub(super) fn dilate(cells: Vec<u64>, side: u32, radius: u32) -> Vec<u64> {
    let mut keys = cells;
    keys.par_sort_unstable();
    keys.dedup();
    for axis in 0..3 {
        let mut grown: Vec<u64> = keys
            .par_iter()
            .flat_map_iter(|&key| {
                let cell = morton_cell(key);
                let low = cell[axis].saturating_sub(radius);
                let high = (cell[axis] + radius).min(side - 1);
                (low..=high).map(move |v| {
                    let mut moved = cell;
                    moved[axis] = v;
                    morton(moved)
                })
            })
            .collect();
        grown.par_sort_unstable();
        grown.dedup();
        keys = grown;
    }
    keys
}

/// The nodes of one grid level: the eight nodes of each slot, in slot order.
#[derive(Debug)]
pub(super) struct Band {
    /// Depth of the node grid: `2^depth` cells per side.
    pub depth: u32,
    /// Sorted Morton keys of the owning cells, on the grid of depth `depth - 1`.
    pub slots: Vec<u64>,
    /// Slot of the face neighbour of each slot, in the order -x, +x, -y, +y, -z, +z, or
    /// [`NONE`].
    faces: Vec<[u32; 6]>,
}

impl Band {
    /// Builds the band of the grid of depth `depth` (at least 1) from owning cells on the
    /// grid of depth `depth - 1`, given as Morton keys in any order.
    pub fn new(depth: u32, mut slots: Vec<u64>) -> Band {
        slots.par_sort_unstable();
        slots.dedup();
        let side = 1u32 << (depth - 1);
        let faces = slots
            .par_iter()
            .map(|&key| {
                let cell = morton_cell(key);
                let mut faces = [NONE; 6];
                for axis in 0..3 {
                    for (direction, step) in [(0, -1i64), (1, 1)] {
                        let v = i64::from(cell[axis]) + step;
                        if v < 0 || v >= i64::from(side) {
                            continue;
                        }
                        let mut moved = cell;
                        moved[axis] = v as u32;
                        if let Ok(found) = slots.binary_search(&morton(moved)) {
                            faces[2 * axis + direction] = found as u32;
                        }
                    }
                }
                faces
            })
            .collect();
        Band {
            depth,
            slots,
            faces,
        }
    }

    /// Builds the band that contains every node of the grid of depth `depth` except those
    /// on its upper faces (coordinate `2^depth`), which lie outside the scaled bounding
    /// cube of the samples.
    pub fn full(depth: u32) -> Band {
        let side = 1u32 << (depth - 1);
        let cells = (0..side)
            .flat_map(|z| (0..side).flat_map(move |y| (0..side).map(move |x| morton([x, y, z]))))
            .collect();
        Band::new(depth, cells)
    }

    /// Returns the number of nodes.
    pub fn node_count(&self) -> usize {
        self.slots.len() * 8
    }

    /// Returns the integer coordinates of a node.
    pub fn node_coords(&self, node: u32) -> [u32; 3] {
        let cell = morton_cell(self.slots[(node >> 3) as usize]);
        let local = node & 7;
        [
            2 * cell[0] + (local & 1),
            2 * cell[1] + ((local >> 1) & 1),
            2 * cell[2] + ((local >> 2) & 1),
        ]
    }

    /// Returns the node at integer coordinates, if the band contains it.
    pub fn node_at(&self, coords: [i64; 3]) -> Option<u32> {
        let side = 1i64 << self.depth;
        if coords.iter().any(|&c| c < 0 || c >= side) {
            return None;
        }
        let cell = coords.map(|c| (c >> 1) as u32);
        let slot = self.slots.binary_search(&morton(cell)).ok()? as u32;
        let local = (coords[0] & 1) | ((coords[1] & 1) << 1) | ((coords[2] & 1) << 2);
        Some(slot * 8 + local as u32)
    }

    /// Returns the neighbour of `node` one step along `axis`, upwards when `positive`.
    #[inline]
    pub fn neighbor(&self, node: u32, axis: usize, positive: bool) -> Option<u32> {
        let bit = 1u32 << axis;
        let upper = node & bit != 0;
        if upper != positive {
            // The neighbour is the other node of this slot along the axis.
            return Some(node ^ bit);
        }
        let face = self.faces[(node >> 3) as usize][2 * axis + usize::from(positive)];
        (face != NONE).then(|| face * 8 + ((node & 7) ^ bit))
    }

    /// Returns the node at `offset` (each component 0 or 1) from `node`, stepping along x,
    /// then y, then z. Returns `None` when a node on the way is missing.
    pub fn corner(&self, node: u32, offset: [bool; 3]) -> Option<u32> {
        let mut current = node;
        for (axis, &step) in offset.iter().enumerate() {
            if step {
                current = self.neighbor(current, axis, true)?;
            }
        }
        Some(current)
    }

    /// Returns the eight corner nodes of the cell whose lowest corner is `node`, indexed by
    /// `x + 2y + 4z` offsets, or `None` when the band lacks one of them.
    pub fn cell_corners(&self, node: u32) -> Option<[u32; 8]> {
        let mut corners = [0u32; 8];
        for (index, corner) in corners.iter_mut().enumerate() {
            let offset = [index & 1 != 0, index & 2 != 0, index & 4 != 0];
            *corner = self.corner(node, offset)?;
        }
        Some(corners)
    }

    /// Interpolates nodal `values` trilinearly at `point` (grid coordinates of this
    /// band), or returns `None` when a corner of the containing cell is missing.
    pub fn interpolate(&self, values: &[f64], point: [f64; 3]) -> Option<f64> {
        let base = point.map(|c| c.floor());
        let lowest = self.node_at(base.map(|c| c as i64))?;
        let corners = self.cell_corners(lowest)?;
        let weights = trilinear_weights(point, base);
        Some(
            corners
                .iter()
                .zip(weights)
                .map(|(&n, w)| w * values[n as usize])
                .sum(),
        )
    }
}

/// Returns the trilinear weights of the eight corners of the cell with lowest corner
/// `base` at `point`, indexed by `x + 2y + 4z` offsets.
pub(super) fn trilinear_weights(point: [f64; 3], base: [f64; 3]) -> [f64; 8] {
    let t = [point[0] - base[0], point[1] - base[1], point[2] - base[2]];
    let mut weights = [0.0; 8];
    for (index, weight) in weights.iter_mut().enumerate() {
        let mut w = 1.0;
        for (axis, &ta) in t.iter().enumerate() {
            w *= if index & (1 << axis) != 0 {
                ta
            } else {
                1.0 - ta
            };
        }
        *weight = w;
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn morton_round_trips() {
        for cell in [
            [0, 0, 0],
            [1, 2, 3],
            [511, 7, 300],
            [0x1f_ffff, 0, 0x1f_ffff],
        ] {
            assert_eq!(morton_cell(morton(cell)), cell);
        }
    }

    #[test]
    fn full_band_neighbours_match_coordinates() {
        let band = Band::full(3);
        assert_eq!(band.node_count(), 512);
        for node in 0..band.node_count() as u32 {
            let c = band.node_coords(node);
            assert_eq!(band.node_at(c.map(i64::from)), Some(node));
            for axis in 0..3 {
                for positive in [false, true] {
                    let mut moved = c.map(i64::from);
                    moved[axis] += if positive { 1 } else { -1 };
                    assert_eq!(band.neighbor(node, axis, positive), band.node_at(moved));
                }
            }
        }
    }

    #[test]
    fn dilation_adds_all_neighbours() {
        let keys = dilate(vec![morton([4, 4, 4])], 8, 1);
        assert_eq!(keys.len(), 27);
        let corner = dilate(vec![morton([0, 0, 7])], 8, 2);
        assert_eq!(corner.len(), 27);
    }

    #[test]
    fn interpolation_reproduces_linear_functions() {
        let band = Band::full(3);
        let values: Vec<f64> = (0..band.node_count() as u32)
            .map(|n| {
                let c = band.node_coords(n);
                f64::from(c[0]) + 2.0 * f64::from(c[1]) - 0.5 * f64::from(c[2])
            })
            .collect();
        let value = band.interpolate(&values, [1.25, 3.5, 2.75]).unwrap();
        assert!((value - (1.25 + 7.0 - 1.375)).abs() < 1e-12);
        // The upper face of the grid has no nodes, so its cells cannot be interpolated.
        assert_eq!(band.interpolate(&values, [7.5, 1.0, 1.0]), None);
    }
}
