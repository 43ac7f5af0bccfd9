//! The memory side of a comparison: a scan's JSON output, a synth truth.json, or a freshly scanned
//! image, read within bounds.
use crate::carve::health::KindHealth;
use crate::error::{io_error, Error, Result};
use crate::record::{EndpointRecord, ImageFacts};
use serde::Deserialize;
use std::path::Path;

/// The memory side: a scan's output, a synth truth.json, or a freshly scanned image.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MemorySide {
    #[serde(default)]
    pub image: ImageFacts,
    pub endpoints: Vec<EndpointRecord>,
    /// The layout health of the scan (its time-slot census answers the research question from
    /// memory); empty for a truth.json, whose `profile` is only a name.
    #[serde(default, deserialize_with = "scan_profile")]
    pub profile: MemoryProfile,
    /// `scan-json` or `image` (set by the loader, not read from the file).
    #[serde(skip)]
    pub source: String,
}

/// What compare reads of a scan's `profile`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct MemoryProfile {
    #[serde(default)]
    pub health: Vec<KindHealth>,
}

fn scan_profile<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<MemoryProfile, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Scan(MemoryProfile),
        Name(#[allow(dead_code)] String),
    }
    Ok(match Either::deserialize(d)? {
        Either::Scan(p) => p,
        Either::Name(_) => MemoryProfile::default(),
    })
}

/// Longest memory-side JSON read (a scan of about 400,000 endpoints); larger is refused.
pub const MAX_MEMORY_JSON_BYTES: u64 = 256 << 20;

fn memory_json_too_large(path: &Path) -> Error {
    Error::file(
        path,
        format!(
            "more than {} MiB: too large for a scan JSON",
            MAX_MEMORY_JSON_BYTES >> 20
        ),
    )
}

/// Cuts every text field of the memory side's endpoints to
/// [`MAX_TEXT_CHARS`](crate::capture::MAX_TEXT_CHARS), with a warning naming the endpoint: a scan
/// JSON is a file anyone can edit, and a 70,000-character "process name" is an attack on the
/// renderers, not a name.
fn bound_memory_text(side: &mut MemorySide) {
    let max = crate::capture::MAX_TEXT_CHARS;
    let mut warnings = Vec::new();
    for (i, m) in side.endpoints.iter_mut().enumerate() {
        let mut fields: Vec<(&str, &mut String)> =
            vec![("local_addr", &mut m.local_addr), ("tag", &mut m.tag)];
        fields.extend(m.process.as_mut().map(|v| ("process", v)));
        fields.extend(m.process_raw.as_mut().map(|v| ("process_raw", v)));
        fields.extend(m.remote_addr.as_mut().map(|v| ("remote_addr", v)));
        fields.extend(m.create_time.as_mut().map(|v| ("create_time", v)));
        fields.extend(m.reason.as_mut().map(|v| ("reason", v)));
        fields.extend(m.flags.iter_mut().map(|v| ("flags", v)));
        for (name, text) in fields {
            if let Some(len) = crate::capture::bound_text(text) {
                warnings.push(format!(
                    "endpoint {} (at {}): {name} of {len} characters cut to {max}",
                    i + 1,
                    m.physical_offset
                ));
            }
        }
    }
    side.image.warnings.extend(warnings);
}

/// Reads `path` as a memory-side JSON when it is one (a JSON object with `endpoints`); `Ok(None)`
/// means "not JSON, treat it as an image".
pub fn load_memory_json(path: &Path) -> Result<Option<MemorySide>> {
    use std::io::Read;
    let mut file = crate::evidence::open_input(path, "memory image or scan JSON")?;
    let mut head = [0u8; 64];
    let n = file.read(&mut head).map_err(|e| io_error(path, &e))?;
    // JSON text starts `{"` (or `{}`) and has no control bytes; an image's first bytes rarely do.
    let head = head.get(..n).unwrap_or(&[]);
    let text_like = head
        .iter()
        .all(|b| !b.is_ascii_control() || b.is_ascii_whitespace());
    let mut significant = head.iter().filter(|b| !b.is_ascii_whitespace());
    let looks_json = text_like
        && significant.next() == Some(&b'{')
        && matches!(significant.next(), Some(b'"' | b'}'));
    if !looks_json {
        return Ok(None);
    }
    // The rest is read from the same handle (a pipe cannot be opened twice), with a bound.
    let mut bytes = head.to_vec();
    let rest_max = MAX_MEMORY_JSON_BYTES.saturating_sub(bytes.len() as u64);
    if file
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() > MAX_MEMORY_JSON_BYTES)
    {
        return Err(memory_json_too_large(path));
    }
    file.take(rest_max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, &e))?;
    if bytes.len() as u64 > MAX_MEMORY_JSON_BYTES {
        return Err(memory_json_too_large(path));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::file(
            path,
            format!(
                "not UTF-8 text (invalid byte at {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::file(
            path,
            format!(
                "line {} column {}: invalid JSON ({})",
                e.line(),
                e.column(),
                e.to_string().split(" at line ").next().unwrap_or("")
            ),
        )
    })?;
    if value.get("endpoints").is_none() {
        return Err(Error::file(
            path,
            "JSON without \"endpoints\": not the output of `netcarve scan --format json`",
        ));
    }
    let mut side: MemorySide = serde_json::from_value(value)
        .map_err(|e| Error::file(path, format!("not a scan output: {e}")))?;
    side.source = "scan-json".to_string();
    bound_memory_text(&mut side);
    if side.image.file.is_none() {
        side.image.file = Some(path.display().to_string());
    }
    Ok(Some(side))
}
