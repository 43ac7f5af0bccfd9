//! Command-line definitions (clap). Each subcommand's work lives in `commands/<name>.rs`.
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
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum InfoFormat {
    Table,
    Json,
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
    #[arg(long, value_enum, default_value = "table")]
    pub format: InfoFormat,
    /// Add the image's SHA-256 (chain of custody).
    #[arg(long)]
    pub hash: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScanFormat {
    Table,
    Json,
    Jsonl,
    Csv,
    Bodyfile,
    Timesketch,
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
    pub format: Option<ScanFormat>,
    /// Write output to FILE instead of stdout.
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Only endpoints owned by these PIDs.
    #[arg(long, value_delimiter = ',')]
    pub pid: Vec<u32>,
    #[arg(long, value_enum)]
    pub proto: Option<ProtoFilter>,
    /// Only TCP endpoints in these states (e.g. ESTABLISHED,LISTENING).
    #[arg(long, value_delimiter = ',')]
    pub state: Vec<String>,
    /// Show structurally invalid candidates too, with the reason.
    #[arg(long)]
    pub include_corrupt: bool,
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

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompareFormat {
    Table,
    Json,
    Csv,
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
    #[arg(long, default_value = "auto")]
    pub capture_format: String,
    /// Text encoding of every capture: auto (detected from the content), utf-8, utf-16le,
    /// utf-16be, or a Windows code page (cp437, cp850, cp852, cp866, cp1250-cp1252, cp932, ...).
    #[arg(long, default_value = "auto")]
    pub capture_encoding: String,
    /// Culture of dates shown as text in PowerShell tables (Export-Csv, Format-List): auto, or
    /// en-US, en-GB, de-DE, fr-FR, es-ES, ja-JP, zh-CN, ko-KR, ...
    #[arg(long, default_value = "auto")]
    pub capture_culture: String,
    /// Time tolerance (e.g. 0, 500ms, 2s); default from each format's precision.
    #[arg(long)]
    pub tolerance: Option<String>,
    /// UTC offset of local times in captures that carry none (e.g. +01:00, -0500).
    #[arg(long)]
    pub capture_tz: Option<String>,
    /// When the captures were taken (ISO-8601 with Z or an offset), for formats that do not record
    /// it; otherwise the image's acquisition time is assumed.
    #[arg(long)]
    pub capture_time: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: CompareFormat,
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
    #[arg(long)]
    pub out: PathBuf,
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
        #[arg(long, value_enum, default_value = "table")]
        format: InfoFormat,
    },
    /// Show one profile in full.
    Show {
        name: String,
        #[arg(long, value_enum, default_value = "table")]
        format: InfoFormat,
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
pub fn parse_u64(s: &str) -> Result<u64, String> {
    crate::record::parse_hex(s).ok_or_else(|| format!("not a number: {s:?}"))
}

/// Parses a size with an optional K/M/G/T suffix (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
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
