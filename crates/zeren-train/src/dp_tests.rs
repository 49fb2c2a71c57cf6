//! DP-SGD checks against naive per-example computations.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dp::{
    Clipping, DpConfig, OutputGradients, gaussian_noise, noisy_gradients, parameter_count, per_example_gradient_norms,
    poisson_sample,
};
use crate::*;

fn random_rows(rows: usize, width: usize, seed: u64) -> (Vec<f32>, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let features = (0..rows * width).map(|_| rng.random_range(-2.0f32..2.0)).collect();
    let labels = (0..rows).map(|_| rng.random()).collect();
    (features, labels)
}

fn tensors(features: &[f32], labels: &[bool], width: usize, device: &Device) -> (Tensor<2>, Tensor<1>) {
    let rows = labels.len();
    let targets: Vec<f32> = labels.iter().map(|&y| if y { 1.0 } else { 0.0 }).collect();
    (
        Tensor::from_data(TensorData::new(features.to_vec(), [rows, width]), device),
        Tensor::from_data(TensorData::new(targets, [rows]), device),
    )
}

/// Gradients of one example by an ordinary backward pass: weight and bias gradients per layer,
/// flattened.
fn naive_gradients(
    model: &Mlp,
    features: &[f32],
    label: bool,
    width: usize,
    loss: LossKind,
    device: &Device,
) -> Vec<Vec<f32>> {
    let model = model.clone().fork(device);
    let (inputs, targets) = tensors(features, &[label], width, device);
    let logits = model.forward(inputs);
    let per_row = crate::train::per_example_loss(loss, logits, targets);
    let gradients = per_row.sum().backward();
    let mut out = Vec::new();
    for layer in &model.layers {
        let weight = layer.weight.val().grad(&gradients).unwrap();
        out.push(weight.into_data().try_to_vec::<f32>().unwrap());
        let bias = layer.bias.as_ref().unwrap().val().grad(&gradients).unwrap();
        out.push(bias.into_data().try_to_vec::<f32>().unwrap());
    }
    out
}

fn norm(parts: &[Vec<f32>]) -> f64 {
    parts.iter().flatten().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt()
}

fn model(width: usize, hidden: Vec<usize>, activation: Activation, seed: u64, device: &Device) -> Mlp {
    Mlp::init(&MlpConfig { inputs: width, hidden, activation }, seed, device)
}

#[test]
fn fast_norms_equal_per_example_backward() {
    let device = device::cpu().autodiff();
    for (hidden, activation, loss) in [
        (vec![7, 3], Activation::Tanh, LossKind::Bce),
        (vec![16], Activation::Relu, LossKind::Mse),
        (vec![], Activation::Sigmoid, LossKind::Bce),
    ] {
        let width = 5;
        let (features, labels) = random_rows(6, width, 1);
        let mlp = model(width, hidden.clone(), activation, 2, &device);
        for method in [OutputGradients::Probes, OutputGradients::Analytic] {
            let (inputs, targets) = tensors(&features, &labels, width, &device);
            let fast = per_example_gradient_norms(&mlp, inputs, targets, loss, method).unwrap();
            for (row, &fast_norm) in fast.iter().enumerate() {
                let naive = norm(&naive_gradients(
                    &mlp,
                    &features[row * width..(row + 1) * width],
                    labels[row],
                    width,
                    loss,
                    &device,
                ));
                let relative = (f64::from(fast_norm) - naive).abs() / naive.max(1e-12);
                assert!(
                    relative < 1e-5,
                    "{method:?} {hidden:?} {activation:?} row {row}: fast {fast_norm}, naive {naive}"
                );
            }
        }
    }
}

