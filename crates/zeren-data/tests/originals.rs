//! The built-in copies against the original files in the shared datasets directory.
//!
//! `ZEREN_DATASETS` names that directory (`.ci/run` sets it). Without it these tests print a
//! notice and check nothing, because the originals are not part of the repository.

use std::io::Read;
use std::path::PathBuf;

use flate2::read::GzDecoder;
use zeren_data::DATASETS_DIR_ENV;

fn originals() -> Option<PathBuf> {
    match std::env::var_os(DATASETS_DIR_ENV) {
        Some(dir) => Some(PathBuf::from(dir).join("tabular")),
        None => {
            eprintln!("NOTICE: {DATASETS_DIR_ENV} is not set; built-in datasets were NOT compared with the originals");
            None
        }
    }
}

fn decompress(path: &str) -> Vec<u8> {
    let bytes = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("datasets").join(path)).unwrap();
    let mut out = Vec::new();
    GzDecoder::new(bytes.as_slice()).read_to_end(&mut out).unwrap();
    out
}

fn read_original(dir: &std::path::Path, path: &str) -> Vec<u8> {
    let full = dir.join(path);
    std::fs::read(&full)
        .unwrap_or_else(|e| panic!("{DATASETS_DIR_ENV} is set but {} cannot be read: {e}", full.display()))
}

#[test]
fn adult_and_german_are_unchanged_originals() {
    let Some(dir) = originals() else { return };
    for (ours, original) in [
        ("adult/adult.data.gz", "adult/adult.data"),
        ("adult/adult.test.gz", "adult/adult.test"),
        ("german/german.data.gz", "german/german.data"),
    ] {
        assert!(decompress(ours) == read_original(&dir, original), "{ours} differs from {original}");
    }
}

#[test]
fn compas_columns_equal_original_columns() {
    let Some(dir) = originals() else { return };
    let original = read_original(&dir, "compas/compas-scores-two-years.csv");
    let mut original = csv::Reader::from_reader(original.as_slice());
    let headers = original.headers().unwrap().clone();
    let ours_bytes = decompress("compas/compas-two-years.csv.gz");
    let mut ours = csv::Reader::from_reader(ours_bytes.as_slice());
    let our_headers = ours.headers().unwrap().clone();
    // The first occurrence of each kept column, as the reduced file was made.
    let indices: Vec<usize> = our_headers.iter().map(|name| headers.iter().position(|h| h == name).unwrap()).collect();

    let mut rows = 0;
    for (theirs, ours) in original.records().zip(ours.records()) {
        let (theirs, ours) = (theirs.unwrap(), ours.unwrap());
        let expected: Vec<&str> = indices.iter().map(|&i| &theirs[i]).collect();
        let actual: Vec<&str> = ours.iter().collect();
        assert_eq!(actual, expected, "row {}", rows + 1);
        rows += 1;
    }
    assert_eq!(rows, 7_214);
}
