//! Normal estimation by local PCA, and orientation of the normals' signs.

use nalgebra::{Matrix3, SymmetricEigen, Vector3};
use rayon::prelude::*;

use super::{KdTree, PointCloud};
use crate::error::{Error, Result};

/// Estimates each point's normal as the direction of least variance of its `neighbors`
/// nearest points (the point included).
///
/// The normal is the eigenvector of the smallest eigenvalue of the neighbourhood covariance.
/// Where the cloud already has normals, each new normal takes the sign of the old one.
/// Otherwise signs are arbitrary, so orient them with [`orient_normals_consistent`] or
/// [`orient_normals_towards`]. A neighbourhood whose points all coincide yields an arbitrary
/// unit axis.
///
/// Returns an error when `neighbors` is below 3, when the cloud has fewer than 3 points, or
/// when it fails [`PointCloud::validate`].
pub fn estimate_normals(cloud: &mut PointCloud, neighbors: usize) -> Result<()> {
    if neighbors < 3 {
        return Err(Error::invalid(
            "normal neighbors",
            format!("{neighbors} points cannot define a plane; use at least 3"),
        ));
    }
    cloud.validate()?;
    if cloud.len() < 3 {
        return Err(Error::invalid(
            "point cloud",
            format!(
                "{} points cannot define a plane; normals need at least 3",
                cloud.len()
            ),
        ));
    }

    let tree = KdTree::new(&cloud.positions);
    let positions = &cloud.positions;
    let previous = cloud.normals.as_deref();
    let normals: Vec<Vector3<f64>> = positions
        .par_iter()
        .enumerate()
        .map(|(index, p)| {
            let neighbours = tree.knn(p, neighbors);
            let normal = least_variance_direction(neighbours.iter().map(|&(i, _)| &positions[i]));
            match previous {
                Some(old) if old[index].dot(&normal) < 0.0 => -normal,
                _ => normal,
            }
        })
        .collect();
    cloud.normals = Some(normals);
    Ok(())
}

/// Returns the unit eigenvector of the smallest eigenvalue of the points' covariance.
fn least_variance_direction<'a>(
    points: impl Iterator<Item = &'a Vector3<f64>> + Clone,
) -> Vector3<f64> {
    let mut count = 0.0;
    let mut sum = Vector3::zeros();
    for p in points.clone() {
        sum += p;
        count += 1.0;
    }
    let centroid = sum / count;
    let mut covariance = Matrix3::zeros();
    for p in points {
        let d = p - centroid;
        covariance += d * d.transpose();
    }
    let eigen = SymmetricEigen::new(covariance);
    let smallest = eigen.eigenvalues.imin();
    let normal: Vector3<f64> = eigen.eigenvectors.column(smallest).into_owned();
    normal.try_normalize(0.0).unwrap_or_else(Vector3::z)
}

/// Flips each normal so that it points towards `viewpoint`, such as the camera that saw the
/// point. Does nothing when the cloud has no normals.
pub fn orient_normals_towards(cloud: &mut PointCloud, viewpoint: &Vector3<f64>) {
    let Some(normals) = cloud.normals.as_mut() else {
        return;
    };
    normals
        .par_iter_mut()
        .zip(cloud.positions.par_iter())
        .for_each(|(normal, p)| {
            if normal.dot(&(viewpoint - p)) < 0.0 {
                *normal = -*normal;
            }
        });
}

/// Flips normals so that neighbouring normals agree and each surface's normals point
/// outward.
///
/// The signs propagate along a minimum spanning tree of the graph that links each point to
/// its `neighbors` nearest points, with edge weight `1 - |n_i . n_j|`, so the walk crosses
/// nearly parallel normals first and sharp bends last. Each connected part of the graph is
/// seeded at its point of largest x, whose normal is turned to +x: on a closed surface the
/// outward normal there points along +x.
///
/// Returns an error when the cloud has no normals, when `neighbors` is 0, or when the cloud
/// fails [`PointCloud::validate`].
pub fn orient_normals_consistent(cloud: &mut PointCloud, neighbors: usize) -> Result<()> {
    if neighbors == 0 {
        return Err(Error::invalid(
            "orientation neighbors",
            "0 neighbours link no points; use at least 1",
        ));
    }
    cloud.validate()?;
    let Some(normals) = cloud.normals.as_mut() else {
        return Err(Error::invalid(
            "point cloud normals",
            "missing; estimate them with estimate_normals first",
        ));
    };
    let count = cloud.positions.len();
    if count == 0 {
        return Ok(());
    }
    if u32::try_from(count).is_err() {
        return Err(Error::invalid(
            "point cloud",
            format!("{count} points exceed the orientation graph's limit of 2^32 - 1"),
        ));
    }

    let edges = neighbour_graph(&cloud.positions, normals, neighbors);
    let tree_edges = minimum_spanning_forest(count, &edges);
    let adjacency = Adjacency::new(count, &tree_edges);

    let mut visited = vec![false; count];
    let mut queue = std::collections::VecDeque::new();
    for seed in component_seeds(&cloud.positions, count, &tree_edges) {
        if normals[seed].x < 0.0 {
            normals[seed] = -normals[seed];
        }
        visited[seed] = true;
        queue.push_back(seed);
        while let Some(parent) = queue.pop_front() {
            for &child in adjacency.neighbours(parent) {
                if visited[child] {
                    continue;
                }
                visited[child] = true;
                if normals[child].dot(&normals[parent]) < 0.0 {
                    normals[child] = -normals[child];
                }
                queue.push_back(child);
            }
        }
    }
    Ok(())
}