#[test]
fn clipped_sum_equals_naive_clipping() {
    let device = device::cpu().autodiff();
    let width = 4;
    let (features, labels) = random_rows(8, width, 3);
    let mlp = model(width, vec![6], Activation::Tanh, 4, &device);
    let max_grad_norm = 0.05;
    let config = DpConfig { noise_multiplier: 0.0, max_grad_norm, clipping: Clipping::Flat, noise_seed: Some(0) };

    // Naive: clip each example's full gradient to C, then sum.
    let mut expected: Vec<Vec<f64>> = Vec::new();
    for row in 0..labels.len() {
        let parts = naive_gradients(
            &mlp,
            &features[row * width..(row + 1) * width],
            labels[row],
            width,
            LossKind::Bce,
            &device,
        );
        let factor = (max_grad_norm / (norm(&parts) + 1e-6)).min(1.0);
        if expected.is_empty() {
            expected = parts.iter().map(|p| vec![0.0; p.len()]).collect();
        }
        for (sum, part) in expected.iter_mut().zip(&parts) {
            for (s, &v) in sum.iter_mut().zip(part) {
                *s += factor * f64::from(v);
            }
        }
    }

    let (inputs, targets) = tensors(&features, &labels, width, &device);
    let noise = vec![0.0; parameter_count(&mlp)];
    let result =
        noisy_gradients(&mlp, Some((inputs, targets, None)), LossKind::Bce, &config, 1.0, &noise, &device).unwrap();
    assert_eq!(result.batch_size, 8);
    let mut index = 0;
    for layer in &mlp.layers {
        let weight = result.gradients.get::<2>(layer.weight.id).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let bias = result
            .gradients
            .get::<1>(layer.bias.as_ref().unwrap().id)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (actual, wanted) in [(weight, &expected[index]), (bias, &expected[index + 1])] {
            for (a, w) in actual.iter().zip(wanted.iter()) {
                assert!((f64::from(*a) - w).abs() < 1e-6 + 1e-5 * w.abs(), "layer part {index}: {a} vs {w}");
            }
        }
        index += 2;
    }
}

#[test]
fn noise_has_standard_deviation_sigma_c() {
    // An empty batch gives noise alone: N(0, (σC)²) per coordinate, divided by the expected size.
    let device = device::cpu().autodiff();
    let mlp = model(60, vec![80], Activation::Relu, 5, &device);
    let config = DpConfig { noise_multiplier: 1.3, max_grad_norm: 2.0, clipping: Clipping::Flat, noise_seed: Some(1) };
    let expected_batch = 4.0;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let noise = gaussian_noise(&mut rng, parameter_count(&mlp), config.noise_multiplier * config.max_grad_norm);
    let result = noisy_gradients(&mlp, None, LossKind::Bce, &config, expected_batch, &noise, &device).unwrap();
    let values = result.gradients.get::<2>(mlp.layers[0].weight.id).unwrap().into_data().try_to_vec::<f32>().unwrap();

    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let std = (values.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n).sqrt();
    let target = 1.3 * 2.0 / expected_batch;
    // 4,800 draws: the sample standard deviation is within 3% of σ with overwhelming probability.
    assert!((std - target).abs() < 0.03 * target, "std {std}, expected {target}");
    assert!(mean.abs() < 4.0 * target / n.sqrt(), "mean {mean}");
}

#[test]
fn huge_clip_without_noise_equals_sgd() {
    // q = 1 puts every row in every batch, so the noisy sum / N is the plain mean gradient.
    let (features, labels) = random_rows(64, 3, 6);
    let rows = Rows { features: &features, labels: &labels, weights: None, width: 3 };
    let empty = Rows { features: &[], labels: &[], weights: None, width: 3 };
    let base = TrainConfig {
        epochs: 3,
        batch_size: 64,
        learning_rate: 0.1,
        optimizer: OptimizerKind::Sgd,
        momentum: 0.0,
        weight_decay: 0.0,
        loss: LossKind::Bce,
        loss_threshold: None,
        patience: None,
        seed: 8,
        dp: None,
    };
    let private = TrainConfig {
        dp: Some(DpConfig { noise_multiplier: 0.0, max_grad_norm: 1e9, clipping: Clipping::Flat, noise_seed: Some(0) }),
        ..base.clone()
    };
    let shape = MlpConfig { inputs: 3, hidden: vec![5], activation: Activation::Tanh };
    let plain = fit(&shape, &base, rows, empty, &device::cpu(), &mut |_| {}).unwrap().model.to_weights().unwrap();
    let outcome = fit(&shape, &private, rows, empty, &device::cpu(), &mut |_| {}).unwrap();
    let dp = outcome.model.to_weights().unwrap();
    for (a, b) in plain.layers.iter().zip(&dp.layers) {
        for (x, y) in a.weight.iter().chain(&a.bias).zip(b.weight.iter().chain(&b.bias)) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
    }
    let privacy = outcome.privacy.unwrap();
    assert_eq!(privacy.steps, 3);
    assert_eq!(privacy.sample_rate, 1.0);
    assert!(!privacy.secure_noise);
}

