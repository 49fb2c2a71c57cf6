//! Statistical and end-to-end tests of detection: the null distribution of p-values, watermarked
//! samples from a toy model, and the guards that withhold a verdict.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use zeren_watermark::stats::{binomial_upper_tail, ln_binomial_pmf};
use zeren_watermark::{
    Detector, DetectorConfig, GreenList, Tokenizer, Verdict, WatermarkKey, WatermarkParams, Watermarker,
};

fn key() -> WatermarkKey {
    WatermarkKey::derive(b"a test secret of thirty-two bytes").unwrap()
}

fn detector(params: &WatermarkParams) -> Detector {
    Detector::new(&key(), params, DetectorConfig::default()).unwrap()
}

fn random_ids(rng: &mut ChaCha20Rng, range: std::ops::Range<u32>, length: usize) -> Vec<u32> {
    (0..length).map(|_| rng.random_range(range.clone())).collect()
}

/// Samples `length` tokens after `prefix` from uniform logits with the watermark applied, by
/// inverse-CDF sampling from the softmax. `first_id` excludes ids below it, such as the unknown
/// token.
fn sample_watermarked(
    watermarker: &Watermarker,
    vocab_size: usize,
    first_id: usize,
    prefix: &[u32],
    length: usize,
    rng: &mut ChaCha20Rng,
) -> Vec<u32> {
    let mut tokens = prefix.to_vec();
    for _ in 0..length {
        let mut logits = vec![0.0f32; vocab_size];
        watermarker.apply(&tokens, &mut logits).unwrap();
        let weights: Vec<f64> = logits.iter().map(|&logit| f64::from(logit).exp()).collect();
        let total: f64 = weights[first_id..].iter().sum();
        let mut draw = rng.random::<f64>() * total;
        let mut next = vocab_size - 1;
        for (id, weight) in weights.iter().enumerate().skip(first_id) {
            if draw < *weight {
                next = id;
                break;
            }
            draw -= weight;
        }
        tokens.push(next as u32);
    }
    tokens[prefix.len()..].to_vec()
}

/// Draws a fresh key: the false-positive guarantee is over keys chosen independently of the text.
/// With one fixed key, texts that share (context, token) pairs share their green draws, and with
/// a tiny vocabulary the key's realized green share of all pairs can sit visibly off gamma.
fn random_detector(rng: &mut ChaCha20Rng, params: &WatermarkParams) -> Detector {
    let key = WatermarkKey::from_bytes(rng.random());
    Detector::new(&key, params, DetectorConfig::default()).unwrap()
}

#[test]
fn null_p_values_are_conservative_and_near_uniform() {
    let params = WatermarkParams::default();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let samples = 2_000;

    let mut p_values = Vec::with_capacity(samples);
    let mut randomized = Vec::with_capacity(samples);
    for _ in 0..samples {
        // 201 tokens over 5,000 ids give 200 scored tokens, less a rare repeated pair.
        let ids = random_ids(&mut rng, 0..5_000, 201);
        let detection = random_detector(&mut rng, &params).detect_ids(&ids, None);
        let (green, scored) = (detection.green_tokens as u64, detection.scored_tokens as u64);
        assert!(scored >= 198, "{scored} scored tokens");
        p_values.push(detection.p_value);
        // P(X > k) + U P(X = k) is exactly uniform under the null, which removes the binomial's
        // discreteness from the Kolmogorov-Smirnov test.
        let above = binomial_upper_tail(green + 1, scored, params.gamma).p_value;
        let at = ln_binomial_pmf(green, scored, params.gamma).exp();
        randomized.push(above + rng.random::<f64>() * at);
    }

    // The exact test is conservative: P(p <= a) <= a, up to sampling error (three standard
    // errors of the rejection rate).
    for level in [0.001, 0.01, 0.05, 0.1, 0.25, 0.5] {
        let rate = p_values.iter().filter(|&&p| p <= level).count() as f64 / samples as f64;
        let slack = 3.0 * (level * (1.0 - level) / samples as f64).sqrt();
        assert!(rate <= level + slack, "P(p <= {level}) = {rate}");
    }

    // 1.63 / sqrt(N) is the Kolmogorov-Smirnov critical value at significance 0.01.
    let critical = 1.63 / (samples as f64).sqrt();
    let randomized_distance = ks_distance_from_uniform(&mut randomized);
    assert!(randomized_distance < critical, "randomized p-values: D = {randomized_distance}");
    // The plain p-value's CDF touches the uniform CDF at each attainable p-value and lags it by at
    // most one probability mass of Bin(200, 0.25) in between.
    let max_mass = (0..=200).map(|k| ln_binomial_pmf(k, 200, params.gamma).exp()).fold(0.0, f64::max);
    let distance = ks_distance_from_uniform(&mut p_values);
    assert!(distance < max_mass + critical, "p-values: D = {distance}, largest mass {max_mass}");
}