/// An undirected edge (smaller index, larger index) with its weight.
type Edge = (f64, u32, u32);

/// Returns the deduplicated k-nearest-neighbour edges, sorted by (weight, endpoints).
fn neighbour_graph(
    positions: &[Vector3<f64>],
    normals: &[Vector3<f64>],
    neighbors: usize,
) -> Vec<Edge> {
    let tree = KdTree::new(positions);
    let mut edges: Vec<Edge> = positions
        .par_iter()
        .enumerate()
        .flat_map_iter(|(i, p)| {
            tree.knn_excluding(p, neighbors, Some(i))
                .into_iter()
                .map(move |(j, _)| {
                    let (a, b) = if i < j { (i, j) } else { (j, i) };
                    let weight = 1.0 - normals[a].dot(&normals[b]).abs();
                    (weight, a as u32, b as u32)
                })
        })
        .collect();
    edges.par_sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then((x.1, x.2).cmp(&(y.1, y.2))));
    edges.dedup_by(|x, y| x.1 == y.1 && x.2 == y.2);
    edges
}

/// Runs Kruskal's algorithm over edges sorted by weight and returns the forest's edges.
fn minimum_spanning_forest(count: usize, sorted_edges: &[Edge]) -> Vec<(u32, u32)> {
    let mut sets = DisjointSets::new(count);
    sorted_edges
        .iter()
        .filter(|&&(_, a, b)| sets.union(a as usize, b as usize))
        .map(|&(_, a, b)| (a, b))
        .collect()
}

/// Returns, for each connected part of the forest, its point of largest x (ties go to the
/// smaller index), in increasing index order.
fn component_seeds(
    positions: &[Vector3<f64>],
    count: usize,
    tree_edges: &[(u32, u32)],
) -> Vec<usize> {
    let mut sets = DisjointSets::new(count);
    for &(a, b) in tree_edges {
        sets.union(a as usize, b as usize);
    }
    let mut best: Vec<Option<usize>> = vec![None; count];
    for index in 0..count {
        let root = sets.find(index);
        match best[root] {
            Some(current) if positions[current].x >= positions[index].x => {}
            _ => best[root] = Some(index),
        }
    }
    let mut seeds: Vec<usize> = best.into_iter().flatten().collect();
    seeds.sort_unstable();
    seeds
}

