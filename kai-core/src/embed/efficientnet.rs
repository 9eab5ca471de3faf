//! EfficientNet-Lite, the mobile EfficientNet: inverted-residual (MBConv) blocks with ReLU6
//! and no squeeze-and-excitation, for inference.
//!
//! Batch norms are folded into the convolution before them at load time, so each
//! convolution is one product plus a bias. Activations are kept channels-last (NHWC) from
//! the stem on. On the CPU the kernels in [`super::conv`] run the layers. On other devices
//! the same steps run as candle operations, with the depthwise and stem convolutions going
//! through candle's NCHW `conv2d`.

use std::collections::HashMap;

use candle_core::{D, DType, Device, Tensor};

use super::conv::{Depthwise, Epilogue, StemConv, same_padding};
use crate::error::{Error, Result};

/// Batch-norm epsilon of the TensorFlow reference.
const BN_EPS: f64 = 1e-3;

/// One stage of MBConv blocks: `(repeats, kernel, stride, expand ratio, in, out)`.
type StageArgs = (usize, usize, usize, usize, usize, usize);

/// The stages of EfficientNet-Lite0 (width and depth multipliers 1.0).
const LITE0_STAGES: [StageArgs; 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// The implementation that runs the layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// kai's fused CPU kernels.
    CpuKernels,
    /// candle operations, for any device.
    Candle,
}

/// The network's outputs for a batch.
#[derive(Debug)]
pub(crate) struct Output {
    /// Pooled features before the classifier, `[batch, 1280]`.
    pub features: Tensor,
    /// Classifier logits, `[batch, classes]`.
    pub logits: Tensor,
}

/// EfficientNet-Lite0 with folded batch norms.
#[derive(Debug)]
pub(crate) struct EfficientNetLite {
    stem: Spatial,
    blocks: Vec<Block>,
    head: Pointwise,
    fc_weight_t: Tensor,
    fc_bias: Tensor,
    backend: Backend,
}

#[derive(Debug)]
struct Block {
    expand: Option<Pointwise>,
    depthwise: Spatial,
    project: Pointwise,
    residual: bool,
}

impl EfficientNetLite {
    /// Builds Lite0 from a state dict of the PyTorch port (`_conv_stem.weight`, `_bn0.*`,
    /// `_blocks.N.…`, `_conv_head.weight`, `_bn1.*`, `_fc.*`).
    pub fn lite0(
        weights: &HashMap<String, Tensor>,
        device: &Device,
        backend: Backend,
    ) -> Result<Self> {
        let w = Weights {
            map: weights,
            device,
        };
        let stem = Spatial::new(&w, "_conv_stem", "_bn0", 3, 2, false, backend)?;
        let mut blocks = Vec::new();
        for (repeats, kernel, stride, expand, inp, out) in LITE0_STAGES {
            for r in 0..repeats {
                let (stride, inp) = if r == 0 { (stride, inp) } else { (1, out) };
                let p = format!("_blocks.{}", blocks.len());
                let expand = (expand != 1)
                    .then(|| {
                        Pointwise::new(&w, &format!("{p}._expand_conv"), &format!("{p}._bn0"), true)
                    })
                    .transpose()?;
                let depthwise = Spatial::new(
                    &w,
                    &format!("{p}._depthwise_conv"),
                    &format!("{p}._bn1"),
                    kernel,
                    stride,
                    true,
                    backend,
                )?;
                let project = Pointwise::new(
                    &w,
                    &format!("{p}._project_conv"),
                    &format!("{p}._bn2"),
                    false,
                )?;
                if project.out_channels() != out {
                    return Err(w.bad(
                        &format!("{p}._project_conv.weight"),
                        format!("has {} outputs, expected {out}", project.out_channels()),
                    ));
                }
                blocks.push(Block {
                    expand,
                    depthwise,
                    project,
                    residual: stride == 1 && inp == out,
                });
            }
        }
        let head = Pointwise::new(&w, "_conv_head", "_bn1", true)?;
        let fc_weight = w.get("_fc.weight")?;
        Ok(Self {
            stem,
            blocks,
            head,
            fc_weight_t: fc_weight.t()?.contiguous()?,
            fc_bias: w.get("_fc.bias")?,
            backend,
        })
    }

    /// Number of classifier outputs.
    pub fn classes(&self) -> usize {
        self.fc_bias.dims1().unwrap_or(0)
    }

    /// Number of pooled features.
    pub fn features(&self) -> usize {
        self.head.out_channels()
    }

