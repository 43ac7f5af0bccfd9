//! Command-line definitions (clap). Each subcommand's work lives in `commands/<name>.rs`.
use crate::capture::{culture_order, CaptureFormat, DateOrder, TextEncoding};
use crate::output::Format;
use crate::record::TcpState;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "netcarve",
    version,
    about = "Carve Windows TCP/UDP endpoints, with full-precision create times, out of memory images; compare them with live-response captures"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Identify the image: container, paging, DTB, kernel, build, acquisition and boot time.
    Info(InfoArgs),
    /// Carve TCP/UDP endpoint objects out of a memory image.
    Scan(ScanArgs),
    /// Compare carved endpoints with live-response captures; exit 1 on discrepancies.
    Compare(CompareArgs),
    /// Write a synthetic Windows memory image with known ground truth and captures.
    Synth(SynthArgs),
    /// List, show and derive structure profiles.
    Profile(ProfileArgs),
    /// The zero-timestamp question over a corpus of image + capture pairs (a manifest or a folder).
    Research(ResearchArgs),
}

#[derive(Args, Debug)]
pub struct ResearchArgs {
    /// Manifest of pairs (JSON Lines or CSV: id, image, capture, capture_time), or a folder whose
    /// subfolders each hold one memory image and its capture(s).
    pub input: PathBuf,
    /// Folder for the per-pair parts, rows.jsonl and aggregate.json (never inside an input's folder).
    #[arg(long)]
    pub out: PathBuf,
    /// Folder convention: the capture file(s) of each subfolder (`*` and `?` match).
    #[arg(long, default_value = "capture-netcarve.json")]
    pub capture_glob: String,
    /// Research pairs again even when their part is already in --out.
    #[arg(long)]
    pub force: bool,
    /// Profile name or JSON file for every image, overriding selection.
    #[arg(long)]
    pub profile: Option<String>,
    /// Compare a capture that looks like another host's anyway.
    #[arg(long)]
    pub allow_mismatch: bool,
    /// Worker threads for pairs and their scans (default: all cores; at most 4 per core and 256).
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, default_value = "table", value_parser = formats(&[Format::Table, Format::Json]))]
    pub format: Format,
    /// No progress bar, no warnings.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct ImageArgs {
    /// Memory image (raw, crash dump, ELF core, LiME, VMware .vmem).
    pub image: PathBuf,
    /// Kernel directory table base (CR3), overriding discovery.
    #[arg(long, value_parser = parse_u64)]
    pub dtb: Option<u64>,
    /// Profile name or JSON file, overriding selection.
    #[arg(long)]
    pub profile: Option<String>,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    #[arg(long, default_value = "table", value_parser = formats(&[Format::Table, Format::Json]))]
    pub format: Format,
    /// Add the image's SHA-256 (chain of custody).
    #[arg(long)]
    pub hash: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtoFilter {
    Tcp,
    Udp,
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    /// Output format (default: table on a terminal, json otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write output to FILE instead of stdout.
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Only endpoints owned by these PIDs.
    #[arg(long, value_delimiter = ',')]
    pub pid: Vec<u32>,
    #[arg(long, value_enum)]
    pub proto: Option<ProtoFilter>,
    /// Only TCP endpoints in these states (e.g. ESTABLISHED,LISTENING).
    #[arg(long, value_delimiter = ',', value_parser = parse_state)]
    pub state: Vec<TcpState>,
    /// Show structurally invalid candidates too, with the reason.
    #[arg(long)]
    pub include_corrupt: bool,
    /// Do not walk tcpip.sys's own tables (pool carve only; every record says linked: null).
    #[arg(long)]
    pub no_tables: bool,
    /// Worker threads (default: all cores; at most 4 per core and 256, with a warning).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Add the image's SHA-256 to the JSON output.
    #[arg(long)]
    pub hash: bool,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Memory image, or the JSON output of `netcarve scan`.
    pub input: PathBuf,
    /// Live-response capture file (repeatable).
    #[arg(long = "live", required = true)]
    pub live: Vec<PathBuf>,
    /// Capture format: auto, netcarve, ps51, ps7, nettcpip, velociraptor, osquery, netstat, pscsv
    /// (Export-Csv), pslist (Format-List).
    #[arg(long, default_value = "auto", value_parser = parse_capture_format)]
    pub capture_format: CaptureChoice,
    /// Text encoding of every capture: auto (detected from the content), utf-8, utf-16le,
    /// utf-16be, or a Windows code page (cp437, cp850, cp852, cp866, cp1250-cp1252, cp932, ...).
    #[arg(long, default_value = "auto", value_parser = parse_capture_encoding)]
    pub capture_encoding: EncodingChoice,
    /// Culture of dates shown as text in PowerShell tables (Export-Csv, Format-List): auto, or
    /// en-US, en-GB, de-DE, fr-FR, es-ES, ja-JP, zh-CN, ko-KR, ...
    #[arg(long, default_value = "auto", value_parser = parse_capture_culture)]
    pub capture_culture: CultureChoice,
    /// Time tolerance (e.g. 0, 500ms, 2s); default from each format's precision.
    #[arg(long, value_parser = parse_tolerance)]
    pub tolerance: Option<u64>,
    /// UTC offset of local times in captures that carry none (e.g. +01:00, -0500).
    #[arg(long, value_parser = parse_utc_offset)]
    pub capture_tz: Option<i64>,
    /// When the captures were taken (ISO-8601 with Z or an offset), for formats that do not record
    /// it; otherwise the image's acquisition time is assumed.
    #[arg(long, value_parser = parse_capture_time)]
    pub capture_time: Option<u64>,
    #[arg(long, default_value = "table", value_parser = formats(&[Format::Table, Format::Json, Format::Csv]))]
    pub format: Format,
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    #[arg(long, value_parser = parse_u64)]
    pub dtb: Option<u64>,
    #[arg(long)]
    pub profile: Option<String>,
    #[arg(long)]
    pub threads: Option<usize>,
    /// Compare even when the capture shares nothing with memory (no row pairs, no local address
    /// in common): by default that stops with exit 2, as the capture is of another host.
    #[arg(long)]
    pub allow_mismatch: bool,
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ContainerKind {
    Raw,
    Crashdump,
    Bitmap,
    Elf,
    Lime,
    Vmware,
    /// hiberfil.sys of the profile's release (Windows 8+ or Windows 7/Vista layout).
    Hiberfil,
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Built-in profile name (or JSON file) whose layout to write.
    #[arg(long)]
    pub profile: String,
    #[arg(long, value_enum, default_value = "raw")]
    pub container: ContainerKind,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Physical memory size in bytes (suffixes K, M, G accepted).
    #[arg(long, value_parser = parse_size)]
    pub size: Option<u64>,
    /// x86 only: write non-PAE page tables instead of PAE.
    #[arg(long)]
    pub no_pae: bool,
    /// NT build the kernel reports (inside the profile's range; default: its representative
    /// release, e.g. 7601 for win7).
    #[arg(long)]
    pub build: Option<u32>,
    /// Number of extra endpoints to plant (benchmarks plant thousands).
    #[arg(long)]
    pub endpoints: Option<usize>,
    /// Also write a Volatility 3 symbol file (ISF) of the synthetic kernel into DIR.
    #[arg(long)]
    pub isf_dir: Option<PathBuf>,
    /// Write KIND's create time at a slot past its other fields, not where the profile says (to
    /// test the time-slot census; scan with the profile finds it by the census).
    #[arg(long, value_enum, conflicts_with = "zero_time_field")]
    pub move_time_field: Option<LayoutKind>,
    /// Write a create time of zero into every KIND object.
    #[arg(long, value_enum)]
    pub zero_time_field: Option<LayoutKind>,
    /// Profiles with tcpip tables: give tcpip.sys a random PDB GUID even where the built-in
    /// symbol table has its build, so that only the pool-tag route finds its tables.
    #[arg(long)]
    pub no_tcpip_symbols: bool,
    /// Leave the NT build and tcpip.sys's FileVersion out of every source in the image
    /// (KUSER_SHARED_DATA, version resources, KdVersionBlock, NtBuildNumber, NtBuildLab), as on
    /// images whose kernel pages were paged out; containers without a header recording the build.
    #[arg(long)]
    pub hide_build: bool,
    #[arg(long)]
    pub out: PathBuf,
}

/// An endpoint layout, by the profile's name for it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LayoutKind {
    TcpEndpoint,
    TcpListener,
    UdpEndpoint,
    TimeWait,
}

