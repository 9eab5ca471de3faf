//! Similarity metrics and the vector kernels behind them.
//!
//! Every search ranks by a distance where lower is closer: the negated dot product for
//! [`Metric::Cosine`] and [`Metric::InnerProduct`], the squared Euclidean distance for
//! [`Metric::L2`]. [`Hit::score`](super::Hit::score) is the negated distance, so a higher
//! score is always a better match.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The similarity measure between two vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// Cosine similarity. Vectors and queries are scaled to unit length, so the score is
    /// their dot product, between -1 and 1.
    #[serde(rename = "cosine")]
    Cosine,
    /// The dot product of the vectors as given.
    #[serde(rename = "ip")]
    InnerProduct,
    /// Euclidean distance. The score is the negated squared distance.
    #[serde(rename = "l2")]
    L2,
}

impl Metric {
    /// Every metric, in the order of their codes in the index file.
    pub const ALL: [Metric; 3] = [Metric::Cosine, Metric::InnerProduct, Metric::L2];

    /// Returns the name used in configuration and serde: `cosine`, `ip` or `l2`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::InnerProduct => "ip",
            Metric::L2 => "l2",
        }
    }

    /// Returns the code stored in the index file.
    pub(crate) fn code(self) -> u8 {
        match self {
            Metric::Cosine => 0,
            Metric::InnerProduct => 1,
            Metric::L2 => 2,
        }
    }

    /// Returns the metric stored as `code` in the index file.
    pub(crate) fn from_code(code: u8) -> Option<Self> {
        Metric::ALL.into_iter().find(|metric| metric.code() == code)
    }

    /// Returns the distance between `a` and `b`; lower is closer. Search code calls the
    /// kernels directly, with the metric resolved once per search.
    #[cfg(test)]
    pub(crate) fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::Cosine | Metric::InnerProduct => -dot(a, b),
            Metric::L2 => l2_squared(a, b),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        Metric::ALL
            .into_iter()
            .find(|metric| metric.name() == name)
            .ok_or_else(|| {
                Error::invalid(
                    "metric",
                    format!("`{name}` is not a metric; use cosine, ip or l2"),
                )
            })
    }
}

/// Lanes per step of the kernels. The fixed-size inner loops compile to four 4-wide SSE
/// accumulators, which keep the adder busy while hiding its latency. Measured with rustc
/// 1.95 on an AMD EPYC (Zen 5) at dimension 384, 16 lanes beat 32 and 64 for the
/// baseline x86-64 target, for AVX2 and for AVX-512.
// NOTE: the default x86-64 build only has SSE2, which leaves HNSW search at about 0.9× of
// hnswlib's queries/s; `-C target-cpu=native` reaches 1.05× (benches/RESULTS.md).
const LANES: usize = 16;

/// A distance between vectors, lower for closer ones. Searches are generic over it, so
/// each metric compiles to its own loop with the kernel inlined.
pub(crate) trait Distance: Copy + Send + Sync {
    /// Returns the distance between `a` and `b`, which have the same length.
    fn between(self, a: &[f32], b: &[f32]) -> f32;
}

/// The negated dot product, the distance of [`Metric::Cosine`] and
/// [`Metric::InnerProduct`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct NegatedDot;

/// The squared Euclidean distance, the distance of [`Metric::L2`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct SquaredL2;

impl Distance for NegatedDot {
    #[inline]
    fn between(self, a: &[f32], b: &[f32]) -> f32 {
        -dot(a, b)
    }
}

impl Distance for SquaredL2 {
    #[inline]
    fn between(self, a: &[f32], b: &[f32]) -> f32 {
        l2_squared(a, b)
    }
}

/// Returns the dot product of `a` and `b`, which have the same length.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    reduce::<false>(a, b)
}

/// Returns the squared Euclidean distance between `a` and `b`, which have the same length.
#[inline]
pub(crate) fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    reduce::<true>(a, b)
}

/// Returns the term that pairs `x` and `y` add: their squared difference when `SQUARED`,
/// else their product.
#[inline(always)]
fn term<const SQUARED: bool>(x: f32, y: f32) -> f32 {
    if SQUARED {
        let difference = x - y;
        difference * difference
    } else {
        x * y
    }
}

/// Returns the sum of the terms of `a` and `b`, which have the same length.
#[inline]
fn reduce<const SQUARED: bool>(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let (a_blocks, a_tail) = a.as_chunks::<LANES>();
    let (b_blocks, b_tail) = b.as_chunks::<LANES>();
    let mut sums = [0.0f32; LANES];
    for (x, y) in a_blocks.iter().zip(b_blocks) {
        for lane in 0..LANES {
            sums[lane] += term::<SQUARED>(x[lane], y[lane]);
        }
    }
    // The lanes add one after another. A pairwise tree made LLVM pair lanes across
    // registers in the loop above, which halved the speed.
    let mut total: f32 = sums.iter().sum();
    for (x, y) in a_tail.iter().zip(b_tail) {
        total += term::<SQUARED>(*x, *y);
    }
    total
}

/// Scales `vector` to unit length and returns its original length. A zero vector stays
/// zero and returns 0.
pub(crate) fn normalize(vector: &mut [f32]) -> f32 {
    let norm = dot(vector, vector).sqrt();
    if norm > 0.0 {
        let inverse = 1.0 / norm;
        for x in vector.iter_mut() {
            *x *= inverse;
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    }

    fn sample(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn kernels_match_naive_sums_for_odd_lengths() {
        for len in [0, 1, 7, 31, 32, 33, 64, 100, 384, 1001] {
            let a = sample(len, 1);
            let b = sample(len, 7);
            let expected_dot = naive_dot(&a, &b);
            assert!(
                (f64::from(dot(&a, &b)) - expected_dot).abs() < 1e-3,
                "dot, len {len}"
            );
            let expected_l2: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                .sum();
            let got = f64::from(l2_squared(&a, &b));
            assert!((got - expected_l2).abs() < 1e-3, "l2, len {len}");
        }
    }

    #[test]
    fn distance_orders_closer_first() {
        let query = [1.0, 0.0];
        let near = [0.9, 0.1];
        let far = [-1.0, 0.0];
        for metric in Metric::ALL {
            assert!(
                metric.distance(&query, &near) < metric.distance(&query, &far),
                "{metric}"
            );
        }
    }

    #[test]
    fn normalize_gives_unit_length() {
        let mut v = vec![3.0, 4.0];
        assert_eq!(normalize(&mut v), 5.0);
        assert!((dot(&v, &v) - 1.0).abs() < 1e-6);
        let mut zero = vec![0.0; 3];
        assert_eq!(normalize(&mut zero), 0.0);
        assert_eq!(zero, vec![0.0; 3]);
    }

    #[test]
    fn names_round_trip() {
        for metric in Metric::ALL {
            assert_eq!(metric.name().parse::<Metric>().unwrap(), metric);
            assert_eq!(Metric::from_code(metric.code()), Some(metric));
            let json = serde_json::to_string(&metric).unwrap();
            assert_eq!(json, format!("\"{}\"", metric.name()));
        }
        let err = "euclid".parse::<Metric>().unwrap_err().to_string();
        assert!(
            err.contains("euclid") && err.contains("cosine, ip or l2"),
            "{err}"
        );
    }
}