#[test]
fn per_layer_clipping_bounds_each_layer() {
    let device = device::cpu().autodiff();
    let width = 4;
    let (features, labels) = random_rows(1, width, 10);
    let mlp = model(width, vec![6], Activation::Relu, 11, &device);
    let config =
        DpConfig { noise_multiplier: 0.0, max_grad_norm: 1e-3, clipping: Clipping::PerLayer, noise_seed: Some(0) };
    let (inputs, targets) = tensors(&features, &labels, width, &device);
    let noise = vec![0.0; parameter_count(&mlp)];
    let result =
        noisy_gradients(&mlp, Some((inputs, targets, None)), LossKind::Bce, &config, 1.0, &noise, &device).unwrap();
    let bound = 1e-3 / 2f64.sqrt();
    for layer in &mlp.layers {
        let weight = result.gradients.get::<2>(layer.weight.id).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let bias = result
            .gradients
            .get::<1>(layer.bias.as_ref().unwrap().id)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let layer_norm = norm(&[weight, bias]);
        assert!(layer_norm <= bound * (1.0 + 1e-4), "layer norm {layer_norm} above {bound}");
    }
}

#[test]
fn poisson_sample_has_expected_size() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut total = 0;
    for _ in 0..200 {
        let sample = poisson_sample(10_000, 0.01, &mut rng);
        assert!(sample.windows(2).all(|w| w[0] < w[1]), "indices not increasing");
        assert!(sample.iter().all(|&i| i < 10_000));
        total += sample.len();
    }
    // 200 draws of Binomial(10000, 0.01): mean 100, standard error of the mean 0.7.
    let mean = total as f64 / 200.0;
    assert!((mean - 100.0).abs() < 4.0, "mean batch size {mean}");
    assert_eq!(poisson_sample(5, 1.0, &mut rng), vec![0, 1, 2, 3, 4]);
}

#[test]
fn private_training_learns_blobs() {
    let (features, _) = random_rows(2000, 2, 13);
    let labels: Vec<bool> = (0..2000).map(|i| features[i * 2] + features[i * 2 + 1] > 0.0).collect();
    let rows = Rows { features: &features, labels: &labels, weights: None, width: 2 };
    let empty = Rows { features: &[], labels: &[], weights: None, width: 2 };
    let config = TrainConfig {
        epochs: 5,
        batch_size: 100,
        learning_rate: 0.05,
        optimizer: OptimizerKind::Adam,
        momentum: 0.0,
        weight_decay: 0.0,
        loss: LossKind::Bce,
        loss_threshold: None,
        patience: None,
        seed: 1,
        dp: Some(DpConfig { noise_multiplier: 1.0, max_grad_norm: 1.0, clipping: Clipping::Flat, noise_seed: None }),
    };
    let shape = MlpConfig { inputs: 2, hidden: vec![8], activation: Activation::Relu };
    let outcome = fit(&shape, &config, rows, empty, &device::cpu(), &mut |_| {}).unwrap();
    let probabilities = predict_probabilities(&outcome.model, &features, 2, &device::cpu()).unwrap();
    let correct = probabilities.iter().zip(&labels).filter(|(p, y)| (**p >= 0.5) == **y).count();
    assert!(correct as f64 / 2000.0 > 0.9, "accuracy {}", correct as f64 / 2000.0);
    let privacy = outcome.privacy.unwrap();
    assert_eq!(privacy.steps, 100);
    assert!(privacy.secure_noise);
}
