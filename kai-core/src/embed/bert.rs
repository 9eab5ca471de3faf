//! A BERT encoder for inference, built for CPU throughput.
//!
//! BERT (Devlin et al., 2019, <https://arxiv.org/abs/1810.04805>) maps word pieces to
//! contextual vectors with a stack of self-attention layers. This version computes the same
//! function as the Hugging Face `BertModel` in eval mode, loads the same safetensors names,
//! and differs only in how the work is arranged:
//!
//! - query, key and value projections run as one matrix product over concatenated
//!   weights, with the `1/sqrt(head_dim)` attention scale folded into the query weights;
//! - every projection multiplies a 2-D `(tokens, hidden)` matrix, so each layer issues a
//!   few large matrix products instead of one per sequence;
//! - softmax uses candle's fused last-dimension kernel;
//! - GELU on the CPU uses a rational approximation of erf with an absolute error below
//!   1e-6 (see [`super::gelu`]), which vectorises, instead of a scalar libm call.

use candle_core::{DType, Module, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};
use candle_transformers::models::bert::{Config, HiddenAct};

use super::attention::FusedAttention;
use super::rows::{self, BiasActivation, BiasResidualNorm, EmbeddingNorm, MaskedSoftmax};

/// Large negative score added to padded key positions, like the dtype minimum that the
/// Hugging Face model adds. Its `exp` is exactly 0 in f32.
const MASKED_SCORE: f32 = -1e30;

/// Longest padded batch that uses the fused attention kernel. Its loops are vectorised by
/// the compiler but not blocked for the cache, so for long sequences, where arithmetic
/// outweighs per-call overhead, candle's matrix products win. NOTE: 128 comes from runs of
/// benches/text_embed.py on one 2-core AVX-512 machine (64 and 512 were slower), not from
/// tuning per CPU.
const FUSED_ATTENTION_MAX_LENGTH: usize = 128;

/// The encoder's weights and shape.
pub(crate) struct Bert {
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    token_type_embeddings: Tensor,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
    num_heads: usize,
    head_dim: usize,
    hidden_act: HiddenAct,
    /// Embedding tables for the fused CPU kernel, for f32 models on the CPU.
    cpu: Option<CpuEmbeddings>,
}

/// The position table and embedding norm as plain vectors, for [`EmbeddingNorm`].
struct CpuEmbeddings {
    positions: Vec<f32>,
    norm: BiasResidualNorm,
}

/// One encoder layer, with its weights in the form its device runs fastest.
enum Layer {
    /// Candle modules, for GPUs and activations other than GELU.
    Candle(CandleLayer),
    /// Transposed weights and fused row kernels, for f32 models on the CPU.
    Cpu(RowKernels),
}

