//! A batch of embedding vectors in one contiguous buffer.

use crate::error::{Error, Result};

/// Row-major `len() × dimension()` matrix of f32 vectors, one row per input, in input order.
///
/// One contiguous buffer lets bindings hand the vectors to numpy or a `Float32Array`
/// without copying row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    dimension: usize,
    data: Vec<f32>,
}

impl Embeddings {
    /// Wraps a row-major buffer.
    ///
    /// # Panics
    ///
    /// Panics if `dimension` is zero or `data.len()` is not a multiple of it; kai-core
    /// builds these values itself, so this is a bug check, not input validation.
    pub(crate) fn new(dimension: usize, data: Vec<f32>) -> Self {
        assert!(dimension > 0 && data.len().is_multiple_of(dimension));
        Self { dimension, data }
    }

    /// Returns the number of vectors.
    pub fn len(&self) -> usize {
        self.data.len() / self.dimension
    }

    /// Returns `true` when there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Returns the length of each vector.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Returns vector `index`, or `None` past the end.
    pub fn get(&self, index: usize) -> Option<&[f32]> {
        let start = index.checked_mul(self.dimension)?;
        self.data.get(start..start.checked_add(self.dimension)?)
    }

    /// Iterates over the vectors in input order.
    pub fn iter(&self) -> std::slice::ChunksExact<'_, f32> {
        self.data.chunks_exact(self.dimension)
    }

    /// Returns the whole row-major buffer.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Returns the row-major buffer, consuming `self`.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Copies the vectors into one `Vec` each.
    pub fn to_vecs(&self) -> Vec<Vec<f32>> {
        self.iter().map(<[f32]>::to_vec).collect()
    }

    /// Splits the rows into consecutive groups of `sizes` rows each, for a caller that
    /// embedded the inputs of several requests in one call.
    ///
    /// # Errors
    ///
    /// Returns [`Error::InvalidInput`] when the sizes do not add up to [`Embeddings::len`].
    pub fn split(self, sizes: &[usize]) -> Result<Vec<Embeddings>> {
        let total: usize = sizes.iter().sum();
        if total != self.len() {
            return Err(Error::invalid(
                "sizes",
                format!("add up to {total} rows, but there are {}", self.len()),
            ));
        }
        let mut rest = self.data.as_slice();
        let mut groups = Vec::with_capacity(sizes.len());
        for size in sizes {
            let (group, tail) = rest.split_at(size * self.dimension);
            groups.push(Embeddings::new(self.dimension, group.to_vec()));
            rest = tail;
        }
        Ok(groups)
    }
}

impl<'a> IntoIterator for &'a Embeddings {
    type Item = &'a [f32];
    type IntoIter = std::slice::ChunksExact<'a, f32>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Returns the cosine similarity of two vectors of equal length, or 0 when either is zero.
///
/// # Panics
///
/// Panics if the lengths differ.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vectors of different lengths");
    let (mut dot, mut norm_a, mut norm_b) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        dot += f64::from(x) * f64::from(y);
        norm_a += f64::from(x) * f64::from(x);
        norm_b += f64::from(y) * f64::from(y);
    }
    if norm_a == 0.0 || norm_b == 0.0 {
        return 0.0;
    }
    (dot / (norm_a.sqrt() * norm_b.sqrt())) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_in_order() {
        let e = Embeddings::new(2, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(e.len(), 2);
        assert_eq!(e.get(1), Some(&[3.0, 4.0][..]));
        assert_eq!(e.get(2), None);
        assert_eq!(e.get(usize::MAX / 2), None);
        assert_eq!(e.to_vecs(), vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
    }

    #[test]
    fn split_keeps_row_order() {
        let e = Embeddings::new(2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let groups = e.clone().split(&[1, 0, 2]).unwrap();
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].to_vecs(), vec![vec![1.0, 2.0]]);
        assert!(groups[1].is_empty());
        assert_eq!(groups[1].dimension(), 2);
        assert_eq!(groups[2].to_vecs(), vec![vec![3.0, 4.0], vec![5.0, 6.0]]);
        let err = e.split(&[1, 1]).unwrap_err();
        assert!(err.to_string().contains("add up to 2 rows"), "{err}");
    }

    #[test]
    fn cosine_of_parallel_and_orthogonal() {
        assert!((cosine_similarity(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-7);
        assert!(cosine_similarity(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-7);
        assert_eq!(cosine_similarity(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
