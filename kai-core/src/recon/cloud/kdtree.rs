//! A balanced k-d tree over 3D points for nearest-neighbour and radius queries.
//!
//! The tree is implicit: every internal node splits its range of the point array at the
//! median, so the node ranges follow from the point count alone. Only the split plane of each
//! node is stored, in heap order (children of node `i` are `2i + 1` and `2i + 2`). All
//! leaves sit at the same depth and contain between `LEAF_SIZE / 2` and `LEAF_SIZE` points.
//!
//! Ties are broken by input index: a query returns the points that are smallest in the order
//! (squared distance, index), so results are deterministic and equal to a brute-force scan.

use nalgebra::Vector3;
use rayon::prelude::*;

/// Maximum number of points in a leaf.
const LEAF_SIZE: usize = 16;

/// Ranges at or below this size are split serially, because a rayon task costs more.
const PARALLEL_MIN_POINTS: usize = 4096;

/// A point stored in the tree with its index in the input slice.
#[derive(Debug, Clone, Copy)]
struct Entry {
    position: [f64; 3],
    index: usize,
}

/// A k-d tree built once over a point set and then queried from any number of threads.
///
/// Distances in query results are squared Euclidean distances, and indices are positions in
/// the slice given to [`KdTree::new`]. Points with a NaN or infinite coordinate are left out
/// of the tree and never returned, so [`KdTree::len`] counts only the finite points.
#[derive(Debug, Clone, Default)]
pub struct KdTree {
    /// Points reordered so that every node's points are contiguous.
    entries: Vec<Entry>,
    /// Split axis (0, 1 or 2) of each internal node, in heap order.
    split_axes: Vec<u8>,
    /// Split coordinate of each internal node: points left of the median are `<=` it, points
    /// right of it are `>=` it.
    split_values: Vec<f64>,
    /// Number of internal levels; nodes at this depth are leaves.
    depth: u32,
}

impl KdTree {
    /// Builds a tree over `points`, splitting at the median of the widest axis of each node.
    ///
    /// Levels are built one after another, with the nodes of a level split in parallel.
    pub fn new(points: &[Vector3<f64>]) -> KdTree {
        let mut entries: Vec<Entry> = points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.iter().all(|c| c.is_finite()))
            .map(|(index, p)| Entry {
                position: [p.x, p.y, p.z],
                index,
            })
            .collect();
        let depth = tree_depth(entries.len());
        let internal_nodes = (1usize << depth) - 1;
        let mut split_axes = vec![0u8; internal_nodes];
        let mut split_values = vec![0.0f64; internal_nodes];

        let len = entries.len();
        let mut ranges = vec![(0usize, len)];
        for level in 0..depth {
            let chunks = split_into_ranges(&mut entries, &ranges);
            let splits: Vec<(u8, f64)> =
                if ranges.len() == 1 || len / ranges.len() < PARALLEL_MIN_POINTS {
                    chunks.into_iter().map(split_at_median).collect()
                } else {
                    chunks.into_par_iter().map(split_at_median).collect()
                };
            let first_node = (1usize << level) - 1;
            for (offset, (axis, value)) in splits.into_iter().enumerate() {
                split_axes[first_node + offset] = axis;
                split_values[first_node + offset] = value;
            }
            ranges = ranges
                .iter()
                .flat_map(|&(start, end)| {
                    let mid = median_of(start, end);
                    [(start, mid), (mid, end)]
                })
                .collect();
        }

