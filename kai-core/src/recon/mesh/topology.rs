//! Edge incidence of triangle meshes: edge-manifold and watertight checks.

use super::TriangleMesh;

/// One triangle side, from vertex `from` to vertex `to` in the triangle's winding order.
#[derive(Debug, Clone, Copy)]
pub(super) struct HalfEdge {
    pub from: u32,
    pub to: u32,
    pub triangle: u32,
}

impl HalfEdge {
    /// Returns the undirected edge as (smaller, larger) vertex index.
    pub fn key(&self) -> (u32, u32) {
        (self.from.min(self.to), self.from.max(self.to))
    }
}

/// Returns the half-edges of all triangles grouped by undirected edge (sorted by
/// [`HalfEdge::key`]); triangles with a repeated vertex contribute no zero-length sides.
pub(super) fn sorted_half_edges(mesh: &TriangleMesh) -> Vec<HalfEdge> {
    let mut half_edges = Vec::with_capacity(mesh.triangles.len() * 3);
    for (index, triangle) in mesh.triangles.iter().enumerate() {
        for side in 0..3 {
            let (from, to) = (triangle[side], triangle[(side + 1) % 3]);
            if from != to {
                half_edges.push(HalfEdge {
                    from,
                    to,
                    triangle: index as u32,
                });
            }
        }
    }
    half_edges.sort_unstable_by_key(|h| (h.key(), h.triangle));
    half_edges
}

impl TriangleMesh {
    /// Returns whether no edge is shared by more than two triangles.
    pub fn is_edge_manifold(&self) -> bool {
        sorted_half_edges(self)
            .chunk_by(|a, b| a.key() == b.key())
            .all(|group| group.len() <= 2)
    }

    /// Returns whether the mesh is closed and consistently oriented: every edge is shared
    /// by exactly two triangles that traverse it in opposite directions.
    pub fn is_watertight(&self) -> bool {
        !self.triangles.is_empty()
            && sorted_half_edges(self)
                .chunk_by(|a, b| a.key() == b.key())
                .all(|group| group.len() == 2 && group[0].from == group[1].to)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::cube;

    #[test]
    fn open_and_flipped_meshes_are_not_watertight() {
        let mut open = cube();
        open.triangles.pop();
        assert!(open.is_edge_manifold());
        assert!(!open.is_watertight());

        let mut flipped = cube();
        flipped.triangles[0] = [0, 1, 2];
        assert!(!flipped.is_watertight());

        let mut fin = cube();
        fin.positions.push([0.5, -1.0, 0.0]);
        fin.triangles.push([0, 1, 8]);
        assert!(!fin.is_edge_manifold());
        assert!(!fin.is_watertight());
    }
}