impl LayoutKind {
    pub fn kind(self) -> crate::profile::ObjectKind {
        use crate::profile::ObjectKind;
        match self {
            LayoutKind::TcpEndpoint => ObjectKind::TcpEndpoint,
            LayoutKind::TcpListener => ObjectKind::TcpListener,
            LayoutKind::UdpEndpoint => ObjectKind::UdpEndpoint,
            LayoutKind::TimeWait => ObjectKind::TimeWait,
        }
    }
}

#[derive(Args, Debug)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub command: ProfileCommand,
}

#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// List the built-in profiles.
    List {
        #[arg(long, default_value = "table", value_parser = formats(&[Format::Table, Format::Json]))]
        format: Format,
    },
    /// Show one profile in full.
    Show {
        name: String,
        #[arg(long, default_value = "table", value_parser = formats(&[Format::Table, Format::Json]))]
        format: Format,
    },
    /// Derive a profile from PDB files.
    FromPdb {
        /// The kernel's PDB (ntkrnlmp.pdb, ntoskrnl.pdb, ...).
        #[arg(long)]
        nt: PathBuf,
        /// tcpip.pdb (symbols only; endpoint types come from --base).
        #[arg(long)]
        tcpip: Option<PathBuf>,
        /// Built-in profile supplying what the PDBs lack.
        #[arg(long)]
        base: Option<String>,
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
}