        KdTree {
            entries,
            split_axes,
            split_values,
            depth,
        }
    }

    /// Returns the number of points in the tree (the finite input points).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns whether the tree contains no points.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Returns the index and squared distance of the point closest to `query`, or `None`
    /// when the tree is empty or `query` has a non-finite coordinate.
    pub fn nearest(&self, query: &Vector3<f64>) -> Option<(usize, f64)> {
        self.knn(query, 1).first().copied()
    }

    /// Returns the `k` points closest to `query` as (index, squared distance), closest first.
    ///
    /// Returns every point when `k` exceeds [`KdTree::len`], and nothing when `query` has a
    /// non-finite coordinate.
    pub fn knn(&self, query: &Vector3<f64>, k: usize) -> Vec<(usize, f64)> {
        self.knn_excluding(query, k, None)
    }

    /// Returns the `k` points closest to `query` other than the point with input index
    /// `excluded`, as (index, squared distance), closest first.
    ///
    /// Querying a point's own position with `excluded` set to its index returns its `k`
    /// nearest neighbours without itself, even when other points share its position.
    pub fn knn_excluding(
        &self,
        query: &Vector3<f64>,
        k: usize,
        excluded: Option<usize>,
    ) -> Vec<(usize, f64)> {
        if k == 0 || self.is_empty() || !query.iter().all(|c| c.is_finite()) {
            return Vec::new();
        }
        let mut search = KnnSearch {
            query: [query.x, query.y, query.z],
            k,
            excluded,
            best: Vec::with_capacity(k.min(self.len()) + 1),
            worst: f64::INFINITY,
        };
        self.visit_knn(&mut search, 0, 0, self.len(), 0, &mut [0.0; 3]);
        search.best.into_iter().map(|(d, i)| (i, d)).collect()
    }

    /// Returns every point within `radius` of `query` (inclusive) as (index, squared
    /// distance), closest first.
    ///
    /// Returns nothing when `radius` is negative or NaN or `query` has a non-finite
    /// coordinate. A radius of 0 returns the points at exactly `query`.
    pub fn within_radius(&self, query: &Vector3<f64>, radius: f64) -> Vec<(usize, f64)> {
        if self.is_empty()
            || radius.is_nan()
            || radius < 0.0
            || !query.iter().all(|c| c.is_finite())
        {
            return Vec::new();
        }
        let mut found = Vec::new();
        let q = [query.x, query.y, query.z];
        self.visit_radius(&q, radius * radius, &mut found, 0, 0, self.len(), 0);
        found.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        found
    }

    /// Visits a node whose cell lies at per-axis offsets `offsets` from the query, so that
    /// no point in it is closer than the squared length of `offsets`.
    #[allow(clippy::too_many_arguments)]
    fn visit_knn(
        &self,
        search: &mut KnnSearch,
        node: usize,
        start: usize,
        end: usize,
        level: u32,
        offsets: &mut [f64; 3],
    ) {
        if level == self.depth {
            for entry in &self.entries[start..end] {
                let distance = squared_distance(&search.query, &entry.position);
                if distance <= search.worst && search.excluded != Some(entry.index) {
                    search.offer(distance, entry.index);
                }
            }
            return;
        }
        let mid = median_of(start, end);
        let axis = self.split_axes[node] as usize;
        let diff = search.query[axis] - self.split_values[node];
        let left = (2 * node + 1, start, mid);
        let right = (2 * node + 2, mid, end);
        let (near, far) = if diff <= 0.0 {
            (left, right)
        } else {
            (right, left)
        };
        self.visit_knn(search, near.0, near.1, near.2, level + 1, offsets);

        // Every point of the far child is at least |diff| away along the split axis. The bound
        // is summed in the same order as `squared_distance`, and rounding is monotonic, so it
        // never exceeds a computed distance and ties are never pruned.
        let previous = offsets[axis];
        offsets[axis] = diff;
        if squared_norm(offsets) <= search.worst {
            self.visit_knn(search, far.0, far.1, far.2, level + 1, offsets);
        }
        offsets[axis] = previous;
    }

    #[allow(clippy::too_many_arguments)]
    fn visit_radius(
        &self,
        query: &[f64; 3],
        squared_radius: f64,
        found: &mut Vec<(usize, f64)>,
        node: usize,
        start: usize,
        end: usize,
        level: u32,
    ) {
        if level == self.depth {
            for entry in &self.entries[start..end] {
                let d = squared_distance(query, &entry.position);
                if d <= squared_radius {
                    found.push((entry.index, d));
                }
            }
            return;
        }
        let mid = median_of(start, end);
        let diff = query[self.split_axes[node] as usize] - self.split_values[node];
        let reaches_other_side = diff * diff <= squared_radius;
        if diff <= 0.0 || reaches_other_side {
            self.visit_radius(
                query,
                squared_radius,
                found,
                2 * node + 1,
                start,
                mid,
                level + 1,
            );
        }
        if diff >= 0.0 || reaches_other_side {
            self.visit_radius(
                query,
                squared_radius,
                found,
                2 * node + 2,
                mid,
                end,
                level + 1,
            );
        }
    }
}

/// The running state of one k-nearest query: the best candidates, sorted by (distance, index).
struct KnnSearch {
    query: [f64; 3],
    k: usize,
    excluded: Option<usize>,
    best: Vec<(f64, usize)>,
    /// Squared distance beyond which no point can enter the result: infinite until `best`
    /// contains `k` candidates, then the distance of the last one.
    worst: f64,
}