/// Union-find with path halving and union by size.
struct DisjointSets {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl DisjointSets {
    fn new(count: usize) -> Self {
        DisjointSets {
            parent: (0..count).collect(),
            size: vec![1; count],
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    /// Merges the sets of `a` and `b` and returns whether they were separate.
    fn union(&mut self, a: usize, b: usize) -> bool {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return false;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
        true
    }
}

/// Compressed adjacency lists of an undirected graph.
struct Adjacency {
    offsets: Vec<usize>,
    targets: Vec<usize>,
}

impl Adjacency {
    fn new(count: usize, edges: &[(u32, u32)]) -> Self {
        let mut offsets = vec![0usize; count + 1];
        for &(a, b) in edges {
            offsets[a as usize + 1] += 1;
            offsets[b as usize + 1] += 1;
        }
        for i in 0..count {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut targets = vec![0usize; offsets[count]];
        for &(a, b) in edges {
            let (a, b) = (a as usize, b as usize);
            targets[fill[a]] = b;
            fill[a] += 1;
            targets[fill[b]] = a;
            fill[b] += 1;
        }
        Adjacency { offsets, targets }
    }

    fn neighbours(&self, node: usize) -> &[usize] {
        &self.targets[self.offsets[node]..self.offsets[node + 1]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::f64::consts::TAU;

    fn unit_vector(rng: &mut ChaCha8Rng) -> Vector3<f64> {
        loop {
            let v = Vector3::new(
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
            );
            let norm = v.norm();
            if norm > 0.1 && norm <= 1.0 {
                return v / norm;
            }
        }
    }

    /// Samples a sphere of `radius` at `center`; returns the cloud and the true outward normals.
    fn sphere(
        count: usize,
        center: Vector3<f64>,
        radius: f64,
        noise: f64,
        seed: u64,
    ) -> (PointCloud, Vec<Vector3<f64>>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut positions = Vec::with_capacity(count);
        let mut truth = Vec::with_capacity(count);
        for _ in 0..count {
            let n = unit_vector(&mut rng);
            let offset = if noise > 0.0 {
                rng.random_range(-noise..noise)
            } else {
                0.0
            };
            positions.push(center + n * (radius + offset));
            truth.push(n);
        }
        let cloud = PointCloud {
            colors: vec![[0; 3]; count],
            positions,
            normals: None,
        };
        (cloud, truth)
    }

    /// Samples a torus around the z axis uniformly by area (major radius 1, minor radius 0.3).
    fn torus(count: usize, noise: f64, seed: u64) -> (PointCloud, Vec<Vector3<f64>>) {
        let (major, minor) = (1.0, 0.3);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut positions = Vec::with_capacity(count);
        let mut truth = Vec::with_capacity(count);
        while positions.len() < count {
            let theta: f64 = rng.random_range(0.0..TAU);
            let phi: f64 = rng.random_range(0.0..TAU);
            // The area element is proportional to major + minor cos(phi).
            if rng.random_range(0.0..major + minor) > major + minor * phi.cos() {
                continue;
            }
            let n = Vector3::new(phi.cos() * theta.cos(), phi.cos() * theta.sin(), phi.sin());
            let core = Vector3::new(major * theta.cos(), major * theta.sin(), 0.0);
            let offset = if noise > 0.0 {
                rng.random_range(-noise..noise)
            } else {
                0.0
            };
            positions.push(core + n * (minor + offset));
            truth.push(n);
        }
        let cloud = PointCloud {
            colors: vec![[0; 3]; count],
            positions,
            normals: None,
        };
        (cloud, truth)
    }

    fn outward_share(cloud: &PointCloud, truth: &[Vector3<f64>]) -> f64 {
        let normals = cloud.normals.as_ref().unwrap();
        let outward = normals
            .iter()
            .zip(truth)
            .filter(|(n, t)| n.dot(t) > 0.0)
            .count();
        outward as f64 / truth.len() as f64
    }

    /// Mean angle in degrees between the estimated normal lines and the true normals.
    fn mean_angle_error_degrees(cloud: &PointCloud, truth: &[Vector3<f64>]) -> f64 {
        let normals = cloud.normals.as_ref().unwrap();
        let total: f64 = normals
            .iter()
            .zip(truth)
            .map(|(n, t)| n.dot(t).abs().min(1.0).acos().to_degrees())
            .sum();
        total / truth.len() as f64
    }

    fn scramble_signs(cloud: &mut PointCloud, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for normal in cloud.normals.as_mut().unwrap() {
            if rng.random_bool(0.5) {
                *normal = -*normal;
            }
        }
    }

    #[test]
    fn estimated_normals_are_accurate() {
        let (mut clean, truth) = sphere(3000, Vector3::zeros(), 1.0, 0.0, 1);
        estimate_normals(&mut clean, 15).unwrap();
        let clean_error = mean_angle_error_degrees(&clean, &truth);
        assert!(clean_error < 2.0, "clean sphere: {clean_error} degrees");

        let (mut noisy, truth) = sphere(3000, Vector3::zeros(), 1.0, 0.01, 2);
        estimate_normals(&mut noisy, 20).unwrap();
        let noisy_error = mean_angle_error_degrees(&noisy, &truth);
        assert!(noisy_error < 4.0, "noisy sphere: {noisy_error} degrees");

        let (mut noisy_torus, truth) = torus(4000, 0.005, 3);
        estimate_normals(&mut noisy_torus, 20).unwrap();
        let torus_error = mean_angle_error_degrees(&noisy_torus, &truth);
        eprintln!(
            "mean angle error: clean sphere {clean_error}, noisy sphere {noisy_error}, noisy torus {torus_error} degrees"
        );
        assert!(torus_error < 5.0, "noisy torus: {torus_error} degrees");

        for normal in noisy_torus.normals.as_ref().unwrap() {
            assert!((normal.norm() - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn estimate_keeps_existing_signs() {
        let (mut cloud, truth) = sphere(1000, Vector3::zeros(), 1.0, 0.0, 4);
        cloud.normals = Some(truth.iter().map(|t| -t).collect());
        estimate_normals(&mut cloud, 12).unwrap();
        let inward = cloud
            .normals
            .as_ref()
            .unwrap()
            .iter()
            .zip(&truth)
            .filter(|(n, t)| n.dot(t) < 0.0)
            .count();
        assert_eq!(inward, truth.len());
    }

    #[test]
    fn consistent_orientation_points_outward() {
        let (mut ball, truth) = sphere(3000, Vector3::new(3.0, -2.0, 1.0), 0.5, 0.005, 5);
        estimate_normals(&mut ball, 15).unwrap();
        scramble_signs(&mut ball, 6);
        orient_normals_consistent(&mut ball, 10).unwrap();
        let share = outward_share(&ball, &truth);
        eprintln!("sphere: {share} outward");
        assert!(share > 0.99, "sphere: {share} outward");

        let (mut ring, truth) = torus(5000, 0.003, 7);
        estimate_normals(&mut ring, 15).unwrap();
        scramble_signs(&mut ring, 8);
        orient_normals_consistent(&mut ring, 10).unwrap();
        let share = outward_share(&ring, &truth);
        eprintln!("torus: {share} outward");
        assert!(share > 0.99, "torus: {share} outward");
    }

    #[test]
    fn separate_parts_are_each_oriented() {
        // Two spheres far apart form two graph components, each seeded on its own.
        let (mut left, mut truth) = sphere(1500, Vector3::new(-10.0, 0.0, 0.0), 1.0, 0.0, 9);
        let (right, right_truth) = sphere(1500, Vector3::new(10.0, 0.0, 0.0), 1.0, 0.0, 10);
        left.positions.extend(right.positions);
        left.colors.extend(right.colors);
        truth.extend(right_truth);
        estimate_normals(&mut left, 12).unwrap();
        scramble_signs(&mut left, 11);
        orient_normals_consistent(&mut left, 8).unwrap();
        let share = outward_share(&left, &truth);
        assert!(share > 0.99, "two spheres: {share} outward");
    }

    #[test]
    fn orientation_is_deterministic() {
        let (mut a, _) = torus(2000, 0.003, 12);
        estimate_normals(&mut a, 12).unwrap();
        scramble_signs(&mut a, 13);
        let mut b = a.clone();
        orient_normals_consistent(&mut a, 8).unwrap();
        orient_normals_consistent(&mut b, 8).unwrap();
        assert_eq!(a.normals, b.normals);
    }

    #[test]
    fn orient_towards_viewpoint() {
        let (mut cloud, truth) = sphere(500, Vector3::zeros(), 1.0, 0.0, 14);
        cloud.normals = Some(truth.clone());
        orient_normals_towards(&mut cloud, &Vector3::zeros());
        assert!(
            cloud
                .normals
                .as_ref()
                .unwrap()
                .iter()
                .zip(&truth)
                .all(|(n, t)| n.dot(t) < 0.0)
        );

        let mut bare = cloud.clone();
        bare.normals = None;
        orient_normals_towards(&mut bare, &Vector3::zeros());
        assert_eq!(bare.normals, None);
    }

    #[test]
    fn invalid_inputs_are_rejected() {
        let (mut cloud, _) = sphere(50, Vector3::zeros(), 1.0, 0.0, 15);
        let message = estimate_normals(&mut cloud, 2).unwrap_err().to_string();
        assert!(message.contains("2 points"), "{message}");
        let message = orient_normals_consistent(&mut cloud, 5)
            .unwrap_err()
            .to_string();
        assert!(message.contains("normals: missing"), "{message}");
        estimate_normals(&mut cloud, 5).unwrap();
        let message = orient_normals_consistent(&mut cloud, 0)
            .unwrap_err()
            .to_string();
        assert!(message.contains("orientation neighbors"), "{message}");

        let mut pair = cloud.select(&[0, 1]);
        let message = estimate_normals(&mut pair, 5).unwrap_err().to_string();
        assert!(message.contains("2 points"), "{message}");

        let mut broken = cloud.clone();
        broken.positions[7].x = f64::NAN;
        assert!(estimate_normals(&mut broken, 5).is_err());
        assert!(orient_normals_consistent(&mut broken, 5).is_err());
    }
}