    /// Runs a batch of normalised NCHW images.
    pub fn forward(&self, images: &Tensor) -> Result<Output> {
        let cpu = self.backend == Backend::CpuKernels;
        let mut x = self.stem.forward_nchw(images, cpu)?;
        for block in &self.blocks {
            let input = &x;
            let mut y = match &block.expand {
                Some(expand) => expand.forward(input, None, cpu)?,
                None => input.clone(),
            };
            y = block.depthwise.forward_nhwc(&y, cpu)?;
            x = block
                .project
                .forward(&y, block.residual.then_some(input), cpu)?;
        }
        let x = self.head.forward(&x, None, cpu)?;
        let (batch, h, w, c) = x.dims4()?;
        let features = x.reshape((batch, h * w, c))?.mean(1)?;
        let logits = features
            .matmul(&self.fc_weight_t)?
            .broadcast_add(&self.fc_bias)?;
        Ok(Output { features, logits })
    }
}

/// Access to the state dict with errors that name the missing or misshapen tensor.
struct Weights<'a> {
    map: &'a HashMap<String, Tensor>,
    device: &'a Device,
}

impl Weights<'_> {
    fn get(&self, name: &str) -> Result<Tensor> {
        let tensor = self
            .map
            .get(name)
            .ok_or_else(|| self.bad(name, "is missing from the weights file".into()))?;
        Ok(tensor.to_dtype(DType::F32)?.to_device(self.device)?)
    }

    fn bad(&self, name: &str, reason: String) -> Error {
        Error::model("efficientnet-lite0", format!("tensor {name} {reason}"))
    }

    /// Returns the convolution weight scaled by the batch norm and the folded bias.
    fn folded(&self, conv: &str, bn: &str) -> Result<(Tensor, Tensor)> {
        let weight = self.get(&format!("{conv}.weight"))?;
        let gamma = self.get(&format!("{bn}.weight"))?;
        let beta = self.get(&format!("{bn}.bias"))?;
        let mean = self.get(&format!("{bn}.running_mean"))?;
        let var = self.get(&format!("{bn}.running_var"))?;
        let out = weight.dims().first().copied().unwrap_or(0);
        if weight.rank() != 4
            || [&gamma, &beta, &mean, &var]
                .iter()
                .any(|t| t.dims() != [out])
        {
            return Err(self.bad(
                &format!("{conv}.weight"),
                format!("has shape {:?}, which does not match {bn}", weight.dims()),
            ));
        }
        let scale = (gamma / (var + BN_EPS)?.sqrt()?)?;
        let bias = (beta - (mean * &scale)?)?;
        let weight = weight.broadcast_mul(&scale.reshape((out, 1, 1, 1))?)?;
        Ok((weight, bias))
    }
}

/// A 1×1 convolution on NHWC activations: one matrix product over all pixels.
#[derive(Debug)]
struct Pointwise {
    /// `[in, out]`, transposed once so the product needs no copy.
    weight_t: Tensor,
    bias: Tensor,
    relu6: bool,
    epilogue: Epilogue,
}

impl Pointwise {
    fn new(w: &Weights, conv: &str, bn: &str, relu6: bool) -> Result<Self> {
        let (weight, bias) = w.folded(conv, bn)?;
        let (out, inp, kh, kw) = weight.dims4()?;
        if (kh, kw) != (1, 1) {
            return Err(w.bad(
                &format!("{conv}.weight"),
                format!("is {kh}×{kw}, expected 1×1"),
            ));
        }
        Ok(Self {
            weight_t: weight.reshape((out, inp))?.t()?.contiguous()?,
            epilogue: Epilogue {
                bias: bias.to_vec1()?,
                relu6,
            },
            bias,
            relu6,
        })
    }

    fn out_channels(&self) -> usize {
        self.bias.dims1().unwrap_or(0)
    }

    fn forward(&self, x: &Tensor, residual: Option<&Tensor>, cpu: bool) -> Result<Tensor> {
        let (batch, h, w, c) = x.dims4()?;
        let y = x.reshape((batch * h * w, c))?.matmul(&self.weight_t)?;
        let y = if cpu {
            match residual {
                Some(r) => y.apply_op2_no_bwd(&r.reshape(y.shape())?, &self.epilogue)?,
                None => y.apply_op1_no_bwd(&self.epilogue)?,
            }
        } else {
            let mut y = y.broadcast_add(&self.bias)?;
            if self.relu6 {
                y = y.clamp(0f32, 6f32)?;
            }
            match residual {
                Some(r) => (y + r.reshape((batch * h * w, self.out_channels()))?)?,
                None => y,
            }
        };
        Ok(y.reshape((batch, h, w, self.out_channels()))?)
    }
}

