//! Language-model tests on tiny models and byte-level text, fast enough for every test run.

use burn::tensor::{Int, Tensor};

use super::generate::Sampler;
use super::model::{DropoutSource, explicit_attention, token_data};
use super::*;
use crate::{TrainError, device};

fn bytes(text: &str) -> Vec<u32> {
    text.bytes().map(u32::from).collect()
}

fn tiny() -> TransformerLmConfig {
    TransformerLmConfig {
        vocab_size: 256,
        context_len: 16,
        d_model: 32,
        n_heads: 4,
        n_layers: 2,
        d_ff: 64,
        dropout: 0.0,
    }
}

fn quick() -> LmTrainConfig {
    LmTrainConfig {
        epochs: 2,
        steps_per_epoch: 25,
        batch_size: 8,
        learning_rate: 3e-3,
        warmup_steps: 5,
        patience: None,
        validation_windows: 8,
        seed: 7,
        ..Default::default()
    }
}

fn train(config: &LmTrainConfig, train: &[u32], valid: &[u32]) -> LmTrainingOutcome {
    fit_lm(&tiny(), config, train, valid, None, &device::cpu(), &mut |_| {}).unwrap()
}

fn logits_at_last(model: &TransformerLm, tokens: &[u32]) -> Vec<f32> {
    let ids = Tensor::<2, Int>::from_data(token_data(tokens, 1), &model.device());
    let vocab = model.config().vocab_size;
    let logits = model.forward(ids).unwrap().narrow(1, tokens.len() - 1, 1).reshape([vocab]);
    logits.into_data().try_to_vec::<f32>().unwrap()
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn greedy(max_tokens: usize) -> GenerateConfig {
    GenerateConfig { max_tokens, temperature: 0.0, top_k: None, top_p: None, seed: 0 }
}

#[test]
fn loss_falls_on_repetitive_bytes() {
    let text = bytes(&"abcd".repeat(100));
    let outcome = train(&LmTrainConfig { epochs: 3, ..quick() }, &text[..300], &text[300..]);

    let first = &outcome.history[0];
    let last = outcome.history.last().unwrap();
    assert_eq!(outcome.history.len(), 3);
    assert!(last.train_loss < first.train_loss, "train loss rose from {} to {}", first.train_loss, last.train_loss);
    // A uniform guess over 256 bytes costs 8 bits per token; the cycle is fully predictable
    // after its first character.
    let bits = last.validation_bits_per_token.unwrap();
    assert!(bits < 1.0, "validation bits per token {bits}");
    let loss = last.validation_loss.unwrap();
    assert!((bits - loss / std::f64::consts::LN_2).abs() < 1e-12);
    assert!((last.validation_perplexity.unwrap() - loss.exp()).abs() < 1e-12);
    assert_eq!(last.steps, 75);
}

#[test]
fn greedy_generation_continues_learned_cycle() {
    let text = bytes(&"abcd".repeat(100));
    let outcome = train(&LmTrainConfig { epochs: 3, ..quick() }, &text, &[]);
    let tokens = generate(&outcome.model, &bytes("abcdab"), &greedy(8), |_, _| {}).unwrap();
    assert_eq!(String::from_utf8(tokens.iter().map(|&t| t as u8).collect()).unwrap(), "cdabcdab");
}

#[test]
fn same_seed_reproduces_weights_and_samples() {
    let text = bytes(&"the cat sat on the mat. ".repeat(20));
    let config = LmTrainConfig { epochs: 1, steps_per_epoch: 10, ..quick() };
    let dropout = TransformerLmConfig { dropout: 0.2, ..tiny() };
    let run = |seed| {
        let config = LmTrainConfig { seed, ..config.clone() };
        fit_lm(&dropout, &config, &text, &[], None, &device::cpu(), &mut |_| {}).unwrap().model
    };
    let first = run(1);
    let second = run(1);
    assert_eq!(first.to_bytes().unwrap(), second.to_bytes().unwrap());
    assert_ne!(first.to_bytes().unwrap(), run(2).to_bytes().unwrap());

    let sampling = GenerateConfig { max_tokens: 30, temperature: 1.0, top_k: Some(50), top_p: Some(0.95), seed: 4 };
    let prompt = bytes("the ");
    let a = generate(&first, &prompt, &sampling, |_, _| {}).unwrap();
    let b = generate(&second, &prompt, &sampling, |_, _| {}).unwrap();
    assert_eq!(a, b);
    let other_seed = GenerateConfig { seed: 5, ..sampling };
    assert_ne!(a, generate(&first, &prompt, &other_seed, |_, _| {}).unwrap());
}

#[test]
fn cached_logits_match_full_forward() {
    let model = TransformerLm::init(&tiny(), 3, &device::cpu()).unwrap();
    let tokens = bytes("a quick brown fox");
    let mut cache = model.new_cache();

    let prefill = model.forward_cached(&tokens[..5], &mut cache).unwrap().into_data().try_to_vec::<f32>().unwrap();
    let difference = max_difference(&prefill, &logits_at_last(&model, &tokens[..5]));
    assert!(difference < 1e-4, "prefill differs by {difference}");

    for end in 6..=9 {
        let step = model.forward_cached(&tokens[end - 1..end], &mut cache).unwrap();
        let step = step.into_data().try_to_vec::<f32>().unwrap();
        let difference = max_difference(&step, &logits_at_last(&model, &tokens[..end]));
        assert!(difference < 1e-4, "step to {end} tokens differs by {difference}");
    }

    // Several tokens after a non-empty cache take the explicitly masked path.
    let chunk = model.forward_cached(&tokens[9..16], &mut cache).unwrap().into_data().try_to_vec::<f32>().unwrap();
    let difference = max_difference(&chunk, &logits_at_last(&model, &tokens[..16]));
    assert!(difference < 1e-4, "chunk after cache differs by {difference}");
    assert_eq!(cache.len(), 16);
}

#[test]
fn cache_rejects_overflow_and_foreign_caches() {
    let model = TransformerLm::init(&tiny(), 3, &device::cpu()).unwrap();
    let mut cache = model.new_cache();
    model.forward_cached(&[1; 16], &mut cache).unwrap();
    assert!(matches!(model.forward_cached(&[1], &mut cache), Err(TrainError::InvalidConfig(_))));

    let deeper = TransformerLm::init(&TransformerLmConfig { n_layers: 3, ..tiny() }, 3, &device::cpu()).unwrap();
    let mut foreign = deeper.new_cache();
    assert!(matches!(model.forward_cached(&[1], &mut foreign), Err(TrainError::InvalidConfig(_))));
}

#[test]
fn cached_and_uncached_generation_agree() {
    let model = TransformerLm::init(&tiny(), 8, &device::cpu()).unwrap();
    let prompt = bytes("hello");
    // 5 prompt tokens and 11 generated ones fill the context of 16 without sliding.
    let cached = generate(&model, &prompt, &greedy(11), |_, _| {}).unwrap();
    let uncached = generate_uncached(&model, &prompt, &greedy(11), |_, _| {}).unwrap();
    assert_eq!(cached, uncached);
}

#[test]
fn generation_slides_past_context() {
    let model = TransformerLm::init(&tiny(), 8, &device::cpu()).unwrap();
    let mut steps = 0;
    let long_prompt = bytes(&"xy".repeat(20));
    let tokens = generate(&model, &long_prompt, &greedy(50), |context, _| {
        assert_eq!(context.len(), long_prompt.len() + steps);
        steps += 1;
    })
    .unwrap();
    assert_eq!(tokens.len(), 50);
    assert_eq!(steps, 50);
}

#[test]
fn noop_hook_matches_no_hook() {
    let model = TransformerLm::init(&tiny(), 9, &device::cpu()).unwrap();
    let config = GenerateConfig { max_tokens: 40, temperature: 1.2, top_k: None, top_p: Some(0.9), seed: 11 };
    let prompt = bytes("seed");
    let plain = generate(&model, &prompt, &config, |_, _| {}).unwrap();
    let mut calls = 0;
    let observed = generate(&model, &prompt, &config, |context, logits| {
        assert_eq!(&context[..prompt.len()], prompt.as_slice());
        assert_eq!(logits.len(), 256);
        calls += 1;
    })
    .unwrap();
    assert_eq!(plain, observed);
    assert_eq!(calls, 40);
}

#[test]
fn hook_bias_steers_sampling() {
    let model = TransformerLm::init(&tiny(), 9, &device::cpu()).unwrap();
    let config = GenerateConfig { max_tokens: 20, temperature: 1.0, top_k: None, top_p: None, seed: 2 };
    let tokens = generate(&model, &bytes("x"), &config, |_, logits| logits[b'z' as usize] += 100.0).unwrap();
    assert_eq!(tokens, vec![u32::from(b'z'); 20]);

    // A hook that leaves a NaN or removes every token is reported, not sampled from.
    let nan = generate(&model, &bytes("x"), &config, |_, logits| logits[3] = f32::NAN);
    assert!(matches!(nan, Err(TrainError::InvalidConfig(_))), "{nan:?}");
    let empty = generate(&model, &bytes("x"), &config, |_, logits| logits.fill(f32::NEG_INFINITY));
    assert!(matches!(empty, Err(TrainError::InvalidConfig(_))), "{empty:?}");
}

#[test]
fn sampler_applies_top_k_and_top_p() {
    let logits = [0.0f32, 3.0, 2.9, -1.0, f32::NEG_INFINITY];
    let draw = |config: GenerateConfig, draws: usize| {
        let mut sampler = Sampler::new(&config);
        let mut counts = [0usize; 5];
        for _ in 0..draws {
            counts[sampler.sample(&logits).unwrap() as usize] += 1;
        }
        counts
    };
    let base = GenerateConfig { max_tokens: 0, temperature: 1.0, top_k: None, top_p: None, seed: 1 };

    assert_eq!(draw(GenerateConfig { temperature: 0.0, ..base.clone() }, 10), [0, 10, 0, 0, 0]);
    assert_eq!(draw(GenerateConfig { top_k: Some(1), ..base.clone() }, 10), [0, 10, 0, 0, 0]);
    let top_two = draw(GenerateConfig { top_k: Some(2), ..base.clone() }, 1000);
    assert_eq!(top_two[0] + top_two[3] + top_two[4], 0, "{top_two:?}");
    // Tokens 1 and 2 hold e^3 / Z + e^2.9 / Z = 0.966 of the mass, so top-p 0.9 keeps just them.
    let nucleus = draw(GenerateConfig { top_p: Some(0.9), ..base.clone() }, 1000);
    assert_eq!(nucleus[0] + nucleus[3] + nucleus[4], 0, "{nucleus:?}");

    // Plain sampling follows softmax: p(token 0) = 1 / (1 + e^3 + e^2.9 + e^-1) = 0.0252.
    let counts = draw(base, 20_000);
    let share = counts[0] as f64 / 20_000.0;
    assert!((share - 0.0252).abs() < 0.005, "token 0 drawn {share}");
    assert_eq!(counts[4], 0);
}

#[test]
fn save_and_load_round_trip() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("model.safetensors");
    let model = TransformerLm::init(&tiny(), 5, &device::cpu()).unwrap();
    model.save(&path).unwrap();
    let loaded = TransformerLm::load(&path, &device::cpu()).unwrap();

    assert_eq!(loaded.config(), model.config());
    assert_eq!(loaded.to_bytes().unwrap(), std::fs::read(&path).unwrap());
    let prompt = bytes("round trip");
    assert_eq!(logits_at_last(&loaded, &prompt), logits_at_last(&model, &prompt));

    let values_bytes = 4 * tiny().parameter_count();
    let file_bytes = std::fs::metadata(&path).unwrap().len() as usize;
    assert!(file_bytes > values_bytes, "{file_bytes} bytes for {values_bytes} bytes of weights");
    assert!(file_bytes < values_bytes + 8192, "{file_bytes} bytes: the header is too large");
    let leftovers = std::fs::read_dir(directory.path()).unwrap().count();
    assert_eq!(leftovers, 1, "the temporary file was not renamed");
}

