//! Mesh clean-up after reconstruction: trimming unsupported surface, dropping small
//! pieces, and repairing edges and vertices that break manifold structure.

use std::collections::HashMap;

use super::TriangleMesh;
use super::poisson::PoissonSurface;
use super::topology::sorted_half_edges;

/// Returns the surface without its vertices of lowest sample density and the triangles
/// that touch them, dropping vertices left unused.
///
/// Removes every vertex whose density is at or below the `quantile` (0 to 1) of all vertex
/// densities, so the many zero-density vertices of a closed hole all go together. A
/// `quantile` of 0 or less (or NaN) keeps everything, 1 removes everything. Vertices
/// without a density entry are kept.
pub fn trim_low_density(surface: &PoissonSurface, quantile: f64) -> TriangleMesh {
    let mut mesh = surface.mesh.clone();
    let densities = &surface.densities;
    if quantile.is_nan() || quantile <= 0.0 || densities.is_empty() {
        return mesh;
    }
    let mut sorted = densities.clone();
    sorted.sort_unstable_by(f32::total_cmp);
    let rank = (quantile.min(1.0) * (sorted.len() - 1) as f64).floor() as usize;
    let threshold = sorted[rank];
    let keep: Vec<bool> = (0..mesh.positions.len())
        .map(|v| densities.get(v).is_none_or(|&d| d > threshold))
        .collect();
    mesh.keep_vertices(&keep);
    mesh.remove_unreferenced_vertices();
    mesh
}

/// Removes the connected pieces (triangles linked through shared vertices) that hold
/// fewer than `min_share` of all triangles, then the vertices left unused. Returns the
/// number of triangles removed.
pub fn remove_small_components(mesh: &mut TriangleMesh, min_share: f64) -> usize {
    if mesh.triangles.is_empty() || min_share.is_nan() || min_share <= 0.0 {
        return 0;
    }
    let mut parents: Vec<u32> = (0..mesh.positions.len() as u32).collect();
    for triangle in &mesh.triangles {
        let root = find_root(&mut parents, triangle[0]);
        for &v in &triangle[1..] {
            let other = find_root(&mut parents, v);
            parents[other as usize] = root;
        }
    }
    let components: Vec<u32> = mesh
        .triangles
        .iter()
        .map(|t| find_root(&mut parents, t[0]))
        .collect();
    let mut sizes: HashMap<u32, usize> = HashMap::new();
    for &component in &components {
        *sizes.entry(component).or_default() += 1;
    }
    let minimum = min_share * mesh.triangles.len() as f64;
    let before = mesh.triangles.len();
    let mut index = 0;
    mesh.triangles.retain(|_| {
        index += 1;
        sizes[&components[index - 1]] as f64 >= minimum
    });
    let removed = before - mesh.triangles.len();
    mesh.remove_unreferenced_vertices();
    removed
}

fn find_root(parents: &mut [u32], mut v: u32) -> u32 {
    while parents[v as usize] != v {
        // Path halving keeps the trees shallow.
        let grandparent = parents[parents[v as usize] as usize];
        parents[v as usize] = grandparent;
        v = grandparent;
    }
    v
}

/// Makes every edge shared by at most two triangles by removing, at each edge with more,
/// all but the two largest of its triangles. Returns the number of triangles removed;
/// vertices are kept.
pub fn remove_non_manifold_edges(mesh: &mut TriangleMesh) -> usize {
    let half_edges = sorted_half_edges(mesh);
    let mut removed = vec![false; mesh.triangles.len()];
    for group in half_edges.chunk_by(|a, b| a.key() == b.key()) {
        let mut alive: Vec<u32> = group
            .iter()
            .map(|h| h.triangle)
            .filter(|&t| !removed[t as usize])
            .collect();
        alive.dedup();
        if alive.len() <= 2 {
            continue;
        }
        alive.sort_by(|&a, &b| {
            let area = |t: u32| mesh.weighted_normal(&mesh.triangles[t as usize]).norm();
            area(b).total_cmp(&area(a)).then(a.cmp(&b))
        });
        for &t in &alive[2..] {
            removed[t as usize] = true;
        }
    }
    let mut index = 0;
    mesh.triangles.retain(|_| {
        index += 1;
        !removed[index - 1]
    });
    removed.iter().filter(|&&r| r).count()
}

