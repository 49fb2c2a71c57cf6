//! Measures detection throughput and the cost of marking a vocabulary of 5,000 tokens per step.
//!
//! ```text
//! CARGO_TARGET_DIR=release-target cargo run --release -p zeren-watermark --example detect_throughput
//! ```
//!
//! Everything runs on one thread. Each figure is the best of several repetitions. Besides wall
//! time, the example reads the thread's on-CPU time from `/proc/thread-self/schedstat` (Linux).
//! Time spent waiting for a core on a loaded machine then does not lower the throughput per core,
//! although caches and memory bandwidth shared with other processes still do.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use zeren_watermark::{Detector, DetectorConfig, GreenList, WatermarkKey, WatermarkParams, Watermarker};

const VOCAB_SIZE: usize = 5_000;
const DETECTION_TOKENS: usize = 2_000_000;
const REPETITIONS: usize = 3;

/// Wall time and on-CPU time of a piece of work.
#[derive(Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Option<Duration>,
}

/// Returns the thread's on-CPU time so far, or `None` where the kernel does not report it.
fn thread_cpu_time() -> Option<Duration> {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanoseconds = schedstat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanoseconds))
}

/// Returns the shortest wall time and the shortest on-CPU time of `REPETITIONS` runs of `work`.
fn best_of(mut work: impl FnMut()) -> Timing {
    let mut best = Timing { wall: Duration::MAX, cpu: None };
    for _ in 0..REPETITIONS {
        let (start, cpu_start) = (Instant::now(), thread_cpu_time());
        work();
        let (wall, cpu_end) = (start.elapsed(), thread_cpu_time());
        best.wall = best.wall.min(wall);
        if let (Some(cpu_start), Some(cpu_end)) = (cpu_start, cpu_end) {
            let cpu = cpu_end.saturating_sub(cpu_start);
            best.cpu = Some(best.cpu.map_or(cpu, |best_cpu| best_cpu.min(cpu)));
        }
    }
    best
}

/// Formats a time per item in microseconds, wall and on-CPU.
fn per_item_us(timing: Timing, items: f64) -> String {
    let wall = timing.wall.as_secs_f64() * 1e6 / items;
    match timing.cpu {
        Some(cpu) => format!("{wall:.2} us wall, {:.2} us on-CPU", cpu.as_secs_f64() * 1e6 / items),
        None => format!("{wall:.2} us wall"),
    }
}

fn main() {
    let key = WatermarkKey::from_bytes([42; 32]);
    let mut rng = ChaCha20Rng::seed_from_u64(0);
    let ids: Vec<u32> = (0..DETECTION_TOKENS).map(|_| rng.random_range(0..VOCAB_SIZE as u32)).collect();

    println!("detection of {DETECTION_TOKENS} random tokens over {VOCAB_SIZE} ids, one core:");
    for context_width in [1, 2, 4] {
        let params = WatermarkParams { context_width, ..WatermarkParams::default() };
        let detector = Detector::new(&key, &params, DetectorConfig::default()).unwrap();
        let timing = best_of(|| {
            black_box(detector.detect_ids(black_box(&ids), None));
        });
        let rate = |time: Duration| DETECTION_TOKENS as f64 / time.as_secs_f64() / 1e6;
        match timing.cpu {
            Some(cpu) => println!(
                "  h = {context_width}: {:.2} million tokens/s wall, {:.2} million tokens/s on-CPU",
                rate(timing.wall),
                rate(cpu)
            ),
            None => println!("  h = {context_width}: {:.2} million tokens/s wall", rate(timing.wall)),
        }
    }

    let params = WatermarkParams::default();
    let green_list = GreenList::new(&key, &params).unwrap();
    let steps = 2_000u32;
    let uncached = best_of(|| {
        for context in 0..steps {
            black_box(green_list.green_tokens(&[context], VOCAB_SIZE));
        }
    });
    println!("\nmarking a vocabulary of {VOCAB_SIZE} per generation step (h = 1):");
    println!("  green list computed: {}/step", per_item_us(uncached, f64::from(steps)));

    let watermarker = Watermarker::new(&key, params, VOCAB_SIZE, None).unwrap();
    let mut logits = vec![0.0f32; VOCAB_SIZE];
    for context in 0..steps {
        watermarker.apply(&[context], &mut logits).unwrap();
    }
    // Many passes, because the kernel updates on-CPU time only every few milliseconds.
    let passes = 100;
    let cached = best_of(|| {
        for _ in 0..passes {
            for context in 0..steps {
                watermarker.apply(black_box(&[context]), black_box(&mut logits)).unwrap();
            }
        }
    });
    let cached_steps = f64::from(steps) * f64::from(passes);
    println!("  Watermarker::apply with the list cached: {}/step", per_item_us(cached, cached_steps));

    // For scale: the output projection alone of a transformer with model width 256, one
    // matrix-vector product of 256 x 5,000, is a lower bound on the cost of one generation step.
    let width = 256;
    let weights: Vec<f32> = (0..width * VOCAB_SIZE).map(|_| rng.random_range(-0.1..0.1)).collect();
    let hidden: Vec<f32> = (0..width).map(|_| rng.random_range(-1.0..1.0)).collect();
    let projection = best_of(|| {
        for _ in 0..100 {
            for (token, logit) in logits.iter_mut().enumerate() {
                let row = &weights[token * width..(token + 1) * width];
                *logit = row.iter().zip(&hidden).map(|(w, h)| w * h).sum();
            }
            black_box(&logits);
        }
    });
    println!(
        "  for scale, a 256 x {VOCAB_SIZE} output projection (naive f32 loop): {}",
        per_item_us(projection, 100.0)
    );
}