struct CandleLayer {
    qkv: Linear,
    attention_output: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

impl Bert {
    /// Loads the weights of a Hugging Face `BertModel` (names with or without a `bert.`
    /// prefix).
    pub fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self> {
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let hidden = config.hidden_size;
        if config.num_attention_heads == 0 || !hidden.is_multiple_of(config.num_attention_heads) {
            candle_core::bail!(
                "hidden_size {hidden} is not a multiple of num_attention_heads {}",
                config.num_attention_heads
            );
        }
        let head_dim = hidden / config.num_attention_heads;

        let embeddings = vb.pp("embeddings");
        let word_embeddings =
            embeddings.get((config.vocab_size, hidden), "word_embeddings.weight")?;
        let position_embeddings = embeddings.get(
            (config.max_position_embeddings, hidden),
            "position_embeddings.weight",
        )?;
        let token_type_embeddings = embeddings.get(
            (config.type_vocab_size, hidden),
            "token_type_embeddings.weight",
        )?;
        let embeddings_norm =
            candle_nn::layer_norm(hidden, config.layer_norm_eps, embeddings.pp("LayerNorm"))?;

        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), config, head_dim))
            .collect::<candle_core::Result<_>>()?;
        let on_cpu = vb.device().is_cpu() && vb.dtype() == DType::F32;
        let cpu = if on_cpu {
            let Some(beta) = embeddings_norm.bias() else {
                candle_core::bail!("the BERT embedding norm has a bias");
            };
            Some(CpuEmbeddings {
                positions: position_embeddings.flatten_all()?.to_vec1::<f32>()?,
                norm: BiasResidualNorm {
                    bias: vec![0.0; hidden],
                    gamma: embeddings_norm.weight().to_vec1::<f32>()?,
                    beta: beta.to_vec1::<f32>()?,
                    eps: config.layer_norm_eps as f32,
                },
            })
        } else {
            None
        };
        Ok(Self {
            cpu,
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            embeddings_norm,
            layers,
            num_heads: config.num_attention_heads,
            head_dim,
            hidden_act: config.hidden_act,
        })
    }

    /// Encodes a right-padded batch: `ids` and `type_ids` are `(batch, length)` u32
    /// tensors and `lengths` gives the number of real tokens per sequence; returns
    /// `(batch, length, hidden)`.
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        lengths: &[usize],
    ) -> candle_core::Result<Tensor> {
        let (batch, length) = ids.dims2()?;
        let hidden = self.num_heads * self.head_dim;
        if length > self.position_embeddings.dim(0)? {
            candle_core::bail!(
                "sequence of {length} tokens exceeds the {} positions the model has",
                self.position_embeddings.dim(0)?
            );
        }
        if lengths.len() != batch || lengths.iter().any(|&n| n == 0 || n > length) {
            candle_core::bail!("lengths {lengths:?} do not fit a batch of {batch} × {length}");
        }

        let words = self.word_embeddings.embedding(&ids.flatten_all()?)?;
        let types = self
            .token_type_embeddings
            .embedding(&type_ids.flatten_all()?)?;
        let mut x = match &self.cpu {
            Some(cpu) if rows::supports(&words) => words.apply_op2_no_bwd(
                &types,
                &EmbeddingNorm {
                    positions: &cpu.positions,
                    length,
                    norm: &cpu.norm,
                },
            )?,
            _ => {
                let positions = self.position_embeddings.narrow(0, 0, length)?;
                let embedded = (words + types)?
                    .reshape((batch, length, hidden))?
                    .broadcast_add(&positions)?;
                self.embeddings_norm
                    .forward(&embedded)?
                    .reshape((batch * length, hidden))?
            }
        };

        let masking = Masking::new(x.device(), lengths, length, self.num_heads)?;
        let fused =
            (length <= FUSED_ATTENTION_MAX_LENGTH && FusedAttention::supports(&x)).then(|| {
                FusedAttention {
                    length,
                    valid: lengths.to_vec(),
                    heads: self.num_heads,
                    head_dim: self.head_dim,
                }
            });
        for layer in &self.layers {
            let attention = Attention {
                fused: fused.as_ref(),
                masking: &masking,
                batch,
                length,
            };
            x = layer.forward(&x, &attention, self)?;
        }
        x.reshape((batch, length, hidden))
    }

    fn activate(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self.hidden_act {
            HiddenAct::Gelu => x.gelu_erf(),
            HiddenAct::GeluApproximate => x.gelu(),
            HiddenAct::Relu => x.relu(),
        }
    }
}

/// Per-batch inputs of a layer's attention.
struct Attention<'a> {
    /// The fused CPU kernel, when it supports the batch's device and dtype.
    fused: Option<&'a FusedAttention>,
    /// The method that excludes padded keys from the softmax.
    masking: &'a Masking,
    batch: usize,
    length: usize,
}

/// Exclusion of padded keys from attention.
enum Masking {
    /// The fused masked softmax, on the CPU.
    Cpu(MaskedSoftmax),
    /// A `(batch, 1, 1, length)` bias added to the scores before the softmax: 0 for real
    /// tokens and a large negative score for padding.
    Bias(Tensor),
}

