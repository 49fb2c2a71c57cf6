//! Precision and recall of the recognizers on generated labelled text (real sentences from the
//! shared datasets directory named by `ZEREN_DATASETS`).

mod labelled;

use std::collections::BTreeMap;
use std::path::PathBuf;

use zeren_pii::{EntityType, Scanner};

fn datasets() -> Option<PathBuf> {
    match std::env::var_os("ZEREN_DATASETS") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => {
            eprintln!("NOTICE: ZEREN_DATASETS is not set; the PII evaluation on real sentences did NOT run");
            None
        }
    }
}

#[test]
fn checksum_types_reach_99_percent() {
    let Some(dir) = datasets() else { return };
    let (en, zh) = labelled::sentences(&dir, 3000);
    let lines = labelled::generate(&en, &zh, 6000, 1);
    let scanner = Scanner::new();

    // (true positives, false positives, false negatives) by entity.
    let mut counts: BTreeMap<EntityType, (usize, usize, usize)> = BTreeMap::new();
    for line in &lines {
        let findings: Vec<(EntityType, usize, usize)> = scanner
            .scan(&line.text)
            .into_iter()
            .filter(|f| f.score >= 0.5)
            .map(|f| (f.entity, f.start, f.end))
            .collect();
        for truth in &line.truth {
            let entry = counts.entry(truth.0).or_default();
            if findings.contains(truth) { entry.0 += 1 } else { entry.2 += 1 }
        }
        for finding in &findings {
            if !line.truth.contains(finding) {
                counts.entry(finding.0).or_default().1 += 1;
            }
        }
    }

    for entity in
        [EntityType::CnResidentId, EntityType::CreditCard, EntityType::IbanCode, EntityType::CnUscc, EntityType::UsSsn]
    {
        let (tp, fp, fn_) = counts.get(&entity).copied().unwrap_or_default();
        let precision = tp as f64 / (tp + fp).max(1) as f64;
        let recall = tp as f64 / (tp + fn_).max(1) as f64;
        assert!(tp > 50, "{entity:?}: only {tp} true positives generated");
        assert!(recall >= 0.99, "{entity:?}: recall {recall} ({tp} found, {fn_} missed)");
        assert!(precision >= 0.99, "{entity:?}: precision {precision} ({fp} false positives)");
    }
}

#[test]
fn clean_sentences_have_no_findings() {
    let Some(dir) = datasets() else { return };
    let (en, zh) = labelled::sentences(&dir, 3000);
    let scanner = Scanner::new();
    let mut bytes = 0;
    let mut findings = Vec::new();
    for sentence in en.iter().chain(&zh) {
        bytes += sentence.len();
        findings.extend(
            scanner
                .scan(sentence)
                .into_iter()
                .filter(|f| f.score >= 0.5)
                .map(|f| (f.entity, sentence[f.start..f.end].to_string())),
        );
    }
    // Reviews mention web sites now and then, which are real URLs, not errors.
    let errors: Vec<_> = findings.iter().filter(|(e, _)| *e != EntityType::Url).collect();
    assert!(errors.is_empty(), "{} findings in {bytes} clean bytes: {errors:?}", errors.len());
}