#[test]
fn load_rejects_damaged_files() {
    let model = TransformerLm::init(&tiny(), 5, &device::cpu()).unwrap();
    let bytes = model.to_bytes().unwrap();
    let cpu = device::cpu();

    let truncated = TransformerLm::from_bytes(&bytes[..bytes.len() - 4], &cpu);
    assert!(matches!(truncated, Err(TrainError::InvalidWeights(_))), "{truncated:?}");
    assert!(matches!(TransformerLm::from_bytes(&bytes[..5], &cpu), Err(TrainError::InvalidWeights(_))));

    // The same weights under a configuration with another width do not fit.
    let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + length].to_vec()).unwrap();
    let edited = header.replace(r#"\"d_ff\":64"#, r#"\"d_ff\":65"#);
    assert_ne!(edited, header);
    let mut damaged = bytes[..8].to_vec();
    damaged.extend_from_slice(edited.as_bytes());
    damaged.extend_from_slice(&bytes[8 + length..]);
    let wrong_shape = TransformerLm::from_bytes(&damaged, &cpu);
    assert!(matches!(&wrong_shape, Err(TrainError::InvalidWeights(m)) if m.contains("mlp_in")), "{wrong_shape:?}");

    let missing = TransformerLm::load(std::path::Path::new("/nonexistent/model.safetensors"), &cpu);
    assert!(matches!(missing, Err(TrainError::Io { .. })), "{missing:?}");
}