impl Masking {
    fn new(
        device: &candle_core::Device,
        lengths: &[usize],
        length: usize,
        heads: usize,
    ) -> candle_core::Result<Self> {
        if device.is_cpu() {
            return Ok(Masking::Cpu(MaskedSoftmax {
                valid: lengths.to_vec(),
                heads,
                length,
            }));
        }
        let bias: Vec<f32> = lengths
            .iter()
            .flat_map(|&n| (0..length).map(move |i| if i < n { 0.0 } else { MASKED_SCORE }))
            .collect();
        Ok(Masking::Bias(Tensor::from_vec(
            bias,
            (lengths.len(), 1, 1, length),
            device,
        )?))
    }
}

impl Attention<'_> {
    /// Computes the `(batch * length, hidden)` attention context from the fused projection
    /// output, with the fused kernel when the batch qualifies.
    fn context(&self, qkv: &Tensor, model: &Bert) -> candle_core::Result<Tensor> {
        match self.fused {
            Some(fused) => fused.forward(qkv),
            None => self.unfused(qkv, model),
        }
    }

    /// Computes attention with candle operations, for devices without the fused kernel.
    fn unfused(&self, qkv: &Tensor, model: &Bert) -> candle_core::Result<Tensor> {
        let (heads, head_dim) = (model.num_heads, model.head_dim);

        // (batch*length, 3*hidden) -> three (batch, heads, length, head_dim) tensors.
        let qkv = qkv
            .reshape((self.batch, self.length, 3, heads, head_dim))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);

        let scores = q.matmul(&k.t()?)?;
        let probabilities = match self.masking {
            Masking::Cpu(softmax) => scores
                .reshape((self.batch * heads * self.length, self.length))?
                .apply_op1_no_bwd(softmax)?
                .reshape((self.batch, heads, self.length, self.length))?,
            Masking::Bias(bias) => candle_nn::ops::softmax_last_dim(&scores.broadcast_add(bias)?)?,
        };
        probabilities
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((self.batch * self.length, heads * head_dim))
    }
}

impl Layer {
    fn load(vb: VarBuilder, config: &Config, head_dim: usize) -> candle_core::Result<Self> {
        let hidden = config.hidden_size;
        let attention = vb.pp("attention.self");
        let projection = |name: &str| -> candle_core::Result<(Tensor, Tensor)> {
            let p = attention.pp(name);
            Ok((p.get((hidden, hidden), "weight")?, p.get(hidden, "bias")?))
        };
        let (q_weight, q_bias) = projection("query")?;
        let (k_weight, k_bias) = projection("key")?;
        let (v_weight, v_bias) = projection("value")?;
        // Scaling the query projection scales every attention score by 1/sqrt(head_dim),
        // which saves one pass over the (heads, length, length) score tensor per layer.
        let scale = 1.0 / (head_dim as f64).sqrt();
        let qkv_weight = Tensor::cat(&[(q_weight * scale)?, k_weight, v_weight], 0)?;
        let qkv_bias = Tensor::cat(&[(q_bias * scale)?, k_bias, v_bias], 0)?;

        let eps = config.layer_norm_eps;
        let layer = CandleLayer {
            qkv: Linear::new(qkv_weight, Some(qkv_bias)),
            attention_output: candle_nn::linear(hidden, hidden, vb.pp("attention.output.dense"))?,
            attention_norm: candle_nn::layer_norm(
                hidden,
                eps,
                vb.pp("attention.output.LayerNorm"),
            )?,
            intermediate: candle_nn::linear(
                hidden,
                config.intermediate_size,
                vb.pp("intermediate.dense"),
            )?,
            output: candle_nn::linear(config.intermediate_size, hidden, vb.pp("output.dense"))?,
            output_norm: candle_nn::layer_norm(hidden, eps, vb.pp("output.LayerNorm"))?,
        };
        let on_cpu = vb.device().is_cpu() && vb.dtype() == DType::F32;
        if on_cpu && config.hidden_act == HiddenAct::Gelu {
            Ok(Layer::Cpu(RowKernels::new(&layer, eps as f32)?))
        } else {
            Ok(Layer::Candle(layer))
        }
    }

