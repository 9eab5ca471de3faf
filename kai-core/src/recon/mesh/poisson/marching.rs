//! Iso-surface extraction by marching tetrahedra on the finest band.
//!
//! NOTE: at the same depth this gives about three times the triangles of Open3D's
//! marching cubes (benches/RESULTS.md), so the full level of detail is heavy.
//!
//! Each cell is split into the six tetrahedra of its Kuhn (Freudenthal) triangulation, the
//! paths from corner (0,0,0) to (1,1,1) along the three axes in each order. Neighbouring
//! cells then split their shared faces along the same diagonal, and the linear
//! interpolant on each tetrahedron has a single planar piece of iso-surface, so the
//! triangles of all cells meet edge to edge. Vertices sit on tetrahedron edges and are
//! shared through the edge's node pair, which makes the mesh closed and edge-manifold
//! wherever the band contains the cells around the surface.

use nalgebra::Vector3;
use rayon::prelude::*;

use super::grid::Band;

/// Triangles of an iso-surface, in the grid coordinates of the band it came from.
pub(super) struct Isosurface {
    /// Vertex positions, one per crossed tetrahedron edge.
    pub positions: Vec<Vector3<f64>>,
    /// Vertex indices, counter-clockwise seen from the side where the values exceed the
    /// iso-value.
    pub triangles: Vec<[u32; 3]>,
}

/// The six tetrahedra of a cell, as corner indices `x + 2y + 4z`.
const KUHN_TETRAHEDRA: [[usize; 4]; 6] = [
    [0, 1, 3, 7],
    [0, 1, 5, 7],
    [0, 2, 3, 7],
    [0, 2, 6, 7],
    [0, 4, 5, 7],
    [0, 4, 6, 7],
];

/// Extracts the surface `values = iso` over the complete cells of `band`; values below
/// `iso` are inside.
pub(super) fn extract(band: &Band, values: &[f64], iso: f64) -> Isosurface {
    let triangles: Vec<[u64; 3]> = (0..band.slots.len() as u32)
        .into_par_iter()
        .flat_map_iter(|slot| {
            let mut found = Vec::new();
            for local in 0..8 {
                if let Some(corners) = band.cell_corners(slot * 8 + local) {
                    polygonize_cell(band, values, iso, &corners, &mut found);
                }
            }
            found
        })
        .collect();
    let mut edges: Vec<u64> = triangles.iter().flatten().copied().collect();
    edges.par_sort_unstable();
    edges.dedup();
    let positions = edges
        .par_iter()
        .map(|&key| {
            let (a, b) = ((key >> 32) as u32, key as u32);
            edge_point(band, values, iso, a, b)
        })
        .collect();
    let triangles = triangles
        .par_iter()
        .map(|t| t.map(|key| edges.binary_search(&key).expect("edge was collected") as u32))
        .collect();
    Isosurface {
        positions,
        triangles,
    }
}

/// Appends the triangles of one cell, as pairs of node ids packed into edge keys.
fn polygonize_cell(
    band: &Band,
    values: &[f64],
    iso: f64,
    corners: &[u32; 8],
    out: &mut Vec<[u64; 3]>,
) {
    let corner_values = corners.map(|n| values[n as usize]);
    let inside = corner_values.iter().filter(|&&v| v < iso).count();
    if inside == 0 || inside == 8 {
        return;
    }
    for tetrahedron in KUHN_TETRAHEDRA {
        let nodes = tetrahedron.map(|c| corners[c]);
        polygonize_tetrahedron(band, values, iso, nodes, out);
    }
}

/// Appends the one or two triangles where `values = iso` crosses a tetrahedron.
fn polygonize_tetrahedron(
    band: &Band,
    values: &[f64],
    iso: f64,
    nodes: [u32; 4],
    out: &mut Vec<[u64; 3]>,
) {
    let is_inside = nodes.map(|n| values[n as usize] < iso);
    let inside: Vec<u32> = (0..4).filter(|&i| is_inside[i]).map(|i| nodes[i]).collect();
    let outside: Vec<u32> = (0..4)
        .filter(|&i| !is_inside[i])
        .map(|i| nodes[i])
        .collect();
    let mut emit = |edges: [(u32, u32); 3], reference: u32| {
        let points = edges.map(|(a, b)| edge_point(band, values, iso, a, b));
        let normal = (points[1] - points[0]).cross(&(points[2] - points[0]));
        let from_inside = points[0] - node_point(band, reference);
        let keys = edges.map(|(a, b)| edge_key(a, b));
        // The right-hand normal has to point away from the inside nodes.
        if normal.dot(&from_inside) >= 0.0 {
            out.push(keys);
        } else {
            out.push([keys[0], keys[2], keys[1]]);
        }
    };
    match inside.len() {
        1 => {
            let i = inside[0];
            emit([(i, outside[0]), (i, outside[1]), (i, outside[2])], i);
        }
        3 => {
            let o = outside[0];
            emit([(o, inside[0]), (o, inside[1]), (o, inside[2])], inside[0]);
        }
        2 => {
            let (a, b) = (inside[0], inside[1]);
            let (c, d) = (outside[0], outside[1]);
            // The section is the quadrilateral ac, ad, bd, bc (consecutive corners share a
            // face of the tetrahedron), split along its ac-bd diagonal.
            emit([(a, c), (a, d), (b, d)], a);
            emit([(a, c), (b, d), (b, c)], a);
        }
        _ => {}
    }
}

fn edge_key(a: u32, b: u32) -> u64 {
    let (low, high) = if a < b { (a, b) } else { (b, a) };
    (u64::from(low) << 32) | u64::from(high)
}

fn node_point(band: &Band, node: u32) -> Vector3<f64> {
    let c = band.node_coords(node);
    Vector3::new(f64::from(c[0]), f64::from(c[1]), f64::from(c[2]))
}

/// Returns where the linear interpolant crosses `iso` on the edge between nodes `a` and
/// `b`. The point is computed from the sorted pair, so both cells sharing the edge agree
/// exactly.
fn edge_point(band: &Band, values: &[f64], iso: f64, a: u32, b: u32) -> Vector3<f64> {
    let (a, b) = if a < b { (a, b) } else { (b, a) };
    let (va, vb) = (values[a as usize], values[b as usize]);
    let t = if vb != va {
        ((iso - va) / (vb - va)).clamp(0.0, 1.0)
    } else {
        0.5
    };
    let pa = node_point(band, a);
    pa + (node_point(band, b) - pa) * t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plane_crossing_gives_closed_sheet_facing_up() {
        // values = z - 3.3 on a depth-3 grid: a horizontal plane, inside below it.
        let band = Band::full(3);
        let values: Vec<f64> = (0..band.node_count() as u32)
            .map(|n| f64::from(band.node_coords(n)[2]) - 3.3)
            .collect();
        let surface = extract(&band, &values, 0.0);
        // The full band has 7 x 7 complete cells per layer. A horizontal cut leaves one
        // corner alone in four of a cell's tetrahedra (one triangle each) and splits the
        // other two two against two (two triangles each).
        assert_eq!(surface.triangles.len(), 7 * 7 * 8);
        for p in &surface.positions {
            assert!((p.z - 3.3).abs() < 1e-12);
        }
        for t in &surface.triangles {
            let [a, b, c] = t.map(|i| surface.positions[i as usize]);
            let normal = (b - a).cross(&(c - a));
            assert!(normal.z > 0.0, "triangle faces {normal:?}");
        }
    }
}
