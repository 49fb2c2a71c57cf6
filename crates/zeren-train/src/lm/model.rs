//! The decoder-only transformer and its key-value cache.
//!
//! Each block is pre-norm (Radford et al. 2019, "Language Models are Unsupervised Multitask
//! Learners", Section 2.3): `x + attention(norm(x))`, then `x + mlp(norm(x))`, with a final layer
//! norm before the output projection. Attention is causal multi-head scaled dot-product attention
//! (Vaswani et al. 2017, eq. 1) through burn's `attention` op. The op has no dropout, so training
//! with dropout computes the attention weights explicitly and drops some of them.

use std::collections::HashMap;

use burn::module::{Module, Param};
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::TrainError;
use crate::lm::TransformerLmConfig;

/// Standard deviation of the initial weights (Radford et al. 2019 use N(0, 0.02)).
const INIT_STD: f32 = 0.02;

/// A decoder-only transformer language model over token ids.
#[derive(Module, Debug)]
pub struct TransformerLm {
    token_embedding: Embedding,
    position_embedding: Embedding,
    blocks: Vec<Block>,
    final_norm: LayerNorm,
    output: Linear,
    #[module(skip)]
    config: TransformerLmConfig,
}

#[derive(Module, Debug)]
struct Block {
    attention_norm: LayerNorm,
    attention: CausalSelfAttention,
    mlp_norm: LayerNorm,
    mlp_in: Linear,
    mlp_out: Linear,
}

#[derive(Module, Debug)]
struct CausalSelfAttention {
    /// Query, key and value projections fused into one `d_model x 3 d_model` layer.
    qkv: Linear,
    output: Linear,
    #[module(skip)]
    n_heads: usize,
}

/// Keys and values of the tokens seen so far, per layer, so that each generated token costs one
/// position's work instead of a pass over the whole context.
#[derive(Debug, Clone)]
pub struct KvCache {
    /// Keys and values of each layer, shape `[1, n_heads, len, d_model / n_heads]`.
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    len: usize,
}

impl KvCache {
    /// Number of tokens whose keys and values are stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Checks whether no token is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Source of dropout masks. Masks come from a seeded ChaCha8 generator rather than the backend's
/// random generator, so that training with dropout stays reproducible bit for bit on the CPU.
pub(crate) struct DropoutSource<'a> {
    pub(crate) probability: f64,
    pub(crate) rng: &'a mut ChaCha8Rng,
}

impl DropoutSource<'_> {
    /// Zeroes each value with the dropout probability and scales the rest by `1 / (1 - p)`.
    fn apply<const D: usize>(&mut self, x: Tensor<D>) -> Tensor<D> {
        if self.probability == 0.0 {
            return x;
        }
        let shape = x.dims();
        let keep = 1.0 - self.probability;
        let scale = (1.0 / keep) as f32;
        let count = shape.iter().product();
        let mask: Vec<f32> = (0..count).map(|_| if self.rng.random::<f64>() < keep { scale } else { 0.0 }).collect();
        let mask = Tensor::<D>::from_data(TensorData::new(mask, shape), &x.device());
        x * mask
    }
}

impl TransformerLm {
    /// Creates a model with seeded initial weights.
    ///
    /// Weights are drawn from N(0, 0.02²). The two projections that write into the residual stream
    /// (attention output and the second feed-forward layer) are drawn from
    /// N(0, (0.02 / sqrt(2 L))²) for `L` layers, so that the residual stream's variance does not
    /// grow with depth (Radford et al. 2019, Section 2.3). Biases start at 0, layer norms at scale 1 and shift 0. The generator
    /// is ChaCha8 seeded with `seed`, so the initial weights are identical on every machine.
    ///
    /// # Errors
    ///
    /// Returns [`TrainError::InvalidConfig`] for an invalid configuration.
    pub fn init(config: &TransformerLmConfig, seed: u64, device: &Device) -> Result<Self, TrainError> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (d, f, v) = (config.d_model, config.d_ff, config.vocab_size);
        let residual_std = INIT_STD / (2.0 * config.n_layers as f32).sqrt();
        let mut normal = |shape: [usize; 2], std: f32| {
            let distribution = Normal::new(0.0f32, std).expect("a positive standard deviation");
            let values: Vec<f32> = (0..shape[0] * shape[1]).map(|_| distribution.sample(&mut rng)).collect();
            TensorData::new(values, shape)
        };

