//! CPU kernels for mobile convolutional networks, on NHWC (channels-last) f32 tensors.
//!
//! With channels last, a 1×1 convolution is one matrix product over all pixels of the
//! batch (candle's gemm does it), and the per-channel work of a depthwise convolution runs
//! over contiguous memory, so the compiler vectorises its inner loop. The kernels fuse the
//! folded batch-norm bias and the ReLU6 activation into the pass that produces each output,
//! which saves a full pass over the activations per step.
//!
//! Padding follows TensorFlow's `SAME` rule, which the EfficientNet-Lite weights were
//! trained with: the output has `ceil(input / stride)` pixels and, when the total padding
//! is odd, the extra pixel goes after the input, not before.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape};
use rayon::prelude::*;

use super::rows::contiguous;

/// Output size and leading padding of a `SAME` convolution along one axis.
pub(crate) fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let output = input.div_ceil(stride);
    let total = ((output - 1) * stride + kernel).saturating_sub(input);
    (output, total / 2)
}

/// The input pixels a `SAME` convolution window covers, for each output pixel.
struct Window {
    height: usize,
    width: usize,
    kernel: usize,
    stride: usize,
    pad_y: usize,
    pad_x: usize,
    out_height: usize,
    out_width: usize,
}

impl Window {
    fn new(height: usize, width: usize, kernel: usize, stride: usize) -> Self {
        let (out_height, pad_y) = same_padding(height, kernel, stride);
        let (out_width, pad_x) = same_padding(width, kernel, stride);
        Self {
            height,
            width,
            kernel,
            stride,
            pad_y,
            pad_x,
            out_height,
            out_width,
        }
    }

    /// Calls `visit(tap, iy, ix)` for each kernel tap (`ky * kernel + kx`) of output pixel
    /// `(oy, ox)` that falls inside the input; taps on the padding contribute zero.
    #[inline(always)]
    fn for_each_tap(&self, oy: usize, ox: usize, mut visit: impl FnMut(usize, usize, usize)) {
        for ky in 0..self.kernel {
            let Some(iy) = (oy * self.stride + ky).checked_sub(self.pad_y) else {
                continue;
            };
            if iy >= self.height {
                continue;
            }
            for kx in 0..self.kernel {
                let Some(ix) = (ox * self.stride + kx).checked_sub(self.pad_x) else {
                    continue;
                };
                if ix < self.width {
                    visit(ky * self.kernel + kx, iy, ix);
                }
            }
        }
    }
}

fn relu6(x: f32) -> f32 {
    x.clamp(0.0, 6.0)
}

/// A dense convolution on NCHW input with few channels (the network's stem), writing NHWC
/// output with the bias added and ReLU6 applied.
pub(crate) struct StemConv {
    /// Weights laid out `[ky][kx][in][out]`, so the innermost loop runs over outputs.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub kernel: usize,
    pub stride: usize,
    pub in_channels: usize,
}

impl CustomOp1 for StemConv {
    fn name(&self) -> &'static str {
        "kai-stem-conv"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let input = contiguous(self.name(), storage, layout)?;
        let &[batch, channels, height, width] = layout.dims() else {
            candle_core::bail!(
                "{}: expected NCHW input, got {:?}",
                self.name(),
                layout.dims()
            );
        };
        if channels != self.in_channels {
            candle_core::bail!(
                "{}: expected {} channels, got {channels}",
                self.name(),
                self.in_channels
            );
        }
        let out_c = self.bias.len();
        let window = Window::new(height, width, self.kernel, self.stride);
        let (oh, ow) = (window.out_height, window.out_width);
        let plane = height * width;
        let mut output = vec![0f32; batch * oh * ow * out_c];
        output
            .par_chunks_mut(ow * out_c)
            .enumerate()
            .for_each(|(row_index, out_row)| {
                let (b, oy) = (row_index / oh, row_index % oh);
                let image = &input[b * channels * plane..(b + 1) * channels * plane];
                for (ox, out) in out_row.chunks_exact_mut(out_c).enumerate() {
                    out.copy_from_slice(&self.bias);
                    window.for_each_tap(oy, ox, |tap, iy, ix| {
                        for c in 0..channels {
                            let x = image[c * plane + iy * width + ix];
                            let at = (tap * channels + c) * out_c;
                            for (o, &w) in out.iter_mut().zip(&self.weight[at..at + out_c]) {
                                *o += w * x;
                            }
                        }
                    });
                    out.iter_mut().for_each(|o| *o = relu6(*o));
                }
            });
        Ok((CpuStorage::F32(output), Shape::from((batch, oh, ow, out_c))))
    }
}

/// A depthwise convolution on NHWC input with the bias added and ReLU6 applied.
pub(crate) struct Depthwise {
    /// Weights laid out `[ky][kx][channel]`.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub kernel: usize,
    pub stride: usize,
}

