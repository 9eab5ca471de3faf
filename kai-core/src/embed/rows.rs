//! Row-wise CPU kernels that fuse the elementwise steps after each matrix product of a
//! transformer layer: bias addition, GELU, residual addition and layer normalisation.
//!
//! As separate candle operations each step is a full pass over the activations, and
//! candle runs broadcast additions on its own spinning thread pool beside rayon's. On a
//! 2-core machine the two pools compete for the cores, which cost about a sixth of the
//! throughput at batch size 1. These kernels make one pass per step group on rayon's pool.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::gelu::gelu;

/// Rows per parallel work item.
const ROWS_PER_TASK: usize = 16;

/// Returns the contiguous f32 data of a CPU tensor argument, or an error naming `op`.
pub(crate) fn contiguous<'a>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op} expects an f32 tensor");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op} expects a contiguous tensor");
    };
    Ok(&data[start..end])
}

/// Returns whether the kernels in this module apply to `x`.
pub(crate) fn supports(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && x.is_contiguous()
}

/// Adds a bias to every row, then applies GELU when `gelu` is set.
pub(crate) struct BiasActivation {
    pub bias: Vec<f32>,
    pub gelu: bool,
}

impl CustomOp1 for BiasActivation {
    fn name(&self) -> &'static str {
        "kai-bias-activation"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let input = contiguous(self.name(), storage, layout)?;
        let width = self.bias.len();
        if width == 0 || !input.len().is_multiple_of(width) {
            candle_core::bail!("{}: rows are not {width} wide", self.name());
        }
        let mut output = vec![0f32; input.len()];
        output
            .par_chunks_mut(width * ROWS_PER_TASK)
            .zip(input.par_chunks(width * ROWS_PER_TASK))
            .for_each(|(out, inp)| {
                for (out_row, in_row) in out.chunks_exact_mut(width).zip(inp.chunks_exact(width)) {
                    for ((o, &x), &b) in out_row.iter_mut().zip(in_row).zip(&self.bias) {
                        *o = if self.gelu { gelu(x + b) } else { x + b };
                    }
                }
            });
        Ok((CpuStorage::F32(output), layout.shape().clone()))
    }
}

/// Computes `layer_norm(x + bias + residual)` row by row.
pub(crate) struct BiasResidualNorm {
    pub bias: Vec<f32>,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub eps: f32,
}

impl CustomOp2 for BiasResidualNorm {
    fn name(&self) -> &'static str {
        "kai-bias-residual-norm"
    }

    fn cpu_fwd(
        &self,
        x_storage: &CpuStorage,
        x_layout: &Layout,
        residual_storage: &CpuStorage,
        residual_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous(self.name(), x_storage, x_layout)?;
        let residual = contiguous(self.name(), residual_storage, residual_layout)?;
        let width = self.bias.len();
        if width == 0 || !x.len().is_multiple_of(width) || x.len() != residual.len() {
            candle_core::bail!("{}: inputs are not rows of {width}", self.name());
        }
        let mut output = vec![0f32; x.len()];
        output
            .par_chunks_mut(width * ROWS_PER_TASK)
            .zip(x.par_chunks(width * ROWS_PER_TASK))
            .zip(residual.par_chunks(width * ROWS_PER_TASK))
            .for_each(|((out, xs), rs)| {
                let rows = out.chunks_exact_mut(width).zip(xs.chunks_exact(width));
                for ((out_row, x_row), r_row) in rows.zip(rs.chunks_exact(width)) {
                    self.normalize_row(out_row, x_row, r_row);
                }
            });
        Ok((CpuStorage::F32(output), x_layout.shape().clone()))
    }
}