/// A k×k convolution with ReLU6: the dense stem or a depthwise convolution.
#[derive(Debug)]
struct Spatial {
    /// Folded weight in candle's `[out, in / groups, kh, kw]` layout.
    weight: Tensor,
    bias: Tensor,
    kernel: usize,
    stride: usize,
    groups: usize,
    cpu: Option<SpatialKernel>,
}

enum SpatialKernel {
    Stem(StemConv),
    Depthwise(Depthwise),
}

impl std::fmt::Debug for SpatialKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Stem(_) => "StemConv",
            Self::Depthwise(_) => "Depthwise",
        })
    }
}

impl Spatial {
    fn new(
        w: &Weights,
        conv: &str,
        bn: &str,
        kernel: usize,
        stride: usize,
        depthwise: bool,
        backend: Backend,
    ) -> Result<Self> {
        let (weight, bias) = w.folded(conv, bn)?;
        let (out, inp, kh, kw) = weight.dims4()?;
        if (kh, kw) != (kernel, kernel) || (depthwise && inp != 1) {
            return Err(w.bad(
                &format!("{conv}.weight"),
                format!(
                    "has shape {:?}, expected a {kernel}×{kernel} kernel",
                    weight.dims()
                ),
            ));
        }
        let cpu = match backend {
            Backend::Candle => None,
            // [out, 1, ky, kx] → [ky][kx][channel]
            Backend::CpuKernels if depthwise => Some(SpatialKernel::Depthwise(Depthwise {
                weight: weight
                    .reshape((out, kernel * kernel))?
                    .t()?
                    .flatten_all()?
                    .to_vec1()?,
                bias: bias.to_vec1()?,
                kernel,
                stride,
            })),
            // [out, in, ky, kx] → [ky][kx][in][out]
            Backend::CpuKernels => Some(SpatialKernel::Stem(StemConv {
                weight: weight.permute((2, 3, 1, 0))?.flatten_all()?.to_vec1()?,
                bias: bias.to_vec1()?,
                kernel,
                stride,
                in_channels: inp,
            })),
        };
        Ok(Self {
            weight,
            bias,
            kernel,
            stride,
            groups: if depthwise { out } else { 1 },
            cpu,
        })
    }

    /// Runs the stem, taking NCHW images and returning NHWC activations.
    fn forward_nchw(&self, x: &Tensor, cpu: bool) -> Result<Tensor> {
        match (&self.cpu, cpu) {
            (Some(SpatialKernel::Stem(op)), true) => Ok(x.contiguous()?.apply_op1_no_bwd(op)?),
            _ => Ok(self.candle_conv(x)?.permute((0, 2, 3, 1))?.contiguous()?),
        }
    }

    /// Runs a depthwise convolution on NHWC activations.
    fn forward_nhwc(&self, x: &Tensor, cpu: bool) -> Result<Tensor> {
        match (&self.cpu, cpu) {
            (Some(SpatialKernel::Depthwise(op)), true) => {
                Ok(x.contiguous()?.apply_op1_no_bwd(op)?)
            }
            _ => {
                let nchw = x.permute((0, 3, 1, 2))?.contiguous()?;
                Ok(self
                    .candle_conv(&nchw)?
                    .permute((0, 2, 3, 1))?
                    .contiguous()?)
            }
        }
    }

    /// TensorFlow `SAME` padding, convolution, bias and ReLU6 with candle operations.
    fn candle_conv(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let (oh, top) = same_padding(h, self.kernel, self.stride);
        let (ow, left) = same_padding(w, self.kernel, self.stride);
        let bottom = ((oh - 1) * self.stride + self.kernel).saturating_sub(h) - top;
        let right = ((ow - 1) * self.stride + self.kernel).saturating_sub(w) - left;
        let x = x
            .pad_with_zeros(D::Minus2, top, bottom)?
            .pad_with_zeros(D::Minus1, left, right)?;
        let y = x.conv2d(&self.weight, 0, self.stride, 1, self.groups)?;
        let y = y.broadcast_add(&self.bias.reshape((1, (), 1, 1))?)?;
        Ok(y.clamp(0f32, 6f32)?)
    }
}
