//! Renderers for scan output: table, json, jsonl, csv, bodyfile, timesketch. Each writes the records
//! in the order it is given (the scan's sorted order), so output is deterministic.
use crate::record::{EndpointRecord, Family, Proto};
use crate::scan::ScanOutput;
use std::io::Write;

pub mod compare;
pub mod csv;
mod sink;
pub mod table;
pub mod text;
pub mod timeline;

pub use sink::{csv_io, json_io, Sink};

/// Every output format; each command accepts those it writes (`scan` all of them, `compare`
/// table, json and csv, `info` and `profile` table and json).
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
    Bodyfile,
    Timesketch,
}

/// Renders `out` in `format`; the caller's [`Sink`] decides what a write error means.
pub fn render(out: &ScanOutput, format: Format, w: &mut dyn Write) -> std::io::Result<()> {
    // Serializers write a few bytes at a time; buffering here, in a concrete type, keeps those
    // writes inline instead of one dynamic call each (a third of JSON rendering time).
    let mut buffered = std::io::BufWriter::with_capacity(1 << 16, w);
    let b: &mut std::io::BufWriter<&mut dyn Write> = &mut buffered;
    let result = match format {
        Format::Table => table::write_scan(out, b),
        Format::Json => write_json(out, b),
        Format::Jsonl => write_jsonl(out, b),
        Format::Csv => csv::write_scan(out, b),
        Format::Bodyfile => timeline::write_bodyfile(out, b),
        Format::Timesketch => timeline::write_timesketch(out, b),
    };
    result.and_then(|()| buffered.flush())
}

/// Records rendered per parallel batch: bounds the memory the rendered text takes, however many
/// records (`--include-corrupt` on a hostile image) there are. Small enough that later batches
/// reuse the memory of earlier ones (fresh pages cost a fault each: batches of 4096 take ~0.3 ms
/// longer on 5,000 records).
const RENDER_BATCH: usize = 1024;
/// Records per parallel task within a batch.
const RENDER_TASK: usize = 128;

/// `serde_json::to_writer_pretty(out)` and a newline, byte for byte (a test holds it to that), with
/// the records rendered in parallel on the current thread pool: serializing thousands of records
/// on one thread would be the longest serial step of a scan after the search.
fn write_json(out: &ScanOutput, w: &mut impl Write) -> std::io::Result<()> {
    w.write_all(b"{\n  \"image\": ")?;
    w.write_all(&pretty_nested(&out.image, 1)?)?;
    w.write_all(b",\n  \"profile\": ")?;
    w.write_all(&pretty_nested(&out.profile, 1)?)?;
    w.write_all(b",\n  \"tables\": ")?;
    w.write_all(&pretty_nested(&out.tables, 1)?)?;
    w.write_all(b",\n  \"endpoints\": ")?;
    write_pretty_records(&out.endpoints, w)?;
    // `corrupt` is left out when empty, as its serde attribute says.
    if !out.corrupt.is_empty() {
        w.write_all(b",\n  \"corrupt\": ")?;
        write_pretty_records(&out.corrupt, w)?;
    }
    if out.corrupt_omitted > 0 {
        write!(w, ",\n  \"corrupt_omitted\": {}", out.corrupt_omitted)?;
    }
    w.write_all(b"\n}\n")
}

/// `value` pretty-printed as serde_json prints it `depth` levels down (two spaces a level).
fn pretty_nested<T: serde::Serialize>(value: &T, depth: usize) -> std::io::Result<Vec<u8>> {
    let mut text = Vec::new();
    write_pretty_nested(value, depth, &mut text)?;
    Ok(text)
}

/// [`pretty_nested`], appended to `text` (records render straight into their batch's buffer).
fn write_pretty_nested<T: serde::Serialize>(
    value: &T,
    depth: usize,
    text: &mut Vec<u8>,
) -> std::io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(text, NestedPretty::at(depth));
    value
        .serialize(&mut serializer)
        .map_err(std::io::Error::from)
}

/// serde_json's pretty layout (two-space indent, `": "`, empty containers as `[]`/`{}`), starting
/// `depth` levels in, so that a part of a larger document needs no second pass to indent it.
struct NestedPretty {
    depth: usize,
    has_value: bool,
}

