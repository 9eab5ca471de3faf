//! A bound on the request images decoded at once.
//!
//! A small compressed file can declare a huge image: a 187 KB PNG of 8000 × 8000 pixels
//! decodes to 192 MB of RGB, and more while the decoder works. The image limits bound one
//! decode, and this counting semaphore bounds how many run together. Decodes run on the
//! blocking thread pool, so a waiting decode blocks its pool thread, not an async worker.
//!
//! NOTE: a permit covers the decoding of one request's photos, not their later use. A
//! decoded photo that waits for a recognition batch, or a request of many photos, still
//! holds its pixels after the permit is released.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// A counting semaphore for image decodes, with counts for metrics and tests.
#[derive(Debug)]
pub struct DecodeLimit {
    capacity: usize,
    counts: Mutex<Counts>,
    released: Condvar,
}

#[derive(Debug, Default)]
struct Counts {
    running: usize,
    waiting: usize,
    peak: usize,
}

/// A snapshot of a [`DecodeLimit`]'s counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeCounts {
    /// Decodes allowed at once.
    pub capacity: usize,
    /// Permits held now.
    pub running: usize,
    /// Callers waiting for a permit now.
    pub waiting: usize,
    /// The maximum number of permits held at once so far.
    pub peak: usize,
}

/// A held permit; dropping it lets the next decode start.
#[derive(Debug)]
pub struct DecodePermit<'a> {
    limit: &'a DecodeLimit,
}

impl DecodeLimit {
    /// Allows `capacity` decodes at once (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            counts: Mutex::new(Counts::default()),
            released: Condvar::new(),
        }
    }

    /// Waits for a permit; call it on the blocking thread pool.
    pub fn acquire(&self) -> DecodePermit<'_> {
        let mut counts = self.lock();
        counts.waiting += 1;
        while counts.running == self.capacity {
            counts = self
                .released
                .wait(counts)
                .unwrap_or_else(PoisonError::into_inner);
        }
        counts.waiting -= 1;
        counts.running += 1;
        counts.peak = counts.peak.max(counts.running);
        DecodePermit { limit: self }
    }

    /// Returns the current counts.
    pub fn counts(&self) -> DecodeCounts {
        let counts = self.lock();
        DecodeCounts {
            capacity: self.capacity,
            running: counts.running,
            waiting: counts.waiting,
            peak: counts.peak,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // The counts are updated in single statements, so a poisoned lock holds valid
        // counts.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for DecodePermit<'_> {
    fn drop(&mut self) {
        self.limit.lock().running -= 1;
        self.limit.released.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;

    /// Waits until `limit` has `waiting` callers waiting, failing after ten seconds.
    fn wait_for_waiting(limit: &DecodeLimit, waiting: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while limit.counts().waiting != waiting {
            assert!(Instant::now() < deadline, "{:?}", limit.counts());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn permits_are_bounded() {
        let limit = Arc::new(DecodeLimit::new(2));
        let first = limit.acquire();
        let second = limit.acquire();
        let third = {
            let limit = Arc::clone(&limit);
            std::thread::spawn(move || {
                let _permit = limit.acquire();
                limit.counts().running
            })
        };
        wait_for_waiting(&limit, 1);
        assert_eq!(limit.counts().running, 2);
        drop(first);
        assert_eq!(third.join().expect("the thread ends"), 2);
        drop(second);
        let counts = limit.counts();
        assert_eq!(counts.running, 0);
        assert_eq!(counts.waiting, 0);
        assert_eq!(counts.peak, 2);
    }
}
