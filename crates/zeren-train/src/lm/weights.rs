//! Saving and loading a language model as one safetensors file.
//!
//! The layout is the safetensors format (Hugging Face, <https://github.com/huggingface/safetensors>,
//! "Format" section): an 8-byte little-endian header length `N`, `N` bytes of JSON mapping each
//! tensor name to its dtype, shape and byte range, then the raw little-endian `f32` values. The
//! model configuration travels in the header's `__metadata__` as a JSON string, so one file is
//! the whole model. The bytes depend only on the weights and the configuration, so equal models
//! give equal files and equal digests.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use burn::tensor::{Device, TensorData};
use serde_json::{Map, Value, json};

use crate::TrainError;
use crate::lm::{TransformerLm, TransformerLmConfig};

/// Value of the `format` metadata key that marks a zeren language model.
const FORMAT: &str = "zeren-transformer-lm";

/// Largest header a file may declare: 100 MB, the limit the reference safetensors reader uses.
const MAX_HEADER_BYTES: u64 = 100_000_000;

impl TransformerLm {
    /// Serialises the weights and the configuration in safetensors layout.
    ///
    /// # Errors
    ///
    /// Returns [`TrainError::Backend`] when a tensor cannot be read back from the device.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TrainError> {
        let config = serde_json::to_string(self.config()).map_err(|e| TrainError::Backend(e.to_string()))?;
        let mut header = Map::new();
        header.insert("__metadata__".into(), json!({ "format": FORMAT, "config": config }));

        let mut data = Vec::new();
        for (name, tensor) in self.named_tensors() {
            let values = tensor.try_to_vec::<f32>().map_err(|e| TrainError::Backend(format!("{e:?}")))?;
            let start = data.len();
            for value in values {
                data.extend_from_slice(&value.to_le_bytes());
            }
            header.insert(
                name,
                json!({ "dtype": "F32", "shape": tensor.shape().as_slice(), "data_offsets": [start, data.len()] }),
            );
        }

        // serde_json's map is ordered by key, so the header bytes are deterministic. Trailing
        // spaces align the data to 8 bytes, which the format allows.
        let mut header = Value::Object(header).to_string().into_bytes();
        header.resize(header.len().next_multiple_of(8), b' ');
        let mut bytes = Vec::with_capacity(8 + header.len() + data.len());
        bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&data);
        Ok(bytes)
    }

    /// Rebuilds a model from bytes written by [`TransformerLm::to_bytes`].
    ///
    /// # Errors
    ///
    /// Returns [`TrainError::InvalidWeights`] when the bytes are not a zeren language model in
    /// safetensors layout, a tensor is missing, unexpected or of the wrong shape, or the stored
    /// configuration is invalid.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self, TrainError> {
        let invalid = |message: String| TrainError::InvalidWeights(message);
        let Some((length, rest)) = bytes.split_first_chunk::<8>() else {
            return Err(invalid(format!("the file has {} bytes, too few for a safetensors header", bytes.len())));
        };
        let length = u64::from_le_bytes(*length);
        if length > MAX_HEADER_BYTES || length > rest.len() as u64 {
            return Err(invalid(format!("the header length {length} does not fit the file of {} bytes", bytes.len())));
        }
        let (header, data) = rest.split_at(length as usize);
        let header: Map<String, Value> =
            serde_json::from_slice(header).map_err(|e| invalid(format!("the header is not JSON: {e}")))?;

        let metadata = header.get("__metadata__").and_then(Value::as_object);
        let format = metadata.and_then(|m| m.get("format")).and_then(Value::as_str);
        if format != Some(FORMAT) {
            return Err(invalid(format!(
                "the file is not a zeren language model (format {format:?}, expected {FORMAT})"
            )));
        }
        let config = metadata
            .and_then(|m| m.get("config"))
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("the header has no model configuration".into()))?;
        let config: TransformerLmConfig =
            serde_json::from_str(config).map_err(|e| invalid(format!("the model configuration is invalid: {e}")))?;
        config.validate().map_err(|e| invalid(e.to_string()))?;

        let mut tensors = HashMap::new();
        for (name, entry) in header.iter().filter(|(name, _)| *name != "__metadata__") {
            tensors.insert(name.clone(), read_tensor(name, entry, data)?);
        }
        let model = Self::from_named_tensors(&config, &mut tensors, device)?;
        if let Some(extra) = tensors.keys().min() {
            return Err(invalid(format!("tensor '{extra}' is not part of the model")));
        }
        Ok(model)
    }

    /// Writes the model to `path` atomically: to a temporary file in the same directory first,
    /// then renamed over `path`, so a reader never sees a half-written file.
    ///
    /// # Errors
    ///
    /// Returns [`TrainError::Io`] when the file cannot be written, and [`TrainError::Backend`]
    /// when a tensor cannot be read back.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let bytes = self.to_bytes()?;
        write_atomically(path, &bytes)
    }

    /// Reads a model that [`TransformerLm::save`] wrote.
    ///
    /// # Errors
    ///
    /// Returns [`TrainError::Io`] when the file cannot be read, and
    /// [`TrainError::InvalidWeights`] when its content is not a valid model.
    pub fn load(path: &Path, device: &Device) -> Result<Self, TrainError> {
        let bytes = std::fs::read(path).map_err(|source| TrainError::Io { path: path.to_path_buf(), source })?;
        Self::from_bytes(&bytes, device)
    }
}

fn read_tensor(name: &str, entry: &Value, data: &[u8]) -> Result<TensorData, TrainError> {
    let invalid = |what: &str| TrainError::InvalidWeights(format!("tensor '{name}' {what}"));
    if entry.get("dtype").and_then(Value::as_str) != Some("F32") {
        return Err(invalid("is not of dtype F32"));
    }
    let shape: Vec<usize> = entry
        .get("shape")
        .and_then(Value::as_array)
        .and_then(|dims| dims.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
        .ok_or_else(|| invalid("has no valid shape"))?;
    let offsets: Vec<usize> = entry
        .get("data_offsets")
        .and_then(Value::as_array)
        .and_then(|pair| pair.iter().map(|o| o.as_u64().map(|o| o as usize)).collect())
        .ok_or_else(|| invalid("has no valid data offsets"))?;
    let &[start, end] = offsets.as_slice() else {
        return Err(invalid("has no valid data offsets"));
    };
    let expected = shape.iter().try_fold(4usize, |bytes, &d| bytes.checked_mul(d));
    if start > end || end > data.len() || expected != Some(end - start) {
        return Err(invalid("has a byte range that does not match its shape or the file"));
    }
    let values: Vec<f32> =
        data[start..end].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok(TensorData::new(values, shape))
}

/// Writes `bytes` to a temporary file next to `path`, flushes it to disk, then renames it over
/// `path`. A rename within one directory is atomic on POSIX file systems.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let io_error = |source| TrainError::Io { path: path.to_path_buf(), source };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(directory).map_err(io_error)?;
    file.write_all(bytes).map_err(io_error)?;
    file.as_file().sync_all().map_err(io_error)?;
    file.persist(path).map_err(|e| io_error(e.error))?;
    Ok(())
}