impl NestedPretty {
    fn at(depth: usize) -> NestedPretty {
        NestedPretty {
            depth,
            has_value: false,
        }
    }
    fn newline<W: ?Sized + Write>(&self, w: &mut W, comma: bool) -> std::io::Result<()> {
        const SPACES: &[u8] = &[b' '; 64];
        w.write_all(if comma { b",\n" } else { b"\n" })?;
        let mut left = self.depth * 2;
        while left > 0 {
            let n = left.min(SPACES.len());
            w.write_all(&SPACES[..n])?;
            left -= n;
        }
        Ok(())
    }
    fn open<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> std::io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(bracket)
    }
    fn close<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> std::io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            self.newline(w, false)?;
        }
        w.write_all(bracket)
    }
}

impl serde_json::ser::Formatter for NestedPretty {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"[")
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"]")
    }
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.newline(w, !first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"{")
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"}")
    }
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.newline(w, !first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// A pretty array of records two levels down, as serde_json nests it in the scan object.
fn write_pretty_records(records: &[EndpointRecord], w: &mut impl Write) -> std::io::Result<()> {
    if records.is_empty() {
        return w.write_all(b"[]");
    }
    w.write_all(b"[")?;
    write_in_parallel(records, w, |index, record, text| {
        text.extend_from_slice(if index == 0 { b"\n    " } else { b",\n    " });
        write_pretty_nested(record, 2, text)
    })?;
    w.write_all(b"\n  ]")
}

/// One record per line: the endpoints, then (with `--include-corrupt`) the rejected candidates,
/// which carry a `reason`. Rendered in parallel batches like the JSON document.
fn write_jsonl(out: &ScanOutput, w: &mut impl Write) -> std::io::Result<()> {
    for records in [&out.endpoints, &out.corrupt] {
        write_in_parallel(records, w, |_, record, text| {
            serde_json::to_writer(&mut *text, record)?;
            text.push(b'\n');
            Ok(())
        })?;
    }
    Ok(())
}

/// Writes `render(index, record, text)` for every record, in order, rendering batches of
/// `RENDER_BATCH` in parallel on the current thread pool.
fn write_in_parallel(
    records: &[EndpointRecord],
    w: &mut impl Write,
    render: impl Fn(usize, &EndpointRecord, &mut Vec<u8>) -> std::io::Result<()> + Sync,
) -> std::io::Result<()> {
    use rayon::prelude::*;
    for (batch_index, batch) in records.chunks(RENDER_BATCH).enumerate() {
        let rendered = batch
            .par_chunks(RENDER_TASK)
            .enumerate()
            .map(|(task_index, task)| {
                // About 600 bytes a pretty record: sized once rather than grown by doubling.
                let mut text = Vec::with_capacity(task.len() * 640);
                for (i, record) in task.iter().enumerate() {
                    let index = batch_index * RENDER_BATCH + task_index * RENDER_TASK + i;
                    render(index, record, &mut text)?;
                }
                Ok(text)
            })
            .collect::<std::io::Result<Vec<Vec<u8>>>>()?;
        for text in rendered {
            w.write_all(&text)?;
        }
    }
    Ok(())
}

/// `TCPv4`, `UDPv6`, ... as netstat-like tools print the protocol column.
pub fn proto_label(r: &EndpointRecord) -> &'static str {
    match (r.proto, r.family) {
        (Proto::Tcp, Family::Ipv4) => "TCPv4",
        (Proto::Tcp, Family::Ipv6) => "TCPv6",
        (Proto::Udp, Family::Ipv4) => "UDPv4",
        (Proto::Udp, Family::Ipv6) => "UDPv6",
    }
}

/// `addr:port`, with IPv6 addresses in brackets.
pub fn endpoint_text(family: Family, addr: &str, port: Option<u16>) -> String {
    let port = port.map_or_else(|| "*".to_string(), |p| p.to_string());
    match family {
        Family::Ipv6 => format!("[{addr}]:{port}"),
        Family::Ipv4 => format!("{addr}:{port}"),
    }
}