        let token_embedding = embedding(normal([v, d], INIT_STD), device);
        let position_embedding = embedding(normal([config.context_len, d], INIT_STD), device);
        let mut blocks = Vec::with_capacity(config.n_layers);
        for _ in 0..config.n_layers {
            let qkv = linear(normal([d, 3 * d], INIT_STD), device);
            let output = linear(normal([d, d], residual_std), device);
            let mlp_in = linear(normal([d, f], INIT_STD), device);
            let mlp_out = linear(normal([f, d], residual_std), device);
            blocks.push(Block {
                attention_norm: LayerNormConfig::new(d).init(device),
                attention: CausalSelfAttention { qkv, output, n_heads: config.n_heads },
                mlp_norm: LayerNormConfig::new(d).init(device),
                mlp_in,
                mlp_out,
            });
        }
        let output = linear(normal([d, v], INIT_STD), device);
        Ok(Self {
            token_embedding,
            position_embedding,
            blocks,
            final_norm: LayerNormConfig::new(d).init(device),
            output,
            config: config.clone(),
        })
    }

    /// Shape of the model.
    pub fn config(&self) -> &TransformerLmConfig {
        &self.config
    }

    /// Device the weights live on.
    pub fn device(&self) -> Device {
        self.output.weight.device()
    }

    /// Computes the logits of the next token at every position, shape `[batch, len, vocab_size]`,
    /// from token ids of shape `[batch, len]`.
    ///
    /// # Errors
    ///
    /// Returns [`TrainError::InvalidConfig`] when `len` is 0 or exceeds the context length, or an
    /// id is not below the vocabulary size.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Result<Tensor<3>, TrainError> {
        let [_, len] = tokens.dims();
        if len == 0 || len > self.config.context_len {
            return Err(TrainError::InvalidConfig(format!(
                "{len} tokens per row do not fit the context length {}; give 1 to {} tokens",
                self.config.context_len, self.config.context_len
            )));
        }
        let ids = tokens.clone().into_data().convert::<i64>();
        let ids = ids.as_slice::<i64>().map_err(|e| TrainError::Backend(format!("{e:?}")))?;
        if let Some(&id) = ids.iter().find(|&&id| id < 0 || id as usize >= self.config.vocab_size) {
            return Err(TrainError::InvalidConfig(format!(
                "token id {id} is not below the vocabulary size {}; encode the text with the model's tokenizer",
                self.config.vocab_size
            )));
        }
        Ok(self.forward_with_dropout(tokens, None))
    }

    /// Computes the logits like [`TransformerLm::forward`] without checking the input, applying
    /// dropout when a source is given.
    pub(crate) fn forward_with_dropout(&self, tokens: Tensor<2, Int>, mut dropout: Option<DropoutSource>) -> Tensor<3> {
        let mut x = self.embed(tokens, 0);
        if let Some(source) = dropout.as_mut() {
            x = source.apply(x);
        }
        for block in &self.blocks {
            x = block.forward(x, None, dropout.as_mut());
        }
        self.output.forward(self.final_norm.forward(x))
    }

    /// Creates an empty cache for [`TransformerLm::forward_cached`].
    pub fn new_cache(&self) -> KvCache {
        KvCache { layers: vec![None; self.blocks.len()], len: 0 }
    }

    /// Feeds `tokens` after the ones already in `cache` and returns the logits of the token that
    /// follows them, shape `[vocab_size]`. The cache then also contains the keys and values of
    /// `tokens`.
    ///
    /// The result equals the last position of [`TransformerLm::forward`] on all tokens fed so far,
    /// up to float rounding.
    ///
    /// # Errors
    ///
    /// Returns [`TrainError::InvalidConfig`] when `tokens` is empty, an id is not below the
    /// vocabulary size, or the cache and `tokens` together exceed the context length.
    pub fn forward_cached(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor<1>, TrainError> {
        if tokens.is_empty() {
            return Err(TrainError::InvalidConfig("no tokens to feed; give at least one token".into()));
        }
        self.check_tokens(tokens)?;
        let total = cache.len + tokens.len();
        if total > self.config.context_len {
            return Err(TrainError::InvalidConfig(format!(
                "{} cached and {} new tokens exceed the context length {}; start a new cache with the last tokens",
                cache.len,
                tokens.len(),
                self.config.context_len
            )));
        }
        if cache.layers.len() != self.blocks.len() {
            return Err(TrainError::InvalidConfig(format!(
                "the cache has {} layers but the model has {}; create it with this model's new_cache",
                cache.layers.len(),
                self.blocks.len()
            )));
        }

        let device = self.device();
        let ids = Tensor::<2, Int>::from_data(token_data(tokens, 1), &device);
        let mut x = self.embed(ids, cache.len);
        for (block, layer_cache) in self.blocks.iter().zip(&mut cache.layers) {
            x = block.forward(x, Some(layer_cache), None);
        }
        cache.len = total;

        let last = x.narrow(1, tokens.len() - 1, 1);
        let logits = self.output.forward(self.final_norm.forward(last));
        Ok(logits.reshape([self.config.vocab_size]))
    }

    /// Checks that every token id is below the vocabulary size.
    ///
    /// # Errors
    ///
    /// Returns [`TrainError::InvalidConfig`] naming the first invalid id and its position.
    pub fn check_tokens(&self, tokens: &[u32]) -> Result<(), TrainError> {
        check_token_ids(tokens, self.config.vocab_size)
    }

    /// Sums token and position embeddings for positions `start..start + len`.
    fn embed(&self, tokens: Tensor<2, Int>, start: usize) -> Tensor<3> {
        let [_, len] = tokens.dims();
        let positions = self.position_embedding.weight.val().narrow(0, start, len).unsqueeze::<3>();
        self.token_embedding.forward(tokens) + positions
    }

    /// Lists every trainable tensor with a stable dotted name, in a fixed order.
    pub(crate) fn named_tensors(&self) -> Vec<(String, TensorData)> {
        let mut tensors = vec![
            ("token_embedding.weight".to_string(), self.token_embedding.weight.val().into_data()),
            ("position_embedding.weight".to_string(), self.position_embedding.weight.val().into_data()),
        ];
        for (index, block) in self.blocks.iter().enumerate() {
            let prefix = format!("blocks.{index}");
            push_norm(&mut tensors, &format!("{prefix}.attention_norm"), &block.attention_norm);
            push_linear(&mut tensors, &format!("{prefix}.attention.qkv"), &block.attention.qkv);
            push_linear(&mut tensors, &format!("{prefix}.attention.output"), &block.attention.output);
            push_norm(&mut tensors, &format!("{prefix}.mlp_norm"), &block.mlp_norm);
            push_linear(&mut tensors, &format!("{prefix}.mlp_in"), &block.mlp_in);
            push_linear(&mut tensors, &format!("{prefix}.mlp_out"), &block.mlp_out);
        }
        push_norm(&mut tensors, "final_norm", &self.final_norm);
        push_linear(&mut tensors, "output", &self.output);
        tensors
    }

    /// Rebuilds a model from the tensors that [`TransformerLm::named_tensors`] lists, taking each
    /// out of `tensors`.
    ///
    /// # Errors
    ///
    /// Returns [`TrainError::InvalidWeights`] when a tensor is missing or has the wrong shape.
    pub(crate) fn from_named_tensors(
        config: &TransformerLmConfig,
        tensors: &mut HashMap<String, TensorData>,
        device: &Device,
    ) -> Result<Self, TrainError> {
        config.validate()?;
        let (d, f, v) = (config.d_model, config.d_ff, config.vocab_size);
        let mut loader = Loader { tensors, device };

        let token_embedding = Embedding { weight: loader.matrix("token_embedding.weight", [v, d])? };
        let position_embedding =
            Embedding { weight: loader.matrix("position_embedding.weight", [config.context_len, d])? };
        let mut blocks = Vec::with_capacity(config.n_layers);
        for index in 0..config.n_layers {
            let prefix = format!("blocks.{index}");
            blocks.push(Block {
                attention_norm: loader.norm(&format!("{prefix}.attention_norm"), d)?,
                attention: CausalSelfAttention {
                    qkv: loader.linear(&format!("{prefix}.attention.qkv"), d, 3 * d)?,
                    output: loader.linear(&format!("{prefix}.attention.output"), d, d)?,
                    n_heads: config.n_heads,
                },
                mlp_norm: loader.norm(&format!("{prefix}.mlp_norm"), d)?,
                mlp_in: loader.linear(&format!("{prefix}.mlp_in"), d, f)?,
                mlp_out: loader.linear(&format!("{prefix}.mlp_out"), f, d)?,
            });
        }
        let final_norm = loader.norm("final_norm", d)?;
        let output = loader.linear("output", d, v)?;
        Ok(Self { token_embedding, position_embedding, blocks, final_norm, output, config: config.clone() })
    }
}