impl BiasResidualNorm {
    /// Writes `layer_norm(x + bias + residual)` into `out`.
    fn normalize_row(&self, out: &mut [f32], x: &[f32], residual: &[f32]) {
        let mut sum = 0f32;
        for (((o, &a), &b), &r) in out.iter_mut().zip(x).zip(&self.bias).zip(residual) {
            *o = a + b + r;
            sum += *o;
        }
        let mean = sum / out.len() as f32;
        let mut squares = 0f32;
        for &o in out.iter() {
            squares += (o - mean) * (o - mean);
        }
        let inverse_std = 1.0 / (squares / out.len() as f32 + self.eps).sqrt();
        for ((o, &g), &b) in out.iter_mut().zip(&self.gamma).zip(&self.beta) {
            *o = (*o - mean) * inverse_std * g + b;
        }
    }
}

/// Computes `layer_norm(words + types + positions)` for the embedding layer: row `r` of
/// the `(batch * length, hidden)` inputs takes position `r % length`.
pub(crate) struct EmbeddingNorm<'a> {
    /// `(max_positions, hidden)` position embeddings, row-major.
    pub positions: &'a [f32],
    /// Tokens per sequence, padding included.
    pub length: usize,
    /// The embedding layer norm, with a zero bias.
    pub norm: &'a BiasResidualNorm,
}

impl CustomOp2 for EmbeddingNorm<'_> {
    fn name(&self) -> &'static str {
        "kai-embedding-norm"
    }

    fn cpu_fwd(
        &self,
        words_storage: &CpuStorage,
        words_layout: &Layout,
        types_storage: &CpuStorage,
        types_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let words = contiguous(self.name(), words_storage, words_layout)?;
        let types = contiguous(self.name(), types_storage, types_layout)?;
        let width = self.norm.gamma.len();
        if width == 0 || words.len() != types.len() || self.length * width > self.positions.len() {
            candle_core::bail!("{}: inputs do not match the embedding tables", self.name());
        }
        let mut output = vec![0f32; words.len()];
        output
            .par_chunks_mut(width)
            .zip(words.par_chunks(width))
            .zip(types.par_chunks(width))
            .enumerate()
            .for_each_init(
                || vec![0f32; width],
                |sum, (row, ((out, word), kind))| {
                    for ((s, &w), &t) in sum.iter_mut().zip(word).zip(kind) {
                        *s = w + t;
                    }
                    let position = row % self.length;
                    let position = &self.positions[position * width..(position + 1) * width];
                    self.norm.normalize_row(out, sum, position);
                },
            );
        Ok((CpuStorage::F32(output), words_layout.shape().clone()))
    }
}

/// Softmax over the last dimension of `(batch * heads * length, length)` attention scores.
/// Only the first `valid[b]` keys of sequence `b` take part, and padded keys get weight 0.
pub(crate) struct MaskedSoftmax {
    pub valid: Vec<usize>,
    pub heads: usize,
    pub length: usize,
}

impl CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "kai-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let scores = contiguous(self.name(), storage, layout)?;
        let rows_per_sequence = self.heads * self.length;
        if scores.len() != self.valid.len() * rows_per_sequence * self.length {
            candle_core::bail!("{}: scores do not match the batch", self.name());
        }
        let mut output = vec![0f32; scores.len()];
        let chunk = self.length * ROWS_PER_TASK;
        output
            .par_chunks_mut(chunk)
            .zip(scores.par_chunks(chunk))
            .enumerate()
            .for_each(|(task, (out, score))| {
                let rows = out
                    .chunks_exact_mut(self.length)
                    .zip(score.chunks_exact(self.length));
                for (i, (out_row, score_row)) in rows.enumerate() {
                    let valid = self.valid[(task * ROWS_PER_TASK + i) / rows_per_sequence];
                    softmax_prefix(out_row, score_row, valid);
                }
            });
        Ok((CpuStorage::F32(output), layout.shape().clone()))
    }
}