impl KnnSearch {
    fn offer(&mut self, distance: f64, index: usize) {
        if self.best.len() == self.k {
            let (worst_distance, worst_index) = self.best[self.k - 1];
            if distance > worst_distance || (distance == worst_distance && index > worst_index) {
                return;
            }
        }
        let position = self
            .best
            .partition_point(|&(d, i)| d < distance || (d == distance && i < index));
        self.best.insert(position, (distance, index));
        self.best.truncate(self.k);
        if self.best.len() == self.k {
            self.worst = self.best[self.k - 1].0;
        }
    }
}

fn squared_norm(v: &[f64; 3]) -> f64 {
    v[0] * v[0] + v[1] * v[1] + v[2] * v[2]
}

fn squared_distance(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    let dx = a[0] - b[0];
    let dy = a[1] - b[1];
    let dz = a[2] - b[2];
    dx * dx + dy * dy + dz * dz
}

/// Returns the first index of the right child of the node covering `start..end`.
fn median_of(start: usize, end: usize) -> usize {
    start + (end - start) / 2
}

/// Returns the number of halvings after which every node contains at most `LEAF_SIZE` points.
fn tree_depth(len: usize) -> u32 {
    let mut depth = 0;
    // Halving at the median leaves ceil(len / 2^depth) points in the largest node.
    while len.div_ceil(1usize << depth) > LEAF_SIZE {
        depth += 1;
    }
    depth
}

/// Cuts `entries` into the mutable sub-slices of `ranges`, which are contiguous and in order.
fn split_into_ranges<'a>(
    entries: &'a mut [Entry],
    ranges: &[(usize, usize)],
) -> Vec<&'a mut [Entry]> {
    let mut chunks = Vec::with_capacity(ranges.len());
    let mut rest = entries;
    let mut consumed = 0;
    for &(start, end) in ranges {
        debug_assert_eq!(start, consumed);
        let (chunk, tail) = rest.split_at_mut(end - start);
        chunks.push(chunk);
        rest = tail;
        consumed = end;
    }
    chunks
}

