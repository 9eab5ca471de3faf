//! Sets of visited slots that reset in constant time, and a pool that lends them out.

use std::sync::{Mutex, PoisonError};

/// Slots visited by one search. A slot counts as visited when its mark equals the current
/// epoch, so starting a new search only bumps the epoch. The marks are cleared once every
/// 65,535 searches, when the epoch wraps.
#[derive(Debug, Default)]
pub(super) struct VisitedSet {
    marks: Vec<u16>,
    epoch: u16,
}

impl VisitedSet {
    /// Forgets every visit and makes room for `slots` slots.
    pub(super) fn clear(&mut self, slots: usize) {
        if self.marks.len() < slots {
            self.marks.resize(slots, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `slot` and returns whether it was unvisited.
    #[inline]
    pub(super) fn insert(&mut self, slot: u32) -> bool {
        let mark = &mut self.marks[slot as usize];
        let unvisited = *mark != self.epoch;
        *mark = self.epoch;
        unvisited
    }
}

/// Visited sets kept between searches, so a search does not allocate and zero one mark
/// per slot.
#[derive(Debug, Default)]
pub(super) struct VisitedPool {
    free: Mutex<Vec<VisitedSet>>,
}

impl VisitedPool {
    pub(super) fn take(&self) -> VisitedSet {
        // A panic while the lock was held cannot leave a set half-updated, so a poisoned
        // pool is still usable.
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        free.pop().unwrap_or_default()
    }

    pub(super) fn give_back(&self, set: VisitedSet) {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        free.push(set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_forgets_visits_across_epoch_wrap() {
        let mut set = VisitedSet::default();
        for _ in 0..70_000 {
            set.clear(4);
            assert!(set.insert(2));
            assert!(!set.insert(2));
        }
        set.clear(8);
        assert!(set.insert(7));
        assert!(set.insert(2));
    }
}