/// Returns the Kolmogorov-Smirnov distance between the empirical CDF of `values` and U(0, 1).
fn ks_distance_from_uniform(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    values
        .iter()
        .enumerate()
        .map(|(i, &value)| (value - i as f64 / n).abs().max(((i + 1) as f64 / n - value).abs()))
        .fold(0.0, f64::max)
}

#[test]
fn null_conservative_with_wide_context() {
    let params = WatermarkParams { context_width: 3, gamma: 0.5, ..WatermarkParams::default() };
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let samples = 1_000;
    let mut rejections = 0;
    for _ in 0..samples {
        // 300 tokens over 8 ids repeat some of the 4,096 possible (context, token) pairs.
        let ids = random_ids(&mut rng, 0..8, 300);
        let detection = random_detector(&mut rng, &params).detect_ids(&ids, None);
        rejections += usize::from(detection.p_value <= 0.05);
    }
    let slack = 3.0 * (0.05f64 * 0.95 / samples as f64).sqrt();
    assert!(rejections as f64 / samples as f64 <= 0.05 + slack, "{rejections} of {samples} below 0.05");
}

#[test]
fn watermarked_sample_is_detected_with_high_z() {
    let params = WatermarkParams::default();
    let vocab_size = 1_000;
    let watermarker = Watermarker::new(&key(), params, vocab_size, None).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let mut tokens = vec![17];
    tokens.extend(sample_watermarked(&watermarker, vocab_size, 0, &[17], 300, &mut rng));

    let detection = detector(&params).detect_ids(&tokens, None);
    // Uniform logits and delta 2 make a token green with probability 0.25 e^2 / (0.25 e^2 + 0.75)
    // = 0.71, so 300 tokens have an expected z of about 18.
    assert_eq!(detection.verdict, Verdict::Watermarked);
    assert!(detection.z_score > 12.0, "z = {}", detection.z_score);
    assert!(detection.green_fraction > 0.6, "green fraction {}", detection.green_fraction);
    assert!(detection.ln_p_value < -60.0, "ln p = {}", detection.ln_p_value);

    let other_key = WatermarkKey::derive(b"another secret of thirty-two by.").unwrap();
    let other = Detector::new(&other_key, &params, DetectorConfig::default()).unwrap().detect_ids(&tokens, None);
    assert_eq!(other.verdict, Verdict::NotWatermarked, "z = {} under another key", other.z_score);
}

#[test]
fn repeated_pairs_are_scored_once() {
    let detector = detector(&WatermarkParams::default());
    let ids: Vec<u32> = [5u32, 9].iter().copied().cycle().take(200).collect();
    let detection = detector.detect_ids(&ids, None);
    assert_eq!(detection.tokens, 200);
    // Only the pairs (5, 9) and (9, 5) are new; the other 197 repeat one of them.
    assert_eq!(detection.scored_tokens, 2);
    assert_eq!(detection.verdict, Verdict::TooShort);
}

#[test]
fn repeated_watermarked_passage_counts_once() {
    let params = WatermarkParams::default();
    let watermarker = Watermarker::new(&key(), params, 500, None).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let passage = sample_watermarked(&watermarker, 500, 0, &[1], 40, &mut rng);
    let once = detector(&params).detect_ids(&passage, None);
    let repeated: Vec<u32> = passage.iter().copied().cycle().take(passage.len() * 10).collect();
    let tenfold = detector(&params).detect_ids(&repeated, None);
    // Ten copies add only the pair that joins the end of one copy to the start of the next.
    assert_eq!(tenfold.scored_tokens, once.scored_tokens + 1);
    assert!(tenfold.green_tokens <= once.green_tokens + 1);
}

#[test]
fn short_all_green_text_gets_no_verdict() {
    let params = WatermarkParams::default();
    let list = GreenList::new(&key(), &params).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut ids = vec![1u32];
    while ids.len() < 13 {
        let green = list.green_tokens(&ids, 10_000).unwrap();
        ids.push(green[rng.random_range(0..green.len())]);
    }

    let detection = detector(&params).detect_ids(&ids, None);
    assert_eq!(detection.scored_tokens, 12);
    assert_eq!(detection.green_tokens, 12);
    // 0.25^12 = 6e-8 would pass any usual false-positive rate, but 12 < 16 scored tokens.
    assert!(detection.p_value < 1e-7, "p = {}", detection.p_value);
    assert_eq!(detection.verdict, Verdict::TooShort);
    assert!(!detection.is_watermarked());
}

#[test]
fn empty_text_is_too_short() {
    let detection = detector(&WatermarkParams::default()).detect(&Tokenizer::byte_level(), "");
    assert_eq!(detection.verdict, Verdict::TooShort);
    assert_eq!(detection.scored_tokens, 0);
    assert_eq!(detection.p_value, 1.0);
    assert_eq!(detection.z_score, 0.0);
}