fn push_linear(tensors: &mut Vec<(String, TensorData)>, prefix: &str, layer: &Linear) {
    tensors.push((format!("{prefix}.weight"), layer.weight.val().into_data()));
    if let Some(bias) = &layer.bias {
        tensors.push((format!("{prefix}.bias"), bias.val().into_data()));
    }
}

fn push_norm(tensors: &mut Vec<(String, TensorData)>, prefix: &str, norm: &LayerNorm) {
    tensors.push((format!("{prefix}.gamma"), norm.gamma.val().into_data()));
    if let Some(beta) = &norm.beta {
        tensors.push((format!("{prefix}.beta"), beta.val().into_data()));
    }
}

/// Takes named tensors out of a map, checking each shape.
struct Loader<'a> {
    tensors: &'a mut HashMap<String, TensorData>,
    device: &'a Device,
}

impl Loader<'_> {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<TensorData, TrainError> {
        let data = self
            .tensors
            .remove(name)
            .ok_or_else(|| TrainError::InvalidWeights(format!("tensor '{name}' is missing")))?;
        if data.shape().as_slice() != shape {
            return Err(TrainError::InvalidWeights(format!(
                "tensor '{name}' has shape {:?} but the configuration needs {shape:?}",
                data.shape().as_slice()
            )));
        }
        Ok(data)
    }

    fn matrix(&mut self, name: &str, shape: [usize; 2]) -> Result<Param<Tensor<2>>, TrainError> {
        let data = self.take(name, &shape)?;
        Ok(Param::from_tensor(Tensor::<2>::from_data(data, self.device)))
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Param<Tensor<1>>, TrainError> {
        let data = self.take(name, &[len])?;
        Ok(Param::from_tensor(Tensor::<1>::from_data(data, self.device)))
    }

    fn linear(&mut self, prefix: &str, inputs: usize, outputs: usize) -> Result<Linear, TrainError> {
        let weight = self.matrix(&format!("{prefix}.weight"), [inputs, outputs])?;
        let bias = self.vector(&format!("{prefix}.bias"), outputs)?;
        Ok(Linear { weight, bias: Some(bias) })
    }

    fn norm(&mut self, prefix: &str, width: usize) -> Result<LayerNorm, TrainError> {
        let mut norm = LayerNormConfig::new(width).init(self.device);
        norm.gamma = self.vector(&format!("{prefix}.gamma"), width)?;
        norm.beta = Some(self.vector(&format!("{prefix}.beta"), width)?);
        Ok(norm)
    }
}

