//! Multi-head self-attention over right-padded sequences, fused into one CPU kernel.
//!
//! Written as candle operations, attention costs two batched matrix products per layer,
//! each issued as one small multi-threaded product per sequence and head, plus copies to
//! split heads, a mask addition and a softmax over a `(batch, heads, length, length)`
//! tensor. For the short sequences typical of material names that overhead outweighs the
//! arithmetic. This kernel reads queries, keys and values straight from the fused
//! projection output, runs one task per (sequence, head) on rayon's pool, and skips padded
//! keys, whose softmax weight would be exactly zero anyway.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::rows::contiguous;

/// Attention for a batch of right-padded sequences.
pub(crate) struct FusedAttention {
    /// Tokens per sequence including padding.
    pub length: usize,
    /// Number of real tokens in each sequence; the rest is padding.
    pub valid: Vec<usize>,
    pub heads: usize,
    pub head_dim: usize,
}

impl FusedAttention {
    /// Computes attention from `qkv`, the `(batch * length, 3 * hidden)` output of the
    /// fused projection whose query part is already scaled by `1/sqrt(head_dim)`; returns
    /// the `(batch * length, hidden)` context. Only for contiguous f32 on the CPU.
    pub fn forward(&self, qkv: &Tensor) -> candle_core::Result<Tensor> {
        qkv.apply_op1_no_bwd(self)
    }

    /// Returns whether this kernel handles `qkv`.
    pub fn supports(qkv: &Tensor) -> bool {
        qkv.device().is_cpu() && qkv.dtype() == DType::F32 && qkv.is_contiguous()
    }

    /// Computes the context of one (sequence, head) pair: `length × head_dim` values,
    /// with the widest vector instructions the CPU has.
    fn head(&self, qkv: &[f32], sequence: usize, head: usize) -> Vec<f32> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU supports AVX-512F, checked just above.
                #[allow(unsafe_code)]
                return unsafe { self.head_avx512(qkv, sequence, head) };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports AVX2 and FMA, checked just above.
                #[allow(unsafe_code)]
                return unsafe { self.head_avx2(qkv, sequence, head) };
            }
        }
        self.head_portable(qkv, sequence, head)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn head_avx512(&self, qkv: &[f32], sequence: usize, head: usize) -> Vec<f32> {
        self.head_portable(qkv, sequence, head)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn head_avx2(&self, qkv: &[f32], sequence: usize, head: usize) -> Vec<f32> {
        self.head_portable(qkv, sequence, head)
    }

    /// Computes one head's context. The body is inlined into each instruction-set variant
    /// above, so the compiler vectorises it for that variant.
    #[inline(always)]
    fn head_portable(&self, qkv: &[f32], sequence: usize, head: usize) -> Vec<f32> {
        let dim = self.head_dim;
        let hidden = self.heads * dim;
        let row_stride = 3 * hidden;
        let base = sequence * self.length * row_stride + head * dim;
        let valid = self.valid[sequence];

        // Copy this head's keys and values into contiguous blocks: the rows are 3 * hidden
        // apart in qkv, and every query reads all of them.
        let mut keys = Vec::with_capacity(valid * dim);
        let mut values = Vec::with_capacity(valid * dim);
        for token in 0..valid {
            let start = base + token * row_stride;
            keys.extend_from_slice(&qkv[start + hidden..start + hidden + dim]);
            values.extend_from_slice(&qkv[start + 2 * hidden..start + 2 * hidden + dim]);
        }

        let mut context = vec![0f32; self.length * dim];
        let mut weights = vec![0f32; valid];
        for (query, out) in context.chunks_exact_mut(dim).enumerate() {
            let start = base + query * row_stride;
            let q = &qkv[start..start + dim];
            let mut max = f32::NEG_INFINITY;
            for (weight, key) in weights.iter_mut().zip(keys.chunks_exact(dim)) {
                *weight = dot(q, key);
                max = max.max(*weight);
            }
            let mut sum = 0f32;
            for weight in weights.iter_mut() {
                *weight = (*weight - max).exp();
                sum += *weight;
            }
            let scale = 1.0 / sum;
            for (&weight, value) in weights.iter().zip(values.chunks_exact(dim)) {
                let w = weight * scale;
                for (o, &v) in out.iter_mut().zip(value) {
                    *o += w * v;
                }
            }
        }
        context
    }
}