/// Partitions `chunk` around its median along its widest axis and returns the split plane.
fn split_at_median(chunk: &mut [Entry]) -> (u8, f64) {
    let mut min = [f64::INFINITY; 3];
    let mut max = [f64::NEG_INFINITY; 3];
    for entry in chunk.iter() {
        for axis in 0..3 {
            min[axis] = min[axis].min(entry.position[axis]);
            max[axis] = max[axis].max(entry.position[axis]);
        }
    }
    let mut axis = 0;
    for candidate in 1..3 {
        if max[candidate] - min[candidate] > max[axis] - min[axis] {
            axis = candidate;
        }
    }
    let mid = chunk.len() / 2;
    chunk.select_nth_unstable_by(mid, |a, b| a.position[axis].total_cmp(&b.position[axis]));
    (axis as u8, chunk[mid].position[axis])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_cloud(count: usize, seed: u64) -> Vec<Vector3<f64>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count)
            .map(|_| {
                Vector3::new(
                    rng.random_range(-1.0..1.0),
                    rng.random_range(-1.0..1.0),
                    rng.random_range(-1.0..1.0),
                )
            })
            .collect()
    }

    /// Points on a coarse grid, so many distances tie and many positions repeat.
    fn grid_cloud_with_duplicates(count: usize, seed: u64) -> Vec<Vector3<f64>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count)
            .map(|_| {
                Vector3::new(
                    rng.random_range(0..4) as f64,
                    rng.random_range(0..4) as f64,
                    rng.random_range(0..3) as f64,
                )
            })
            .collect()
    }

    fn brute_force_sorted(points: &[Vector3<f64>], query: &Vector3<f64>) -> Vec<(usize, f64)> {
        let mut all: Vec<(usize, f64)> = points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.iter().all(|c| c.is_finite()))
            .map(|(i, p)| (i, (p - query).norm_squared()))
            .collect();
        all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        all
    }

    fn check_against_brute_force(
        points: &[Vector3<f64>],
        queries: &[Vector3<f64>],
        ks: &[usize],
        radii: &[f64],
    ) {
        let tree = KdTree::new(points);
        for query in queries {
            let expected = brute_force_sorted(points, query);
            for &k in ks {
                let found = tree.knn(query, k);
                let want: Vec<(usize, f64)> = expected.iter().take(k).copied().collect();
                assert_eq!(found, want, "knn k={k} query={query:?}");
            }
            for &radius in radii {
                let found = tree.within_radius(query, radius);
                let want: Vec<(usize, f64)> = expected
                    .iter()
                    .filter(|(_, d)| *d <= radius * radius)
                    .copied()
                    .collect();
                assert_eq!(found, want, "radius {radius} query={query:?}");
            }
            assert_eq!(tree.nearest(query), expected.first().copied());
        }
    }

    #[test]
    fn knn_matches_brute_force_random() {
        for (count, seed) in [(1, 1), (15, 2), (16, 3), (17, 4), (100, 5), (3000, 6)] {
            let points = random_cloud(count, seed);
            let mut queries = random_cloud(40, seed + 100);
            queries.extend(points.iter().take(10).copied());
            check_against_brute_force(
                &points,
                &queries,
                &[1, 2, 7, 30, count, count + 5],
                &[0.0, 0.05, 0.3, 5.0],
            );
        }
    }

    #[test]
    fn knn_matches_brute_force_duplicates() {
        let points = grid_cloud_with_duplicates(2000, 7);
        let mut queries = grid_cloud_with_duplicates(30, 8);
        queries.push(Vector3::new(1.5, 1.5, 1.0));
        check_against_brute_force(&points, &queries, &[1, 5, 50, 200], &[0.0, 1.0, 1.5]);

        let same = vec![Vector3::new(0.5, 0.5, 0.5); 100];
        check_against_brute_force(
            &same,
            &[Vector3::new(0.5, 0.5, 0.5), Vector3::zeros()],
            &[1, 10, 100, 101],
            &[0.0, 1.0],
        );
    }

    #[test]
    fn empty_tree_returns_nothing() {
        let tree = KdTree::new(&[]);
        assert!(tree.is_empty());
        assert_eq!(tree.len(), 0);
        assert_eq!(tree.nearest(&Vector3::zeros()), None);
        assert!(tree.knn(&Vector3::zeros(), 3).is_empty());
        assert!(tree.within_radius(&Vector3::zeros(), 1.0).is_empty());
    }

    #[test]
    fn non_finite_queries_return_nothing() {
        let tree = KdTree::new(&random_cloud(50, 9));
        for query in [
            Vector3::new(f64::NAN, 0.0, 0.0),
            Vector3::new(0.0, f64::INFINITY, 0.0),
            Vector3::new(0.0, 0.0, f64::NEG_INFINITY),
        ] {
            assert_eq!(tree.nearest(&query), None);
            assert!(tree.knn(&query, 5).is_empty());
            assert!(tree.within_radius(&query, 10.0).is_empty());
        }
    }

    #[test]
    fn invalid_radius_and_zero_k_return_nothing() {
        let tree = KdTree::new(&random_cloud(50, 10));
        let query = Vector3::zeros();
        assert!(tree.within_radius(&query, -1.0).is_empty());
        assert!(tree.within_radius(&query, f64::NAN).is_empty());
        assert_eq!(tree.within_radius(&query, f64::INFINITY).len(), 50);
        assert!(tree.knn(&query, 0).is_empty());
    }

    #[test]
    fn non_finite_points_are_left_out() {
        let mut points = random_cloud(40, 11);
        points[3] = Vector3::new(f64::NAN, 0.0, 0.0);
        points[17] = Vector3::new(0.0, f64::INFINITY, 0.0);
        let tree = KdTree::new(&points);
        assert_eq!(tree.len(), 38);
        let all = tree.knn(&Vector3::zeros(), 100);
        assert_eq!(all.len(), 38);
        assert!(all.iter().all(|&(i, _)| i != 3));
        assert!(all.iter().all(|&(i, _)| i != 17));
        check_against_brute_force(&points, &random_cloud(10, 12), &[1, 38, 40], &[0.5]);
    }

    #[test]
    fn knn_excluding_skips_only_that_index() {
        let points = grid_cloud_with_duplicates(500, 13);
        let tree = KdTree::new(&points);
        for (i, point) in points.iter().enumerate().take(50) {
            let found = tree.knn_excluding(point, 10, Some(i));
            let want: Vec<(usize, f64)> = brute_force_sorted(&points, point)
                .into_iter()
                .filter(|&(j, _)| j != i)
                .take(10)
                .collect();
            assert_eq!(found, want, "point {i}");
        }
    }

    #[test]
    fn leaves_have_bounded_size() {
        for len in [0, 1, 16, 17, 33, 1000, 65_537] {
            let depth = tree_depth(len);
            let smallest = len >> depth;
            let largest = len.div_ceil(1 << depth);
            assert!(largest <= LEAF_SIZE, "len {len}: leaf of {largest}");
            if depth > 0 {
                assert!(smallest >= LEAF_SIZE / 2, "len {len}: leaf of {smallest}");
            }
        }
    }
}
