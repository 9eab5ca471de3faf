//! Feature tracks: the keypoints of different photos that verified matches join into one
//! scene point, found by union-find over the match graph.

/// One keypoint of one photo. `image` indexes the photos that passed screening, in input
/// order; `keypoint` indexes that photo's keypoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Observation {
    pub image: usize,
    pub keypoint: usize,
}

/// The tracks of a set of photos and, per keypoint, the track it belongs to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tracks {
    /// Each track's observations, sorted by image; at most one per image.
    pub tracks: Vec<Vec<Observation>>,
    /// `track_of[image][keypoint]`: the track of that keypoint, if any.
    pub track_of: Vec<Vec<Option<u32>>>,
}

/// Disjoint sets over `0..n` with path halving and union by size.
struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grandparent = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grandparent;
            x = grandparent;
        }
        x
    }

    fn union(&mut self, a: u32, b: u32) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a as usize] < self.size[b as usize] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        self.size[a as usize] += self.size[b as usize];
    }
}

impl Tracks {
    /// Joins the keypoints that `pairs` match into tracks.
    ///
    /// `num_keypoints[i]` is the keypoint count of photo `i`; each entry of `pairs` is
    /// `(image_a, image_b, matches)` with `matches` as `(keypoint in a, keypoint in b)`.
    /// Tracks that would contain two keypoints of one photo are dropped, because such a
    /// track joins two different scene points through a wrong match somewhere along it.
    pub(crate) fn build<'a>(
        num_keypoints: &[usize],
        pairs: impl Iterator<Item = (usize, usize, &'a [(u32, u32)])>,
    ) -> Self {
        let mut offsets = Vec::with_capacity(num_keypoints.len() + 1);
        let mut total = 0usize;
        for &count in num_keypoints {
            offsets.push(total);
            total += count;
        }
        offsets.push(total);

        let mut sets = UnionFind::new(total);
        let mut matched = vec![false; total];
        for (a, b, matches) in pairs {
            for &(ka, kb) in matches {
                let na = offsets[a] + ka as usize;
                let nb = offsets[b] + kb as usize;
                matched[na] = true;
                matched[nb] = true;
                sets.union(na as u32, nb as u32);
            }
        }

        // Group the matched keypoints by root, visiting images in order so every track's
        // observations come out sorted by image and track ids follow the first keypoint.
        let mut track_of_root: Vec<u32> = vec![u32::MAX; total];
        let mut tracks: Vec<Vec<Observation>> = Vec::new();
        for (image, &count) in num_keypoints.iter().enumerate() {
            for keypoint in 0..count {
                let node = offsets[image] + keypoint;
                if !matched[node] {
                    continue;
                }
                let root = sets.find(node as u32) as usize;
                if track_of_root[root] == u32::MAX {
                    track_of_root[root] = tracks.len() as u32;
                    tracks.push(Vec::new());
                }
                tracks[track_of_root[root] as usize].push(Observation { image, keypoint });
            }
        }

        let mut kept = Vec::with_capacity(tracks.len());
        let mut track_of: Vec<Vec<Option<u32>>> = num_keypoints
            .iter()
            .map(|&count| vec![None; count])
            .collect();
        for track in tracks {
            let conflicting = track.windows(2).any(|w| w[0].image == w[1].image);
            if conflicting || track.len() < 2 {
                continue;
            }
            let id = kept.len() as u32;
            for observation in &track {
                track_of[observation.image][observation.keypoint] = Some(id);
            }
            kept.push(track);
        }
        Self {
            tracks: kept,
            track_of,
        }
    }

    /// Returns the number of tracks.
    pub(crate) fn len(&self) -> usize {
        self.tracks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_join_and_conflicts_drop() {
        // 0:0 - 1:0 - 2:0 form one track; 0:1 - 1:1 - 2:1 - 0:2 loops back into image 0
        // with a second keypoint, so it is dropped.
        let m01: Vec<(u32, u32)> = vec![(0, 0), (1, 1)];
        let m12: Vec<(u32, u32)> = vec![(0, 0), (1, 1)];
        let m02: Vec<(u32, u32)> = vec![(2, 1)];
        let pairs = vec![(0, 1, &m01[..]), (1, 2, &m12[..]), (0, 2, &m02[..])];
        let tracks = Tracks::build(&[3, 2, 2], pairs.into_iter());
        assert_eq!(tracks.len(), 1);
        assert_eq!(
            tracks.tracks[0],
            vec![
                Observation {
                    image: 0,
                    keypoint: 0
                },
                Observation {
                    image: 1,
                    keypoint: 0
                },
                Observation {
                    image: 2,
                    keypoint: 0
                },
            ]
        );
        assert_eq!(tracks.track_of[1][0], Some(0));
        assert_eq!(tracks.track_of[1][1], None);
        assert_eq!(tracks.track_of[0][2], None);
    }
}