#[test]
fn early_stopping_keeps_best_checkpoint() {
    // Validation text runs the cycle backwards, so its loss rises as training learns the forward
    // cycle: the first epoch stays the best.
    let forward = bytes(&"abc".repeat(100));
    let backward = bytes(&"acb".repeat(30));
    let directory = tempfile::tempdir().unwrap();
    let checkpoint = directory.path().join("best.safetensors");
    let config = LmTrainConfig { epochs: 10, patience: Some(2), ..quick() };
    let mut epochs_seen = Vec::new();
    let outcome = fit_lm(&tiny(), &config, &forward, &backward, Some(&checkpoint), &device::cpu(), &mut |p| {
        if let LmProgress::Epoch(record) = p {
            epochs_seen.push((record.epoch, record.improved));
        }
    })
    .unwrap();

    assert_eq!(outcome.stop_reason, LmStopReason::EarlyStopping { patience: 2 });
    assert_eq!(outcome.best_epoch, 1);
    assert_eq!(epochs_seen, vec![(1, true), (2, false), (3, false)]);
    assert_eq!(std::fs::read(&checkpoint).unwrap(), outcome.model.to_bytes().unwrap());
    let kept = evaluate_lm(&outcome.model, &backward, 8, 8).unwrap();
    assert!((kept - outcome.history[0].validation_loss.unwrap()).abs() < 1e-6);
}

