//! Measures how long a BPE tokenizer takes to learn from a corpus and how fast it encodes it.
//!
//! ```text
//! cargo run --release -p zeren-watermark --example bpe_throughput -- CORPUS.txt [VOCAB_SIZE]
//! ```
//!
//! Prints the vocabulary learned, the learning time, the bytes per token on the corpus and the
//! encoding speed in MB/s on one thread (best of three), which bounds detection speed on text.

use std::error::Error;
use std::time::Instant;

use zeren_watermark::Tokenizer;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let corpus = args.first().ok_or("usage: bpe_throughput CORPUS.txt [VOCAB_SIZE]")?;
    let vocab_size: usize = args.get(1).map_or(Ok(1024), |s| s.parse())?;
    let text = std::fs::read_to_string(corpus)?;

    let started = Instant::now();
    let tokenizer = Tokenizer::fit_bpe(&text, vocab_size)?;
    let fit_seconds = started.elapsed().as_secs_f64();

    let mut best = f64::INFINITY;
    let mut tokens = 0;
    for _ in 0..3 {
        let started = Instant::now();
        tokens = std::hint::black_box(tokenizer.encode(&text)).len();
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "{corpus}: {} bytes, vocabulary {}, learned in {fit_seconds:.2} s, {tokens} tokens ({:.2} bytes each), \
         encoding {:.1} MB/s on one thread",
        text.len(),
        tokenizer.vocab_size(),
        text.len() as f64 / tokens as f64,
        text.len() as f64 / 1e6 / best
    );
    Ok(())
}