/// Writes the softmax of `scores[..valid]` into `out[..valid]`, leaving the rest as is.
fn softmax_prefix(out: &mut [f32], scores: &[f32], valid: usize) {
    let max = scores[..valid]
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for (o, &s) in out[..valid].iter_mut().zip(&scores[..valid]) {
        *o = (s - max).exp();
        sum += *o;
    }
    let scale = 1.0 / sum;
    for o in &mut out[..valid] {
        *o *= scale;
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{D, Device};

    use super::*;

    fn sample(rows: usize, width: usize, seed: u32) -> Vec<f32> {
        (0..(rows * width) as u32)
            .map(|i| {
                ((i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 16) % 2000) as f32 / 500.0
                    - 2.0
            })
            .collect()
    }

    #[test]
    fn bias_residual_norm_matches_candle() {
        let (rows, width) = (37, 24);
        let device = Device::Cpu;
        let x = Tensor::from_vec(sample(rows, width, 1), (rows, width), &device).unwrap();
        let residual = Tensor::from_vec(sample(rows, width, 2), (rows, width), &device).unwrap();
        let op = BiasResidualNorm {
            bias: sample(1, width, 3),
            gamma: sample(1, width, 4),
            beta: sample(1, width, 5),
            eps: 1e-12,
        };
        let fused = x.apply_op2_no_bwd(&residual, &op).unwrap();

        let bias = Tensor::new(op.bias.as_slice(), &device).unwrap();
        let gamma = Tensor::new(op.gamma.as_slice(), &device).unwrap();
        let beta = Tensor::new(op.beta.as_slice(), &device).unwrap();
        let sum = (x.broadcast_add(&bias).unwrap() + residual).unwrap();
        let expected = candle_nn::ops::layer_norm(&sum, &gamma, &beta, 1e-12).unwrap();

        let diff = (fused - expected)
            .unwrap()
            .abs()
            .unwrap()
            .max(D::Minus1)
            .unwrap()
            .max(0)
            .unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-4);
    }

    #[test]
    fn bias_activation_matches_candle() {
        let (rows, width) = (19, 40);
        let device = Device::Cpu;
        let x = Tensor::from_vec(sample(rows, width, 6), (rows, width), &device).unwrap();
        let bias_values = sample(1, width, 7);
        let bias = Tensor::new(bias_values.as_slice(), &device).unwrap();
        for apply_gelu in [false, true] {
            let op = BiasActivation {
                bias: bias_values.clone(),
                gelu: apply_gelu,
            };
            let fused = x.apply_op1_no_bwd(&op).unwrap();
            let mut expected = x.broadcast_add(&bias).unwrap();
            if apply_gelu {
                expected = expected.gelu_erf().unwrap();
            }
            let diff = (fused - expected)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap();
            assert!(diff.to_scalar::<f32>().unwrap() < 2e-6, "gelu {apply_gelu}");
        }
    }

    #[test]
    fn masked_softmax_ignores_padded_keys() {
        let (heads, length) = (2, 3);
        let valid = vec![3, 1];
        let count = valid.len() * heads * length * length;
        let scores: Vec<f32> = (0..count).map(|i| i as f32 * 0.1).collect();
        let shape = (valid.len() * heads * length, length);
        let x = Tensor::from_vec(scores, shape, &Device::Cpu).unwrap();
        let op = MaskedSoftmax {
            valid: valid.clone(),
            heads,
            length,
        };
        let out = x.apply_op1_no_bwd(&op).unwrap().to_vec2::<f32>().unwrap();
        for (row, values) in out.iter().enumerate() {
            let n = valid[row / (heads * length)];
            let sum: f32 = values.iter().sum();
            assert!((sum - 1.0).abs() < 1e-6, "row {row} sums to {sum}");
            assert!(
                values[n..].iter().all(|&v| v == 0.0),
                "row {row}: {values:?}"
            );
        }

        // A row without padding equals the ordinary softmax.
        let first = x.narrow(0, 0, 1).unwrap();
        let expected = candle_nn::ops::softmax_last_dim(&first).unwrap();
        for (a, b) in out[0].iter().zip(&expected.to_vec2::<f32>().unwrap()[0]) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn rejects_mismatched_width() {
        let x = Tensor::zeros((3, 5), DType::F32, &Device::Cpu).unwrap();
        let op = BiasActivation {
            bias: vec![0.0; 4],
            gelu: false,
        };
        assert!(x.apply_op1_no_bwd(&op).is_err());
    }
}