impl Block {
    fn forward(
        &self,
        x: Tensor<3>,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        mut dropout: Option<&mut DropoutSource>,
    ) -> Tensor<3> {
        let mut attended =
            self.attention.forward(self.attention_norm.forward(x.clone()), cache, dropout.as_deref_mut());
        if let Some(source) = dropout.as_mut() {
            attended = source.apply(attended);
        }
        let x = x + attended;

        let hidden = gelu(self.mlp_in.forward(self.mlp_norm.forward(x.clone())));
        let mut mlp = self.mlp_out.forward(hidden);
        if let Some(source) = dropout.as_mut() {
            mlp = source.apply(mlp);
        }
        x + mlp
    }
}

impl CausalSelfAttention {
    /// Attends each position of `x`, shape `[batch, len, d_model]`, to itself and the positions
    /// before it, including those whose keys and values are in `cache`. With a dropout source,
    /// which training passes without a cache, dropout also zeroes attention weights.
    fn forward(
        &self,
        x: Tensor<3>,
        cache: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        dropout: Option<&mut DropoutSource>,
    ) -> Tensor<3> {
        let [batch, len, d_model] = x.dims();
        let heads = self.n_heads;
        let head_dim = d_model / heads;

        // [batch, len, 3 d_model] -> [batch, 3 heads, len, head_dim]: heads 0..h are queries,
        // h..2h keys and 2h..3h values, because the projection's columns are laid out that way.
        let qkv = self.qkv.forward(x).reshape([batch, len, 3 * heads, head_dim]).swap_dims(1, 2);
        let query = qkv.clone().narrow(1, 0, heads);
        let mut key = qkv.clone().narrow(1, heads, heads);
        let mut value = qkv.narrow(1, 2 * heads, heads);

        if let Some(source) = dropout.filter(|source| source.probability > 0.0) {
            let context = explicit_attention(query, key, value, source);
            return self.output.forward(context.swap_dims(1, 2).reshape([batch, len, d_model]));
        }

        let mut past = 0;
        if let Some(cache) = cache {
            if let Some((past_key, past_value)) = cache.take() {
                past = past_key.dims()[2];
                key = Tensor::cat(vec![past_key, key], 2);
                value = Tensor::cat(vec![past_value, value], 2);
            }
            *cache = Some((key.clone(), value.clone()));
        }

        // A single new query may see every cached key. Several new queries after an empty cache
        // use the op's causal mode. After a non-empty cache, query i (absolute position past + i)
        // may see keys 0..=past + i, which the op's causal mode (aligned at key 0) cannot express.
        // The boolean mask is true where attention is forbidden.
        let (mask, is_causal) = match (len, past) {
            (1, _) => (None, false),
            (_, 0) => (None, true),
            _ => {
                let total = past + len;
                let mask = Tensor::<2, Bool>::tril_mask([len, total], past as i64, &query.device());
                (Some(mask.unsqueeze::<4>().expand([batch, heads, len, total])), false)
            }
        };
        let options = AttentionModuleOptions { scale: None, softcap: None, is_causal };
        let context = attention(query, key, value, mask, None, options);

        let context = context.swap_dims(1, 2).reshape([batch, len, d_model]);
        self.output.forward(context)
    }
}