/// Parses `0x…` hex or decimal.
fn parse_u64(s: &str) -> Result<u64, String> {
    crate::record::parse_hex(s).ok_or_else(|| format!("not a number: {s:?}"))
}

/// Parses a size with an optional K/M/G/T suffix (binary units).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        Some('T' | 't') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    parse_u64(num)?
        .checked_mul(mult)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

/// The output formats a command writes, out of every [`Format`]: clap lists and checks them.
fn formats(allowed: &'static [Format]) -> impl TypedValueParser<Value = Format> {
    PossibleValuesParser::new(allowed.iter().filter_map(ValueEnum::to_possible_value))
        .try_map(|name| Format::from_str(&name, true))
}

/// `--capture-format`: a format name, or `auto` (detect each capture from its content).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CaptureChoice(pub Option<CaptureFormat>);

fn parse_capture_format(s: &str) -> Result<CaptureChoice, String> {
    match s.trim() {
        "auto" | "" => Ok(CaptureChoice(None)),
        name => CaptureFormat::from_name(name)
            .map(|f| CaptureChoice(Some(f)))
            .ok_or_else(|| {
                let names: Vec<&str> = CaptureFormat::ALL.iter().map(|f| f.name()).collect();
                format!("unknown format {name:?} (auto, {})", names.join(", "))
            }),
    }
}

/// `--capture-encoding`: an encoding, or `auto` (detect each capture's from its content).
#[derive(Copy, Clone, Debug)]
pub struct EncodingChoice(pub Option<TextEncoding>);

fn parse_capture_encoding(s: &str) -> Result<EncodingChoice, String> {
    match s.trim() {
        "auto" | "" => Ok(EncodingChoice(None)),
        name => TextEncoding::from_name(name)
            .map(|e| EncodingChoice(Some(e)))
            .ok_or_else(|| {
                format!(
                    "unknown encoding {name:?} (auto, {})",
                    TextEncoding::names().join(", ")
                )
            }),
    }
}