    /// Runs one layer on `x` of shape `(batch * length, hidden)`.
    fn forward(
        &self,
        x: &Tensor,
        attention: &Attention,
        model: &Bert,
    ) -> candle_core::Result<Tensor> {
        match self {
            Layer::Candle(layer) => layer.forward(x, attention, model),
            Layer::Cpu(kernels) => kernels.forward(&x.contiguous()?, attention, model),
        }
    }
}

impl CandleLayer {
    fn forward(
        &self,
        x: &Tensor,
        attention: &Attention,
        model: &Bert,
    ) -> candle_core::Result<Tensor> {
        let qkv = self.qkv.forward(x)?;
        let context = attention.context(&qkv, model)?;

        let attended = self
            .attention_norm
            .forward(&(self.attention_output.forward(&context)? + x)?)?;
        let intermediate = model.activate(&self.intermediate.forward(&attended)?)?;
        self.output_norm
            .forward(&(self.output.forward(&intermediate)? + attended)?)
    }
}

/// One layer's weights laid out for the CPU: projection matrices transposed to
/// `(in, out)` row-major, biases and norm weights as plain vectors for the row kernels.
struct RowKernels {
    qkv_weight: Tensor,
    attention_output_weight: Tensor,
    intermediate_weight: Tensor,
    output_weight: Tensor,
    qkv_bias: BiasActivation,
    attention_norm: BiasResidualNorm,
    intermediate: BiasActivation,
    output_norm: BiasResidualNorm,
}

impl RowKernels {
    fn new(layer: &CandleLayer, eps: f32) -> candle_core::Result<Self> {
        let bias = |linear: &Linear| -> candle_core::Result<Vec<f32>> {
            match linear.bias() {
                Some(bias) => bias.to_vec1::<f32>(),
                None => candle_core::bail!("BERT projections have a bias"),
            }
        };
        let norm = |linear: &Linear, norm: &LayerNorm| -> candle_core::Result<BiasResidualNorm> {
            let Some(beta) = norm.bias() else {
                candle_core::bail!("BERT layer norms have a bias");
            };
            Ok(BiasResidualNorm {
                bias: bias(linear)?,
                gamma: norm.weight().to_vec1::<f32>()?,
                beta: beta.to_vec1::<f32>()?,
                eps,
            })
        };
        // gemm repacks the right-hand matrix on every product; packing from row-major
        // (in, out) memory is cheaper than from the transposed view of (out, in) weights.
        let transposed = |linear: &Linear| linear.weight().t()?.contiguous();
        Ok(Self {
            qkv_weight: transposed(&layer.qkv)?,
            attention_output_weight: transposed(&layer.attention_output)?,
            intermediate_weight: transposed(&layer.intermediate)?,
            output_weight: transposed(&layer.output)?,
            qkv_bias: BiasActivation {
                bias: bias(&layer.qkv)?,
                gelu: false,
            },
            attention_norm: norm(&layer.attention_output, &layer.attention_norm)?,
            intermediate: BiasActivation {
                bias: bias(&layer.intermediate)?,
                gelu: true,
            },
            output_norm: norm(&layer.output, &layer.output_norm)?,
        })
    }

    /// Computes the same as [`CandleLayer::forward`], with the elementwise steps fused into
    /// the row kernels; `x` must be contiguous.
    fn forward(
        &self,
        x: &Tensor,
        attention: &Attention,
        model: &Bert,
    ) -> candle_core::Result<Tensor> {
        let qkv = x
            .matmul(&self.qkv_weight)?
            .apply_op1_no_bwd(&self.qkv_bias)?;
        let context = attention.context(&qkv, model)?;

        let attended = context
            .matmul(&self.attention_output_weight)?
            .apply_op2_no_bwd(x, &self.attention_norm)?;
        let intermediate = attended
            .matmul(&self.intermediate_weight)?
            .apply_op1_no_bwd(&self.intermediate)?;
        intermediate
            .matmul(&self.output_weight)?
            .apply_op2_no_bwd(&attended, &self.output_norm)
    }
}