impl CustomOp1 for FusedAttention {
    fn name(&self) -> &'static str {
        "kai-fused-attention"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let qkv = contiguous(self.name(), storage, layout)?;
        let batch = self.valid.len();
        let hidden = self.heads * self.head_dim;
        if qkv.len() != batch * self.length * 3 * hidden {
            candle_core::bail!(
                "kai-fused-attention: {} values for {batch} sequences of {} tokens",
                qkv.len(),
                self.length
            );
        }

        let contexts: Vec<Vec<f32>> = (0..batch * self.heads)
            .into_par_iter()
            .map(|task| self.head(qkv, task / self.heads, task % self.heads))
            .collect();

        // Interleave the heads back into (batch * length, hidden) rows.
        let mut output = vec![0f32; batch * self.length * hidden];
        for (task, context) in contexts.iter().enumerate() {
            let (sequence, head) = (task / self.heads, task % self.heads);
            for (token, values) in context.chunks_exact(self.head_dim).enumerate() {
                let start = (sequence * self.length + token) * hidden + head * self.head_dim;
                output[start..start + self.head_dim].copy_from_slice(values);
            }
        }
        Ok((
            CpuStorage::F32(output),
            Shape::from((batch * self.length, hidden)),
        ))
    }
}

/// Dot product with eight independent sums, so the compiler can keep them in vector
/// registers instead of adding one element at a time.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let mut a_chunks = a.chunks_exact(8);
    let mut b_chunks = b.chunks_exact(8);
    for (x, y) in (&mut a_chunks).zip(&mut b_chunks) {
        for lane in 0..8 {
            sums[lane] += x[lane] * y[lane];
        }
    }
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    sums.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use candle_core::{D, Device, Tensor};

    use super::*;

    /// Attention written with plain candle operations, as the reference.
    fn reference(
        qkv: &Tensor,
        valid: &[usize],
        length: usize,
        heads: usize,
        head_dim: usize,
    ) -> Tensor {
        let batch = valid.len();
        let hidden = heads * head_dim;
        let qkv = qkv
            .reshape((batch, length, 3, heads, head_dim))
            .unwrap()
            .permute((2, 0, 3, 1, 4))
            .unwrap()
            .contiguous()
            .unwrap();
        let (q, k, v) = (
            qkv.get(0).unwrap(),
            qkv.get(1).unwrap(),
            qkv.get(2).unwrap(),
        );
        let mask: Vec<f32> = valid
            .iter()
            .flat_map(|&n| (0..length).map(move |i| if i < n { 0.0 } else { -1e30 }))
            .collect();
        let mask = Tensor::from_vec(mask, (batch, 1, 1, length), &Device::Cpu).unwrap();
        let scores = q
            .matmul(&k.t().unwrap())
            .unwrap()
            .broadcast_add(&mask)
            .unwrap();
        let probabilities = candle_nn::ops::softmax(&scores, D::Minus1).unwrap();
        probabilities
            .matmul(&v)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((batch * length, hidden))
            .unwrap()
    }

    #[test]
    fn matches_unfused_attention() {
        let (length, heads, head_dim) = (7, 3, 12);
        let valid = vec![7, 4, 1];
        let values = (valid.len() * length * 3 * heads * head_dim) as u32;
        let data: Vec<f32> = (0..values)
            .map(|i| ((i.wrapping_mul(2_654_435_761) >> 16) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let qkv = Tensor::from_vec(
            data,
            (valid.len() * length, 3 * heads * head_dim),
            &Device::Cpu,
        )
        .unwrap();
        let op = FusedAttention {
            length,
            valid: valid.clone(),
            heads,
            head_dim,
        };
        let fused = op
            .forward(&qkv)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let expected = reference(&qkv, &valid, length, heads, head_dim)
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(fused.len(), expected.len());
        for (a, b) in fused.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn rejects_wrong_size() {
        let qkv = Tensor::zeros((5, 9), DType::F32, &Device::Cpu).unwrap();
        let op = FusedAttention {
            length: 2,
            valid: vec![2, 2],
            heads: 1,
            head_dim: 3,
        };
        assert!(op.forward(&qkv).is_err());
    }
}
