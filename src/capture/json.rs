//! JSON captures: one document, PowerShell's `{"value": [...]}` wrapper, a single object or JSONL
//! → numbered rows; which producer wrote them; and the typed reads of their fields.
use super::CaptureFormat;
use crate::error::Fault;
use serde_json::{Map, Value};

/// A JSON capture's rows with their 1-based position (array index, or line for JSONL), plus the
/// top-level object when the file is one object (netcarve's own format).
pub struct JsonRows {
    pub top: Option<Map<String, Value>>,
    pub rows: Vec<(u64, Value)>,
    pub warnings: Vec<String>,
}

pub(super) fn looks_like_json(text: &str) -> bool {
    matches!(text.trim_start().chars().next(), Some('{' | '['))
}

/// Parses a JSON document, a single object, PowerShell's `{"value": [...], "Count": n}` wrapper, or
/// JSONL. A truncated last JSONL line is skipped with a warning; any other syntax error is fatal.
pub(super) fn load_json(text: &str) -> std::result::Result<JsonRows, Fault> {
    let whole: std::result::Result<Value, _> = serde_json::from_str(text);
    match whole {
        Ok(Value::Array(items)) => Ok(JsonRows {
            top: None,
            rows: number_rows(items),
            warnings: Vec::new(),
        }),
        Ok(Value::Object(obj)) => {
            if let Some(Value::Array(items)) = obj.get("value") {
                let items = items.clone();
                return Ok(JsonRows {
                    top: None,
                    rows: number_rows(items),
                    warnings: Vec::new(),
                });
            }
            let is_table = obj.get("tcp").is_some() || obj.get("udp").is_some();
            if is_table || obj.get("format").is_some() {
                return Ok(JsonRows {
                    top: Some(obj),
                    rows: Vec::new(),
                    warnings: Vec::new(),
                });
            }
            // ConvertTo-Json writes a single object, not an array, when there is one row.
            Ok(JsonRows {
                top: None,
                rows: vec![(1, Value::Object(obj))],
                warnings: Vec::new(),
            })
        }
        Ok(other) => Err(fault!(
            Structure,
            "expected a JSON array or object, found {}",
            json_kind(&other)
        )),
        Err(whole_err) => {
            let lines: Vec<(u64, &str)> = text
                .lines()
                .enumerate()
                .map(|(i, l)| (i as u64 + 1, l.trim()))
                .filter(|(_, l)| !l.is_empty())
                .collect();
            let jsonl = lines.len() > 1 && lines.iter().all(|(_, l)| l.starts_with('{'));
            if !jsonl {
                return Err(fault!(
                    Structure,
                    "line {} column {}: invalid JSON ({})",
                    whole_err.line(),
                    whole_err.column(),
                    json_error_text(&whole_err)
                ));
            }
            let mut rows = Vec::new();
            let mut warnings = Vec::new();
            let last = lines.len() - 1;
            for (i, (line, l)) in lines.iter().enumerate() {
                match serde_json::from_str::<Value>(l) {
                    Ok(v) => rows.push((*line, v)),
                    Err(e) if i == last && !rows.is_empty() => warnings.push(format!(
                        "line {line}: skipped a truncated JSONL row ({})",
                        json_error_text(&e)
                    )),
                    Err(e) => {
                        return Err(fault!(
                            Structure,
                            "line {line}: invalid JSONL row ({})",
                            json_error_text(&e)
                        ))
                    }
                }
            }
            Ok(JsonRows {
                top: None,
                rows,
                warnings,
            })
        }
    }
}

/// serde_json's message without its own " at line L column C" tail (the caller names the line).
fn json_error_text(e: &serde_json::Error) -> String {
    let s = e.to_string();
    s.split(" at line ").next().unwrap_or(&s).to_string()
}

fn number_rows(items: Vec<Value>) -> Vec<(u64, Value)> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as u64 + 1, v))
        .collect()
}

/// Which producer wrote these rows, from their keys and values.
pub(super) fn detect_json(doc: &JsonRows) -> std::result::Result<CaptureFormat, Fault> {
    if let Some(top) = &doc.top {
        return match top.get("format").and_then(Value::as_str) {
            Some("netcarve-capture") | None => Ok(CaptureFormat::Netcarve),
            Some(other) => Err(fault!(Structure, "unknown capture format {other:?}")),
        };
    }
    let first = doc
        .rows
        .iter()
        .find_map(|(_, v)| v.as_object())
        .ok_or_else(|| {
            fault!(
                Structure,
                "no JSON object rows to recognise the producer from"
            )
        })?;
    let has =
        |k: &str| field(first, k).is_some() || first.keys().any(|x| x.eq_ignore_ascii_case(k));
    if has("Laddr.IP") || has("Laddr") {
        return Ok(CaptureFormat::Velociraptor);
    }
    if has("OwningProcess") {
        return Ok(CaptureFormat::NetTcpIp);
    }
    if has("local_address") {
        return Ok(CaptureFormat::Osquery);
    }
    if has("ProcessId") || has("Timestamp") {
        // The Timestamp form tells the two PowerShell generations apart.
        let date_form = doc.rows.iter().find_map(|(_, v)| {
            let ts = field(v.as_object()?, "Timestamp")?;
            let ts = match ts {
                Value::Object(o) => field(o, "value")?,
                other => other,
            };
            ts.as_str().map(|s| s.contains("/Date("))
        });
        return Ok(if date_form.unwrap_or(false) {
            CaptureFormat::Ps51
        } else {
            CaptureFormat::Ps7
        });
    }
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.truncate(8);
    Err(fault!(
        Structure,
        "unrecognised JSON capture (keys: {})",
        keys.join(", ")
    ))
}

/// A field by exact name, else case-insensitively (producers differ in key case).
pub fn field<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key)
        .or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

/// A non-negative integer given as a JSON number or a numeric string (osquery renders all as strings).
pub fn json_u64(v: &Value) -> std::result::Result<u64, Fault> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u32::MAX as f64)
                    .map(|f| f as u64)
            })
            .ok_or_else(|| fault!(Value, "not a non-negative integer: {n}")),
        Value::String(s) if s.trim().is_empty() => Ok(0),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| fault!(Value, "not a non-negative integer: {s:?}")),
        other => Err(fault!(
            Value,
            "expected a number, found {}",
            json_kind(other)
        )),
    }
}

/// Text given as a JSON string or number.
pub fn json_text(v: &Value) -> std::result::Result<String, Fault> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(fault!(Value, "expected text, found {}", json_kind(other))),
    }
}

pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shapes() {
        assert_eq!(load_json("{\"a\":1}").unwrap().rows.len(), 1);
        assert_eq!(
            load_json("{\"value\":[{},{}],\"Count\":2}")
                .unwrap()
                .rows
                .len(),
            2
        );
        let jsonl = load_json("{\"a\":1}\n{\"a\":2}\n{\"a\":").unwrap();
        assert_eq!(jsonl.rows.len(), 2);
        assert_eq!(jsonl.rows[1].0, 2);
        assert_eq!(jsonl.warnings.len(), 1);
        let err = load_json("[{\"a\":1},\n{\"a\":").err().unwrap();
        assert!(
            matches!(&err, Fault::Structure(m) if m.starts_with("line 2 column")),
            "{err}"
        );
        assert!(load_json("42").is_err());
    }
}