/// Computes causal attention over `[batch, heads, len, head_dim]` queries, keys and values as
/// `softmax(q kᵀ / sqrt(head_dim))` with future keys masked, dropping attention weights before
/// they mix the values.
pub(crate) fn explicit_attention(
    query: Tensor<4>,
    key: Tensor<4>,
    value: Tensor<4>,
    dropout: &mut DropoutSource,
) -> Tensor<4> {
    let [batch, heads, len, head_dim] = query.dims();
    let scores = query.matmul(key.swap_dims(2, 3)) / (head_dim as f64).sqrt();
    // True above the diagonal: key j > query i is in the future.
    let future = Tensor::<2, Bool>::tril_mask([len, len], 0, &scores.device());
    let scores = scores.mask_fill(future.unsqueeze::<4>().expand([batch, heads, len, len]), f32::NEG_INFINITY);
    let weights = dropout.apply(softmax(scores, 3));
    weights.matmul(value)
}

/// Checks that every id is below `vocab_size`.
pub(crate) fn check_token_ids(tokens: &[u32], vocab_size: usize) -> Result<(), TrainError> {
    match tokens.iter().position(|&id| id as usize >= vocab_size) {
        Some(position) => Err(TrainError::InvalidConfig(format!(
            "token id {} at position {position} is not below the vocabulary size {vocab_size}; \
             encode the text with the model's tokenizer",
            tokens[position]
        ))),
        None => Ok(()),
    }
}

/// Converts token ids to tensor data of shape `[rows, ids / rows]`.
pub(crate) fn token_data(tokens: &[u32], rows: usize) -> TensorData {
    let ids: Vec<i64> = tokens.iter().map(|&id| id as i64).collect();
    TensorData::new(ids, [rows, tokens.len() / rows])
}

fn embedding(weight: TensorData, device: &Device) -> Embedding {
    Embedding { weight: Param::from_tensor(Tensor::<2>::from_data(weight, device)) }
}

fn linear(weight: TensorData, device: &Device) -> Linear {
    let outputs = weight.shape()[1];
    let bias = Tensor::<1>::zeros([outputs], device);
    Linear { weight: Param::from_tensor(Tensor::<2>::from_data(weight, device)), bias: Some(Param::from_tensor(bias)) }
}