#[test]
fn learning_rate_warms_up_then_decays() {
    let config = LmTrainConfig { epochs: 2, steps_per_epoch: 60, warmup_steps: 20, learning_rate: 1e-3, ..quick() };
    assert!((config.learning_rate_at(0) - 5e-5).abs() < 1e-12);
    assert!((config.learning_rate_at(19) - 1e-3).abs() < 1e-12);
    assert!((config.learning_rate_at(20) - 1e-3).abs() < 1e-12);
    assert!((config.learning_rate_at(70) - 5.5e-4).abs() < 1e-12);
    assert!((config.learning_rate_at(120) - 1e-4).abs() < 1e-12);
    let constant = LmTrainConfig { schedule: LrSchedule::Constant, ..config };
    assert_eq!(constant.learning_rate_at(119), 1e-3);
}

#[test]
fn parameter_count_matches_saved_tensors() {
    let config = TransformerLmConfig {
        vocab_size: 50,
        context_len: 8,
        d_model: 12,
        n_heads: 3,
        n_layers: 2,
        d_ff: 20,
        dropout: 0.0,
    };
    let model = TransformerLm::init(&config, 0, &device::cpu()).unwrap();
    let saved: usize = model.named_tensors().iter().map(|(_, data)| data.num_elements()).sum();
    assert_eq!(config.parameter_count(), saved);
    // Embeddings 50*12 + 8*12, per block 2*2*12 + (12*36+36) + (12*12+12) + (12*20+20) + (20*12+12),
    // final norm 2*12, output 12*50+50.
    assert_eq!(saved, 696 + 2 * 1184 + 24 + 650);
}

