//! Pool scanning: one parallel pass over the present physical ranges looking for endpoint pool tags.
use crate::error::{Error, Result};
use crate::record::{EndpointRecord, ImageFacts};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Options of one scan (the library form of `netcarve scan`'s flags).
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    pub dtb: Option<u64>,
    /// `--profile NAME|FILE`.
    pub profile: Option<String>,
    pub include_corrupt: bool,
    /// Worker threads; `None` = all cores.
    pub threads: Option<usize>,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// Compute the image's SHA-256.
    pub hash: bool,
}

/// Which profile was used and why (`profile` in scan JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileUse {
    pub name: String,
    pub reason: String,
    /// Offsets found by self-calibration, with the evidence; empty when none were needed.
    #[serde(default)]
    pub calibration: Vec<serde_json::Value>,
}

/// The result of a scan (`netcarve scan --format json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanOutput {
    pub image: ImageFacts,
    pub profile: ProfileUse,
    pub endpoints: Vec<EndpointRecord>,
    /// `--include-corrupt`: rejected candidates with their `reason`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub corrupt: Vec<EndpointRecord>,
}

/// Scans an image end to end.
pub fn scan_image(_path: &Path, _opts: &ScanOptions) -> Result<ScanOutput> {
    Err(Error::usage("scan is being written"))
}
