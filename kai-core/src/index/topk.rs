//! The `k` nearest candidates seen so far, kept in a bounded max-heap.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A slot and its distance to the query; lower is closer.
///
/// Ordered by distance, then by slot, so every search breaks ties the same way and a
/// parallel scan returns what a serial one does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Neighbor {
    pub(crate) distance: f32,
    pub(crate) slot: u32,
}

impl Neighbor {
    #[inline]
    pub(crate) fn new(distance: f32, slot: u32) -> Self {
        Self { distance, slot }
    }
}

impl PartialEq for Neighbor {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Neighbor {}

impl PartialOrd for Neighbor {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Neighbor {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.slot.cmp(&other.slot))
    }
}

/// The `k` smallest neighbours pushed so far.
#[derive(Debug, Clone)]
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Neighbor>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k.min(4096) + 1),
        }
    }

    /// Returns the distance a new neighbour must not exceed to enter: the worst kept
    /// distance once `k` are kept, else infinity.
    #[inline]
    pub(crate) fn bound(&self) -> f32 {
        match self.heap.peek() {
            Some(worst) if self.heap.len() >= self.k => worst.distance,
            _ => f32::INFINITY,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, neighbor: Neighbor) {
        if self.heap.len() < self.k {
            self.heap.push(neighbor);
        } else if let Some(mut worst) = self.heap.peek_mut()
            && neighbor < *worst
        {
            *worst = neighbor;
        }
    }

    /// Adds every neighbour kept by `other`.
    pub(crate) fn merge(mut self, other: TopK) -> TopK {
        for neighbor in other.heap {
            self.push(neighbor);
        }
        self
    }

    /// Returns the kept neighbours, closest first.
    pub(crate) fn into_sorted(self) -> Vec<Neighbor> {
        self.heap.into_sorted_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_smallest_with_slot_tie_break() {
        let mut top = TopK::new(3);
        assert_eq!(top.bound(), f32::INFINITY);
        for (slot, distance) in [5.0, 1.0, 3.0, 1.0, 4.0, 0.5].into_iter().enumerate() {
            top.push(Neighbor::new(distance, slot as u32));
        }
        assert_eq!(top.bound(), 1.0);
        let results: Vec<(f32, u32)> = top
            .into_sorted()
            .iter()
            .map(|n| (n.distance, n.slot))
            .collect();
        assert_eq!(results, vec![(0.5, 5), (1.0, 1), (1.0, 3)]);
    }

    #[test]
    fn merge_equals_single_pass() {
        let distances: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32).collect();
        let mut whole = TopK::new(7);
        let mut left = TopK::new(7);
        let mut right = TopK::new(7);
        for (slot, &distance) in distances.iter().enumerate() {
            let neighbor = Neighbor::new(distance, slot as u32);
            whole.push(neighbor);
            if slot < 20 {
                left.push(neighbor)
            } else {
                right.push(neighbor)
            }
        }
        assert_eq!(left.merge(right).into_sorted(), whole.into_sorted());
    }
}