/// Merges vertices with bit-identical positions into the first of them (whose normal and
/// colour are kept), renumbering the triangles. Returns the number of vertices removed.
pub fn merge_duplicate_vertices(mesh: &mut TriangleMesh) -> usize {
    let mut first_of: HashMap<[u32; 3], u32> = HashMap::with_capacity(mesh.positions.len());
    let mut target: Vec<u32> = Vec::with_capacity(mesh.positions.len());
    for (index, p) in mesh.positions.iter().enumerate() {
        // -0.0 and 0.0 are the same position, so their bits are made equal first.
        let bits = p.map(|c| (c + 0.0).to_bits());
        target.push(*first_of.entry(bits).or_insert(index as u32));
    }
    for triangle in &mut mesh.triangles {
        *triangle = triangle.map(|v| target[v as usize]);
    }
    mesh.remove_unreferenced_vertices()
}

/// Removes triangles that use a vertex more than once and returns how many were removed.
pub fn remove_degenerate_triangles(mesh: &mut TriangleMesh) -> usize {
    let before = mesh.triangles.len();
    mesh.triangles
        .retain(|[a, b, c]| a != b && b != c && a != c);
    before - mesh.triangles.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recon::mesh::tests::cube;

    /// Two cubes: the unit cube and a copy shifted by 3 along x.
    fn two_cubes() -> TriangleMesh {
        let mut mesh = cube();
        let shifted = cube();
        let offset = mesh.positions.len() as u32;
        mesh.positions
            .extend(shifted.positions.iter().map(|p| [p[0] + 3.0, p[1], p[2]]));
        mesh.triangles
            .extend(shifted.triangles.iter().map(|t| t.map(|v| v + offset)));
        mesh
    }

    #[test]
    fn small_components_are_removed() {
        let mut mesh = two_cubes();
        // A lone triangle far away: 1 of 25 triangles.
        mesh.positions
            .extend([[9.0, 0.0, 0.0], [10.0, 0.0, 0.0], [9.0, 1.0, 0.0]]);
        mesh.triangles.push([16, 17, 18]);
        assert_eq!(remove_small_components(&mut mesh, 0.1), 1);
        assert_eq!(mesh.triangles.len(), 24);
        assert_eq!(mesh.positions.len(), 16);
        assert_eq!(remove_small_components(&mut mesh, 0.4), 0);
        assert_eq!(remove_small_components(&mut mesh, 0.6), 24);
        assert!(mesh.positions.is_empty());
    }

    #[test]
    fn non_manifold_fins_are_removed() {
        let mut mesh = cube();
        // Two small fins on the edge 0-1, which already has two triangles.
        mesh.positions.extend([[0.5, -0.1, 0.0], [0.5, -0.2, 0.1]]);
        mesh.triangles.push([0, 1, 8]);
        mesh.triangles.push([1, 0, 9]);
        assert!(!mesh.is_edge_manifold());
        assert_eq!(remove_non_manifold_edges(&mut mesh), 2);
        assert!(mesh.is_edge_manifold());
        assert!(mesh.is_watertight());
        assert_eq!(remove_non_manifold_edges(&mut mesh), 0);
    }

    #[test]
    fn duplicates_merge_and_degenerates_go() {
        // Split every triangle onto its own three vertices, as triangle soups come.
        let cube = cube();
        let mut soup = TriangleMesh::default();
        for t in &cube.triangles {
            let base = soup.positions.len() as u32;
            soup.positions.extend(t.map(|v| cube.positions[v as usize]));
            soup.triangles.push([base, base + 1, base + 2]);
        }
        assert!(!soup.is_watertight());
        assert_eq!(merge_duplicate_vertices(&mut soup), 36 - 8);
        assert!(soup.is_watertight());
        assert!((soup.surface_area() - 6.0).abs() < 1e-12);

        soup.triangles.push([0, 0, 1]);
        soup.triangles.push([2, 3, 2]);
        assert_eq!(remove_degenerate_triangles(&mut soup), 2);
        assert_eq!(soup.triangles.len(), 12);
    }

    #[test]
    fn trimming_removes_lowest_density_vertices() {
        let surface = PoissonSurface {
            mesh: two_cubes(),
            // The second cube's vertices have no support.
            densities: [vec![5.0; 8], vec![0.0; 8]].concat(),
        };
        let trimmed = trim_low_density(&surface, 0.1);
        assert_eq!(trimmed.positions.len(), 8);
        assert_eq!(trimmed.triangles, cube().triangles);
        assert_eq!(trim_low_density(&surface, 0.0), surface.mesh);
        assert_eq!(trim_low_density(&surface, f64::NAN), surface.mesh);
        assert!(trim_low_density(&surface, 1.0).positions.is_empty());
    }
}