#[test]
fn rejects_invalid_settings() {
    let shapes = [
        TransformerLmConfig { vocab_size: 0, ..tiny() },
        TransformerLmConfig { d_model: 30, ..tiny() },
        TransformerLmConfig { n_layers: 0, ..tiny() },
        TransformerLmConfig { dropout: 1.0, ..tiny() },
        TransformerLmConfig { d_model: usize::MAX / 2, n_heads: 1, ..tiny() },
    ];
    for shape in shapes {
        assert!(matches!(shape.validate(), Err(TrainError::InvalidConfig(_))), "{shape:?} was accepted");
    }

    let text = bytes("abcabcabc");
    let trainings = [
        LmTrainConfig { learning_rate: -1.0, ..quick() },
        LmTrainConfig { steps_per_epoch: 0, ..quick() },
        LmTrainConfig { max_grad_norm: Some(0.0), ..quick() },
        LmTrainConfig { patience: Some(2), ..quick() },
        LmTrainConfig { time_limit_seconds: Some(f64::NAN), ..quick() },
    ];
    for config in trainings {
        let result = fit_lm(&tiny(), &config, &text, &[], None, &device::cpu(), &mut |_| {});
        assert!(matches!(result, Err(TrainError::InvalidConfig(_))), "{config:?} was accepted");
    }
    let out_of_vocabulary = fit_lm(&tiny(), &quick(), &[1, 2, 300], &[], None, &device::cpu(), &mut |_| {});
    assert!(matches!(&out_of_vocabulary, Err(TrainError::InvalidConfig(m)) if m.contains("300")));
    let one_token = fit_lm(&tiny(), &quick(), &[1], &[], None, &device::cpu(), &mut |_| {});
    assert!(matches!(one_token, Err(TrainError::InvalidConfig(_))));

    let model = TransformerLm::init(&tiny(), 0, &device::cpu()).unwrap();
    let generations = [
        GenerateConfig { temperature: -0.5, ..greedy(1) },
        GenerateConfig { top_k: Some(0), ..greedy(1) },
        GenerateConfig { top_p: Some(0.0), ..greedy(1) },
        GenerateConfig { top_p: Some(1.5), ..greedy(1) },
    ];
    for config in generations {
        let result = generate(&model, &[1], &config, |_, _| {});
        assert!(matches!(result, Err(TrainError::InvalidConfig(_))), "{config:?} was accepted");
    }
    assert!(matches!(generate(&model, &[], &greedy(1), |_, _| {}), Err(TrainError::InvalidConfig(_))));

    let too_long = Tensor::<2, Int>::from_data(token_data(&[1; 17], 1), &model.device());
    assert!(matches!(model.forward(too_long), Err(TrainError::InvalidConfig(_))));
    let outside = Tensor::<2, Int>::from_data(token_data(&[1, 256], 1), &model.device());
    assert!(matches!(model.forward(outside), Err(TrainError::InvalidConfig(m)) if m.contains("256")));
    assert!(matches!(generate(&model, &[256], &greedy(1), |_, _| {}), Err(TrainError::InvalidConfig(_))));
}

#[test]
fn explicit_attention_matches_fused_op() {
    // The training path with attention dropout computes attention explicitly. With nothing
    // dropped, it must give what burn's fused op gives in causal mode.
    use burn::tensor::Distribution;
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    use rand::SeedableRng;

    let device = device::cpu();
    let shape = [2, 3, 7, 4];
    let [query, key, value] = [0, 1, 2].map(|_| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device));
    let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: true };
    let fused = attention(query.clone(), key.clone(), value.clone(), None, None, options);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut keep_all = DropoutSource { probability: 0.0, rng: &mut rng };
    let explicit = explicit_attention(query.clone(), key.clone(), value.clone(), &mut keep_all);
    let difference = (fused.clone() - explicit).abs().max().into_scalar::<f32>();
    assert!(difference < 1e-5, "largest difference {difference}");

    // With dropout, some weights are zeroed and the rest scaled, so the output moves.
    let mut drop_half = DropoutSource { probability: 0.5, rng: &mut rng };
    let dropped = explicit_attention(query, key, value, &mut drop_half);
    let difference = (fused - dropped).abs().max().into_scalar::<f32>();
    assert!(difference > 1e-2, "attention dropout should change the output: {difference}");
}