impl CustomOp1 for Depthwise {
    fn name(&self) -> &'static str {
        "kai-depthwise-conv"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let input = contiguous(self.name(), storage, layout)?;
        let &[batch, height, width, channels] = layout.dims() else {
            candle_core::bail!(
                "{}: expected NHWC input, got {:?}",
                self.name(),
                layout.dims()
            );
        };
        if channels != self.bias.len() {
            candle_core::bail!(
                "{}: expected {} channels, got {channels}",
                self.name(),
                self.bias.len()
            );
        }
        let window = Window::new(height, width, self.kernel, self.stride);
        let (oh, ow) = (window.out_height, window.out_width);
        let mut output = vec![0f32; batch * oh * ow * channels];
        output
            .par_chunks_mut(ow * channels)
            .enumerate()
            .for_each(|(row_index, out_row)| {
                let (b, oy) = (row_index / oh, row_index % oh);
                let image =
                    &input[b * height * width * channels..(b + 1) * height * width * channels];
                for (ox, out) in out_row.chunks_exact_mut(channels).enumerate() {
                    out.copy_from_slice(&self.bias);
                    window.for_each_tap(oy, ox, |tap, iy, ix| {
                        let pixel = (iy * width + ix) * channels;
                        let x = &image[pixel..pixel + channels];
                        let w = &self.weight[tap * channels..(tap + 1) * channels];
                        for ((o, &x), &w) in out.iter_mut().zip(x).zip(w) {
                            *o += w * x;
                        }
                    });
                    out.iter_mut().for_each(|o| *o = relu6(*o));
                }
            });
        Ok((
            CpuStorage::F32(output),
            Shape::from((batch, oh, ow, channels)),
        ))
    }
}

/// Rows (pixels) per parallel work item of [`Epilogue`].
const PIXELS_PER_TASK: usize = 64;

/// Adds a per-channel bias to the output of a 1×1 convolution, then applies ReLU6 or, as
/// the second operand of a [`CustomOp2`], adds the block's input (the residual).
pub(crate) struct Epilogue {
    pub bias: Vec<f32>,
    pub relu6: bool,
}

impl std::fmt::Debug for Epilogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Epilogue")
            .field("channels", &self.bias.len())
            .field("relu6", &self.relu6)
            .finish()
    }
}

impl Epilogue {
    fn run(&self, input: &[f32], residual: Option<&[f32]>) -> candle_core::Result<Vec<f32>> {
        let width = self.bias.len();
        if width == 0 || !input.len().is_multiple_of(width) {
            candle_core::bail!("kai-conv-epilogue: rows are not {width} wide");
        }
        let mut output = vec![0f32; input.len()];
        let chunk = width * PIXELS_PER_TASK;
        output
            .par_chunks_mut(chunk)
            .zip(input.par_chunks(chunk))
            .enumerate()
            .for_each(|(task, (out, inp))| {
                for (row, (out_row, in_row)) in out
                    .chunks_exact_mut(width)
                    .zip(inp.chunks_exact(width))
                    .enumerate()
                {
                    for ((o, &x), &b) in out_row.iter_mut().zip(in_row).zip(&self.bias) {
                        *o = if self.relu6 { relu6(x + b) } else { x + b };
                    }
                    if let Some(residual) = residual {
                        let start = task * chunk + row * width;
                        for (o, &r) in out_row.iter_mut().zip(&residual[start..start + width]) {
                            *o += r;
                        }
                    }
                }
            });
        Ok(output)
    }
}

impl CustomOp1 for Epilogue {
    fn name(&self) -> &'static str {
        "kai-conv-epilogue"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let input = contiguous(CustomOp1::name(self), storage, layout)?;
        Ok((
            CpuStorage::F32(self.run(input, None)?),
            layout.shape().clone(),
        ))
    }
}

impl CustomOp2 for Epilogue {
    fn name(&self) -> &'static str {
        "kai-conv-epilogue-residual"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let input = contiguous(CustomOp2::name(self), s1, l1)?;
        let residual = contiguous(CustomOp2::name(self), s2, l2)?;
        if input.len() != residual.len() {
            candle_core::bail!("kai-conv-epilogue-residual: residual has another shape");
        }
        Ok((
            CpuStorage::F32(self.run(input, Some(residual))?),
            l1.shape().clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        // 224 → 112 with a 3×3 kernel, stride 2: one padding pixel, after the input.
        assert_eq!(same_padding(224, 3, 2), (112, 0));
        // 56 → 28 with 5×5, stride 2: three pixels, one before and two after.
        assert_eq!(same_padding(56, 5, 2), (28, 1));
        // Stride 1 keeps the size and pads evenly.
        assert_eq!(same_padding(14, 5, 1), (14, 2));
        assert_eq!(same_padding(7, 3, 1), (7, 1));
    }
}