pub fn local_text(r: &EndpointRecord) -> String {
    let addr = if r.local_addr.is_empty() {
        "?"
    } else {
        &r.local_addr
    };
    endpoint_text(r.family, addr, Some(r.local_port))
}

pub fn remote_text(r: &EndpointRecord) -> String {
    match (&r.remote_addr, r.remote_port) {
        (None, None) if r.proto == Proto::Udp => "*:*".to_string(),
        (Some(a), p) => endpoint_text(r.family, a, p),
        (None, p) => endpoint_text(r.family, "?", p),
    }
}

/// A one-line description of an endpoint (timeline names and messages).
pub fn describe(r: &EndpointRecord) -> String {
    let mut s = format!("{} {}", proto_label(r), local_text(r));
    if r.proto == Proto::Tcp {
        s.push_str(&format!(" -> {}", remote_text(r)));
    }
    if let Some(state) = r.state {
        s.push_str(&format!(" {state}"));
    }
    if r.dual_stack {
        s.push_str(" (dual-stack)");
    }
    match (r.pid, &r.process) {
        (Some(pid), Some(name)) => s.push_str(&format!(" pid {pid} {name}")),
        (Some(pid), None) => s.push_str(&format!(" pid {pid}")),
        _ => s.push_str(" no owner"),
    }
    s.push_str(&format!(
        " [{} {} at {}]",
        r.tag,
        match r.pool_status {
            crate::record::PoolStatus::Allocated => "allocated",
            crate::record::PoolStatus::Freed => "freed",
        },
        r.physical_offset
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::{scan_image, ScanOptions};

    fn sample(include_corrupt: bool) -> ScanOutput {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/win7-x64/memory.dmp");
        let opts = ScanOptions {
            include_corrupt,
            ..ScanOptions::default()
        };
        scan_image(&path, &opts).expect("committed sample scans")
    }

    fn assert_same_as_serde(out: &ScanOutput) {
        let mut ours = vec![];
        write_json(out, &mut ours).unwrap();
        let mut theirs = serde_json::to_vec_pretty(out).unwrap();
        theirs.push(b'\n');
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(theirs).unwrap()
        );

        let mut lines = vec![];
        write_jsonl(out, &mut lines).unwrap();
        let mut expected = vec![];
        for r in out.endpoints.iter().chain(&out.corrupt) {
            serde_json::to_writer(&mut expected, r).unwrap();
            expected.push(b'\n');
        }
        assert_eq!(lines, expected);
    }

    #[test]
    fn nested_layout_is_serde_json_pretty_indented() {
        let value = serde_json::json!({
            "a": [], "b": {}, "c": [1, [2, []], {"d": null, "e": {"f": [true, "x\ny"]}}],
            "g": "", "h": 1.5
        });
        let flat = serde_json::to_vec_pretty(&value).unwrap();
        assert_eq!(pretty_nested(&value, 0).unwrap(), flat);
        // Deeper than the 64-space run the indent is written from.
        for depth in [1, 2, 31, 32, 33, 70] {
            let indent = " ".repeat(depth * 2);
            let expected = String::from_utf8(flat.clone())
                .unwrap()
                .replace('\n', &format!("\n{indent}"));
            assert_eq!(
                String::from_utf8(pretty_nested(&value, depth).unwrap()).unwrap(),
                expected,
                "depth {depth}"
            );
        }
    }

    #[test]
    fn parallel_json_is_serde_json_pretty_byte_for_byte() {
        let scanned = sample(true);
        assert!(!scanned.endpoints.is_empty() && !scanned.corrupt.is_empty());
        assert_same_as_serde(&scanned);
        assert_same_as_serde(&sample(false));
        assert_same_as_serde(&ScanOutput::default());
        // More records than one batch, so batch and task seams are crossed.
        let mut many = scanned.clone();
        while many.endpoints.len() <= 2 * RENDER_BATCH + 3 {
            many.endpoints.extend(scanned.endpoints.iter().cloned());
        }
        many.corrupt.clear();
        assert_same_as_serde(&many);
        let mut no_endpoints = scanned;
        no_endpoints.endpoints.clear();
        assert_same_as_serde(&no_endpoints);
    }
}