#[test]
fn unknown_heavy_text_reports_tokenizer_mismatch() {
    let tokenizer = Tokenizer::fit_chars("the quick brown fox jumps over the lazy dog", 1).unwrap();
    let detector = detector(&WatermarkParams::default());

    let chinese = "敏捷的棕色狐狸跳过了那只懒狗，然后又跳了回来，一直跳到天黑。".repeat(4);
    let detection = detector.detect(&tokenizer, &chinese);
    assert_eq!(detection.verdict, Verdict::TokenizerMismatch);
    assert_eq!(detection.unknown_tokens, detection.tokens);
    assert_eq!(detection.scored_tokens, 0);

    // A few unknown characters in otherwise known text still get a verdict.
    let mostly_known = "the lazy dog jumps over the quick brown fox 狐狸 and the dog".repeat(3);
    let detection = detector.detect(&tokenizer, &mostly_known);
    assert_eq!(detection.verdict, Verdict::NotWatermarked);
    assert_eq!(detection.unknown_tokens, 6);
}

/// Builds a character tokenizer over 500 Chinese characters and the 26 lowercase letters.
fn mixed_tokenizer() -> Tokenizer {
    let chars: Vec<char> = (0x4E00u32..0x4E00 + 500).filter_map(char::from_u32).chain('a'..='z').collect();
    Tokenizer::from_chars(chars).unwrap()
}

#[test]
fn window_scan_finds_inserted_passage() {
    let params = WatermarkParams::default();
    let tokenizer = mixed_tokenizer();
    let vocab_size = tokenizer.vocab_size();
    let watermarker = Watermarker::for_tokenizer(&key(), params, &tokenizer).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(17);

    // 1,500 random tokens, a 300-token watermarked passage, 1,500 random tokens; id 0 is unknown.
    let mut ids = random_ids(&mut rng, 1..vocab_size as u32, 1_500);
    let passage = sample_watermarked(&watermarker, vocab_size, 1, &ids, 300, &mut rng);
    ids.extend(&passage);
    ids.extend(random_ids(&mut rng, 1..vocab_size as u32, 1_500));
    let text = tokenizer.decode(&ids);
    let detector = detector(&params);

    let whole = detector.detect(&tokenizer, &text);
    assert!(whole.z_score > 3.0, "whole text z = {}", whole.z_score);

    let window = 100;
    let scan = detector.scan_windows(&tokenizer, &text, window).unwrap();
    assert_eq!(scan.windows, whole.scored_tokens - window + 1);
    assert_eq!(scan.window_fpr, 0.01 / scan.windows as f64);
    assert_eq!(scan.spans.len(), 1, "{:?}", scan.spans);
    let span = &scan.spans[0];
    // A flagged window may reach less than one window into the random text on either side.
    assert!((1_500 - window..=1_560).contains(&span.tokens.start), "span {:?}", span.tokens);
    assert!((1_740..=1_800 + window).contains(&span.tokens.end), "span {:?}", span.tokens);
    assert!(span.green_fraction > 0.5, "green fraction {}", span.green_fraction);
    assert!(span.min_window_p_value <= scan.window_fpr);

    // A character tokenizer has one token per character, and every Chinese character is 3 bytes.
    assert_eq!(span.chars, span.tokens);
    let expected: String = text.chars().skip(span.chars.start).take(span.chars.len()).collect();
    assert_eq!(&text[span.bytes.clone()], expected);
    assert_eq!(span.bytes.len(), text[span.bytes.clone()].chars().map(char::len_utf8).sum::<usize>());
}

#[test]
fn window_scan_of_unwatermarked_text_finds_nothing() {
    let tokenizer = mixed_tokenizer();
    let mut rng = ChaCha20Rng::seed_from_u64(19);
    let text = tokenizer.decode(&random_ids(&mut rng, 1..tokenizer.vocab_size() as u32, 5_000));
    let scan = detector(&WatermarkParams::default()).scan_windows(&tokenizer, &text, 100).unwrap();
    assert!(scan.windows > 4_800);
    assert!(scan.spans.is_empty(), "{:?}", scan.spans);
}

#[test]
fn window_scan_rejects_windows_below_minimum() {
    let detector = detector(&WatermarkParams::default());
    let error = detector.scan_windows(&Tokenizer::byte_level(), "text", 8).unwrap_err();
    assert_eq!(error.to_string(), "invalid window 8; expected at least the minimum of 16 scored tokens");
}

#[test]
fn window_scan_of_short_text_tests_no_windows() {
    let scan = detector(&WatermarkParams::default()).scan_windows(&Tokenizer::byte_level(), "short text", 50).unwrap();
    assert_eq!(scan.windows, 0);
    assert!(scan.spans.is_empty());
}
