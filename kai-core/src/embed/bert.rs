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

use candle_core::{Module, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder};
use candle_transformers::models::bert::{Config, HiddenAct};

use super::gelu::gelu_erf;

/// Large negative score added to padded key positions, as the Hugging Face model does with
/// the dtype's minimum; `exp` of it is exactly 0 in f32.
const MASKED_SCORE: f64 = -1e30;

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
}

struct Layer {
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
        if hidden % config.num_attention_heads != 0 {
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
        Ok(Self {
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

    /// Encodes a right-padded batch: `ids`, `type_ids` and `mask` are `(batch, length)`
    /// u32 tensors; returns `(batch, length, hidden)`.
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (batch, length) = ids.dims2()?;
        let hidden = self.num_heads * self.head_dim;
        if length > self.position_embeddings.dim(0)? {
            candle_core::bail!(
                "sequence of {length} tokens exceeds the {} positions the model has",
                self.position_embeddings.dim(0)?
            );
        }

        let words = self.word_embeddings.embedding(&ids.flatten_all()?)?;
        let types = self
            .token_type_embeddings
            .embedding(&type_ids.flatten_all()?)?;
        let positions = self.position_embeddings.narrow(0, 0, length)?;
        let embedded = (words + types)?
            .reshape((batch, length, hidden))?
            .broadcast_add(&positions)?;
        let mut x = self
            .embeddings_norm
            .forward(&embedded)?
            .reshape((batch * length, hidden))?;

        let mask_bias =
            ((mask.to_dtype(x.dtype())? - 1.0)? * -MASKED_SCORE)?.reshape((batch, 1, 1, length))?;
        for layer in &self.layers {
            x = layer.forward(&x, &mask_bias, self, (batch, length))?;
        }
        x.reshape((batch, length, hidden))
    }

    fn activate(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self.hidden_act {
            HiddenAct::Gelu => gelu_erf(x),
            HiddenAct::GeluApproximate => x.gelu(),
            HiddenAct::Relu => x.relu(),
        }
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
        Ok(Self {
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
        })
    }

    /// Runs one layer on `x` of shape `(batch * length, hidden)`.
    fn forward(
        &self,
        x: &Tensor,
        mask_bias: &Tensor,
        model: &Bert,
        (batch, length): (usize, usize),
    ) -> candle_core::Result<Tensor> {
        let (heads, head_dim) = (model.num_heads, model.head_dim);
        let hidden = heads * head_dim;

        // (batch*length, 3*hidden) -> three (batch, heads, length, head_dim) tensors.
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((batch, length, 3, heads, head_dim))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);

        let scores = q.matmul(&k.t()?)?.broadcast_add(mask_bias)?;
        let probabilities = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probabilities
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch * length, hidden))?;

        let attended = self
            .attention_norm
            .forward(&(self.attention_output.forward(&context)? + x)?)?;
        let intermediate = model.activate(&self.intermediate.forward(&attended)?)?;
        self.output_norm
            .forward(&(self.output.forward(&intermediate)? + attended)?)
    }
}
