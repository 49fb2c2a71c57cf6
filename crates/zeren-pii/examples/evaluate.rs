//! Evaluates the recognizers on generated labelled text and measures throughput.
//!
//! `ZEREN_DATASETS=DIR cargo run --release -p zeren-pii --example evaluate -- [TEXT_OUT]`
//!
//! Prints precision, recall and F2 per entity type, false positives per megabyte of the clean
//! sentences, and single-thread throughput in MB/s on the mixed text. With `TEXT_OUT`, the mixed
//! text is also written there, one line per generated line, for other tools to scan.

#[path = "../tests/labelled.rs"]
mod labelled;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use zeren_pii::{EntityType, Scanner};

fn main() {
    let Some(dir) = std::env::var_os("ZEREN_DATASETS").map(PathBuf::from) else {
        eprintln!("set ZEREN_DATASETS to the directory with text/reviews and text/zh");
        std::process::exit(2);
    };
    let (en, zh) = labelled::sentences(&dir, 20_000);
    let lines = labelled::generate(&en, &zh, 40_000, 7);
    let scanner = Scanner::new();

    let mut counts: BTreeMap<EntityType, [usize; 3]> = BTreeMap::new();
    for line in &lines {
        let findings: Vec<(EntityType, usize, usize)> = scanner
            .scan(&line.text)
            .into_iter()
            .filter(|f| f.score >= 0.5)
            .map(|f| (f.entity, f.start, f.end))
            .collect();
        for truth in &line.truth {
            counts.entry(truth.0).or_default()[if findings.contains(truth) { 0 } else { 2 }] += 1;
        }
        for finding in findings.iter().filter(|f| !line.truth.contains(f)) {
            counts.entry(finding.0).or_default()[1] += 1;
        }
    }
    println!("| entity | true positives | false positives | false negatives | precision | recall | F2 |");
    println!("|---|---|---|---|---|---|---|");
    for (entity, [tp, fp, fn_]) in &counts {
        let precision = *tp as f64 / (tp + fp).max(1) as f64;
        let recall = *tp as f64 / (tp + fn_).max(1) as f64;
        let f2 = 5.0 * precision * recall / (4.0 * precision + recall).max(f64::MIN_POSITIVE);
        println!("| {} | {tp} | {fp} | {fn_} | {precision:.4} | {recall:.4} | {f2:.4} |", entity.name());
    }

    let clean: Vec<&String> = en.iter().chain(&zh).collect();
    let clean_bytes: usize = clean.iter().map(|s| s.len()).sum();
    let clean_findings: usize = clean
        .iter()
        .map(|s| scanner.scan(s).into_iter().filter(|f| f.score >= 0.5 && f.entity != EntityType::Url).count())
        .sum();
    println!(
        "\nclean sentences: {clean_bytes} bytes, {clean_findings} findings other than URLs, {:.2} per MB",
        clean_findings as f64 / (clean_bytes as f64 / 1e6)
    );

    let text: String = lines.iter().map(|l| format!("{}\n", l.text)).collect();
    let start = Instant::now();
    let mut found = 0;
    for line in text.lines() {
        found += scanner.scan(line).len();
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "throughput: {:.1} MB/s on one thread ({} bytes, {found} findings, {seconds:.3} s)",
        text.len() as f64 / 1e6 / seconds,
        text.len()
    );
    if let Some(path) = std::env::args().nth(1) {
        std::fs::write(&path, &text).expect("writable output path");
    }
}
