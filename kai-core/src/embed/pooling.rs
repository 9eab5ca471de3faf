//! Pooling of token vectors into one vector per sequence, on the host.
//!
//! The encoder output is copied to the host once per batch and pooled here, for every
//! device: the copy is `batch × length × hidden` floats, small next to the encoder's work,
//! and plain loops avoid several candle operations per batch.

use crate::models::Pooling;

/// Pools `hidden`, a row-major `(lengths.len(), length, dimension)` buffer of right-padded
/// sequences, over the first `lengths[b]` tokens of each sequence; returns
/// `(lengths.len(), dimension)`. With `normalize`, each vector is divided by
/// `max(‖v‖, 1e-12)`, as PyTorch's `normalize` does.
pub(crate) fn pool(
    hidden: &[f32],
    length: usize,
    dimension: usize,
    lengths: &[usize],
    pooling: Pooling,
    normalize: bool,
) -> Vec<f32> {
    let mut output = vec![0f32; lengths.len() * dimension];
    let sequences = hidden.chunks_exact(length * dimension);
    for ((out, tokens), &valid) in output
        .chunks_exact_mut(dimension)
        .zip(sequences)
        .zip(lengths)
    {
        let tokens = &tokens[..valid * dimension];
        match pooling {
            Pooling::Cls => out.copy_from_slice(&tokens[..dimension]),
            Pooling::Mean => {
                for token in tokens.chunks_exact(dimension) {
                    for (o, &t) in out.iter_mut().zip(token) {
                        *o += t;
                    }
                }
                // sentence-transformers divides by the token count clamped at 1e-9.
                let count = (valid as f32).max(1e-9);
                out.iter_mut().for_each(|o| *o /= count);
            }
            Pooling::Max => {
                out.fill(f32::NEG_INFINITY);
                for token in tokens.chunks_exact(dimension) {
                    for (o, &t) in out.iter_mut().zip(token) {
                        *o = o.max(t);
                    }
                }
            }
        }
        if normalize {
            let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            out.iter_mut().for_each(|o| *o /= norm);
        }
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two sequences of length 3, dimension 2; the second has one padded token.
    const HIDDEN: [f32; 12] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 2.0, 0.0, 4.0, 0.0, 99.0, 99.0];

    #[test]
    fn mean_skips_padding() {
        let pooled = pool(&HIDDEN, 3, 2, &[3, 2], Pooling::Mean, false);
        assert_eq!(pooled, vec![3.0, 4.0, 3.0, 0.0]);
    }

    #[test]
    fn cls_and_max() {
        assert_eq!(
            pool(&HIDDEN, 3, 2, &[3, 2], Pooling::Cls, false),
            vec![1.0, 2.0, 2.0, 0.0]
        );
        assert_eq!(
            pool(&HIDDEN, 3, 2, &[3, 2], Pooling::Max, false),
            vec![5.0, 6.0, 4.0, 0.0]
        );
    }

    #[test]
    fn normalize_gives_unit_length() {
        let pooled = pool(&HIDDEN, 3, 2, &[3, 2], Pooling::Mean, true);
        assert!((pooled[0] - 0.6).abs() < 1e-6);
        assert!((pooled[1] - 0.8).abs() < 1e-6);
        assert_eq!(&pooled[2..], &[1.0, 0.0]);
    }
}