/// `--capture-culture`: a culture name with the date order it implies, or `auto`.
#[derive(Clone, Debug)]
pub struct CultureChoice(pub Option<(String, DateOrder)>);

fn parse_capture_culture(s: &str) -> Result<CultureChoice, String> {
    match s.trim() {
        "auto" | "" => Ok(CultureChoice(None)),
        name => culture_order(name)
            .map(|order| CultureChoice(Some((name.to_string(), order))))
            .ok_or_else(|| {
                format!("{name:?} is not a culture name (auto, en-US, en-GB, de-DE, ja-JP, ...)")
            }),
    }
}

fn parse_state(s: &str) -> Result<TcpState, String> {
    TcpState::parse_any(s)
        .ok_or_else(|| format!("unknown TCP state {s:?} (e.g. ESTABLISHED, LISTENING, TIME_WAIT)"))
}

fn parse_capture_time(s: &str) -> Result<u64, String> {
    crate::filetime::from_iso(s)
        .ok_or_else(|| format!("not an ISO-8601 time with Z or an offset: {s:?}"))
}

/// Parses `0`, `500ms`, `2s`, `1.5s`, `100us`, `200ns`, `1m` (a bare number is seconds) into ticks.
fn parse_tolerance(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("bad tolerance {text:?} (e.g. 0, 500ms, 2s)"))?;
    let ticks_per_unit = match unit.trim() {
        "" | "s" | "sec" => 1e7,
        "ms" => 1e4,
        "us" | "µs" => 10.0,
        "ns" => 0.01,
        "m" | "min" => 6e8,
        other => return Err(format!("bad tolerance unit {other:?} in {text:?}")),
    };
    let ticks = (value * ticks_per_unit).round();
    if !ticks.is_finite() || !(0.0..=1e18).contains(&ticks) {
        return Err(format!("tolerance {text:?} out of range"));
    }
    Ok(ticks as u64)
}

/// Parses a UTC offset (`+01:00`, `-0500`, `+1`, `Z`, `UTC`) into minutes east of UTC.
fn parse_utc_offset(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let bad = || format!("bad UTC offset {text:?} (e.g. +01:00, -0500, Z)");
    if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
        return Ok(0);
    }
    let t = t
        .strip_prefix("UTC")
        .or_else(|| t.strip_prefix("utc"))
        .unwrap_or(t);
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, t.get(1..).unwrap_or("")),
        Some(b'-') => (-1, t.get(1..).unwrap_or("")),
        _ => (1, t),
    };
    let (hours, minutes) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() > 2 => rest.split_at(rest.len() - 2),
        None => (rest, "0"),
    };
    let hours: i64 = hours.parse().map_err(|_| bad())?;
    let minutes: i64 = minutes.parse().map_err(|_| bad())?;
    if hours > 14 || minutes > 59 {
        return Err(bad());
    }
    Ok(sign * (hours * 60 + minutes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_and_offsets_parse() {
        assert_eq!(parse_tolerance("0"), Ok(0));
        assert_eq!(parse_tolerance("500ms"), Ok(5_000_000));
        assert_eq!(parse_tolerance("2s"), Ok(20_000_000));
        assert_eq!(parse_tolerance("1.5"), Ok(15_000_000));
        assert!(parse_tolerance("-1s").is_err());
        assert!(parse_tolerance("2 fortnights").is_err());
        assert!(parse_tolerance("1e400").is_err());
        assert_eq!(parse_utc_offset("+01:00"), Ok(60));
        assert_eq!(parse_utc_offset("-0530"), Ok(-330));
        assert_eq!(parse_utc_offset("Z"), Ok(0));
        assert_eq!(parse_utc_offset("+2"), Ok(120));
        assert!(parse_utc_offset("+25:00").is_err());
        assert!(parse_utc_offset("east").is_err());
    }
}
