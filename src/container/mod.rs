//! Containers: turning an image file into a physical address space.
//!
//! Every format reduces to a sorted list of [`Run`]s mapping present physical ranges onto file
//! offsets of one read-only memory map (a bitmap crash dump's runs are found from its page bitmap
//! as needed, see `pages`). Gaps between runs are *absent*, not zeros, so a scan touches
//! only real pages. Reads inside one run are zero-copy slices of the map. The format is detected
//! from the content, never from the file extension; the one use of a name is to refuse, not to
//! read: a file named hiberfil.sys without a hibernation header gets an error instead of being
//! read as raw memory.
use crate::arch::Arch;
use crate::bytes::ReadBytes;
use crate::error::{io_error, Cause, Error, Result};
use std::path::{Path, PathBuf};

mod blocks;
pub mod crashdump;
pub mod elf;
pub mod ewf;
mod extents;
pub mod hiberfil;
pub mod lime;
mod mapping;
mod pages;
pub mod raw;
pub mod vmware;
mod warnings;
pub mod xpress;

/// A present physical range stored contiguously in the file.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Run {
    pub phys: u64,
    pub len: u64,
    pub file_offset: u64,
}

impl Run {
    pub fn phys_end(&self) -> u64 {
        self.phys + self.len
    }

    /// The part of this run inside the physical range `[lo, hi)`, if any.
    pub fn clip_phys(&self, lo: u64, hi: u64) -> Option<Run> {
        let from = self.phys.max(lo);
        let to = self.phys_end().min(hi);
        (from < to).then(|| Run {
            phys: from,
            len: to - from,
            file_offset: self.file_offset + (from - self.phys),
        })
    }

    /// The part of this run stored in the file bytes `[start, end)`, if any.
    pub fn clip_file(&self, start: u64, end: u64) -> Option<Run> {
        let from = self.file_offset.max(start);
        let to = (self.file_offset + self.len).min(end);
        (from < to).then(|| Run {
            phys: self.phys + (from - self.file_offset),
            len: to - from,
            file_offset: from,
        })
    }
}

pub use blocks::{BlockDecoder, BlockError, BlockStore};
pub use pages::PageBitmap;
pub use warnings::Warnings;

const PAGE: u64 = 0x1000;

/// Where a container's physical pages are stored in its file.
pub enum Storage {
    /// Ranges the container lists (most formats).
    Runs(Vec<Run>),
    /// A bitmap crash dump's page bitmap.
    Pages(PageBitmap),
}

/// Facts a container header may carry about the machine (crash-dump headers, ELF notes).
/// Each is a hint: the kernel module validates before it trusts one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerHints {
    pub arch: Option<Arch>,
    /// x86 dumps: the header's PaeEnabled.
    pub pae: Option<bool>,
    pub dtb: Option<u64>,
    /// Crash dump MinorVersion (= NT build number).
    pub nt_build: Option<u32>,
    /// FILETIME of the dump (crash-dump header SystemTime).
    pub system_time: Option<u64>,
    pub ps_active_process_head: Option<u64>,
    pub ps_loaded_module_list: Option<u64>,
    pub kd_debugger_data_block: Option<u64>,
}

/// What a container stores about its own contents (EWF: the acquisition's hashes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerFacts {
    pub md5: Option<[u8; 16]>,
    pub sha1: Option<[u8; 20]>,
    /// Files the container is stored in (EWF segment files).
    pub segments: usize,
    /// hiberfil.sys: what its header says.
    pub hibernation: Option<hiberfil::Hibernation>,
}

/// The bytes behind a physical space: the image's memory map, or an owned buffer (tests, fuzzing).
pub enum Backing {
    Map(crate::evidence::EvidenceMap),
    Owned(Vec<u8>),
}

impl Backing {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Backing::Map(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

/// Which runs to search for a physical address: for each region of `1 << shift` bytes up to the last
/// present byte, the index of the first run ending after the region's start. Regions are sized for
/// about one run each (never below a page), so a lookup binary-searches a run or two instead of all
/// of them; the index takes 4 bytes per region, about as many regions as runs (a container can list
/// a run every few pages, and decoding looks one up for every page-table entry it reads; bitmap
/// dumps are usually looked up in their bitmap instead, see `pages`).
#[derive(Clone, Debug, Default)]
struct RunIndex {
    shift: u32,
    first_run: Vec<u32>,
}

impl RunIndex {
    fn new(runs: &[Run]) -> RunIndex {
        let end = runs.last().map_or(0, |r| r.phys_end());
        if runs.is_empty() || u32::try_from(runs.len()).is_err() {
            return RunIndex::default();
        }
        let shift = (end / runs.len() as u64).max(0x1000).ilog2();
        let regions = (end >> shift) as usize + 1;
        let mut first_run: Vec<u32> = Vec::with_capacity(regions);
        // Run `i` is the first to end after the start of every region that starts before its end
        // and after the previous run's end (runs are sorted and apart).
        for (i, run) in runs.iter().enumerate() {
            let last_region = ((run.phys_end() - 1) >> shift) as usize;
            if first_run.len() <= last_region {
                first_run.resize(last_region + 1, i as u32);
            }
        }
        // Regions past the last run's end.
        first_run.resize(regions, runs.len() as u32);
        RunIndex { shift, first_run }
    }

    /// The run indices that can hold `pa` (none when it lies past every run).
    fn candidates(&self, pa: u64, runs: usize) -> std::ops::Range<usize> {
        if self.first_run.is_empty() {
            return 0..runs;
        }
        let Ok(region) = usize::try_from(pa >> self.shift) else {
            return 0..0;
        };
        let Some(&from) = self.first_run.get(region) else {
            return 0..0;
        };
        let to = self
            .first_run
            .get(region + 1)
            .map_or(runs, |&i| i as usize + 1);
        from as usize..to.min(runs)
    }
}

/// A physical address space over one image file.
pub struct PhysicalSpace {
    backing: Backing,
    /// Sorted, apart; empty when `pages` holds the layout.
    runs: Vec<Run>,
    run_index: RunIndex,
    pages: Option<PageBitmap>,
    /// `pages`' runs, listed the first time a whole-image pass asks for them.
    listed_pages: std::sync::OnceLock<Vec<Run>>,
    /// Compressed containers: the runs' file offsets are positions in the store's decoded space.
    blocks: Option<BlockStore>,
    /// `raw`, `crashdump-full`, `crashdump-bitmap`, `crashdump-rdmp`, `elf`, `lime`, `vmware`.
    pub kind: &'static str,
    pub path: PathBuf,
    pub hints: ContainerHints,
    pub container_facts: Option<ContainerFacts>,
    /// Non-fatal oddities (overlapping runs dropped, a .vmem read 1:1 without its .vmss, ...),
    /// one line per kind.
    pub warnings: Warnings,
    /// A sparse file's data extents (see `extents`); `None`: every byte counts as data.
    holes: Option<Holes>,
}

/// Where a sparse image file holds data, and the runs a whole-image pass reads because of it.
struct Holes {
    /// File ranges holding data, sorted and apart.
    extents: Vec<(u64, u64)>,
    /// `runs` less the holes (see `extents::pass_runs`).
    pass: Vec<Run>,
}

impl PhysicalSpace {
    /// Builds a space from runs. Runs are sorted; runs that point past the end of the backing bytes
    /// are an error; overlapping physical ranges keep the first and warn.
    pub fn new(
        backing: Backing,
        runs: Vec<Run>,
        kind: &'static str,
        path: &Path,
    ) -> Result<PhysicalSpace> {
        let file_len = backing.bytes().len() as u64;
        Self::with_runs(backing, None, file_len, runs, kind, path)
    }

    /// A space over compressed storage: the runs' file offsets are positions in `store`'s decoded
    /// space (see `blocks`).
    pub fn from_blocks(
        store: BlockStore,
        runs: Vec<Run>,
        kind: &'static str,
        path: &Path,
    ) -> Result<PhysicalSpace> {
        let decoded = store.decoded_size();
        Self::with_runs(
            Backing::Owned(Vec::new()),
            Some(store),
            decoded,
            runs,
            kind,
            path,
        )
    }

    fn with_runs(
        backing: Backing,
        blocks: Option<BlockStore>,
        file_len: u64,
        mut runs: Vec<Run>,
        kind: &'static str,
        path: &Path,
    ) -> Result<PhysicalSpace> {
        for r in &runs {
            let end = r.file_offset.checked_add(r.len);
            if !matches!(end, Some(e) if e <= file_len) || r.phys.checked_add(r.len).is_none() {
                return Err(Error::cause(path, Cause::Malformed(format!(
                        "{kind}: range at physical {:#x} ({:#x} bytes) points past the end of the file (file offset {:#x}, file size {:#x})",
                        r.phys, r.len, r.file_offset, file_len
                    ))));
            }
        }
        runs.retain(|r| r.len > 0);
        runs.sort_unstable();
        let mergeable = blocks.is_none();
        // Merged in place (a list can hold a run every few pages: no second copy of them).
        let mut warnings = Warnings::default();
        let mut kept = 0usize;
        for i in 0..runs.len() {
            let r = runs[i];
            match kept.checked_sub(1).map(|last| &mut runs[last]) {
                Some(last) if r.phys < last.phys_end() => {
                    warnings.push(format!(
                        "overlapping physical range at {:#x} ignored",
                        r.phys
                    ));
                }
                // Merge runs that continue each other in both spaces; a compressed container's
                // stay one per block, so that a whole-image pass decodes one block at a time.
                Some(last)
                    if mergeable
                        && r.phys == last.phys_end()
                        && r.file_offset == last.file_offset + last.len =>
                {
                    last.len += r.len;
                }
                _ => {
                    runs[kept] = r;
                    kept += 1;
                }
            }
        }
        runs.truncate(kept);
        let kept = runs;
        let run_index = RunIndex::new(&kept);
        Ok(PhysicalSpace {
            backing,
            run_index,
            runs: kept,
            pages: None,
            listed_pages: std::sync::OnceLock::new(),
            blocks,
            kind,
            path: path.to_path_buf(),
            hints: ContainerHints::default(),
            container_facts: None,
            warnings,
            holes: None,
        })
    }

    /// [`PhysicalSpace::new`] for either kind of [`Storage`]. A page bitmap's pages must lie inside
    /// the backing bytes.
    pub fn from_storage(
        backing: Backing,
        storage: Storage,
        kind: &'static str,
        path: &Path,
    ) -> Result<PhysicalSpace> {
        let pages = match storage {
            Storage::Runs(runs) => return PhysicalSpace::new(backing, runs, kind, path),
            Storage::Pages(pages) => pages,
        };
        if pages.stored_end() > backing.bytes().len() as u64 {
            return Err(Error::cause(
                path,
                Cause::Malformed(format!(
                    "{kind}: pages stored up to file offset {:#x} but the file has {:#x} bytes",
                    pages.stored_end(),
                    backing.bytes().len()
                )),
            ));
        }
        Ok(PhysicalSpace {
            backing,
            runs: vec![],
            run_index: RunIndex::default(),
            pages: Some(pages),
            listed_pages: std::sync::OnceLock::new(),
            blocks: None,
            kind,
            path: path.to_path_buf(),
            hints: ContainerHints::default(),
            container_facts: None,
            warnings: Warnings::default(),
            holes: None,
        })
    }

    /// Opens an image read-only and detects its container from the content.
    pub fn open(path: &Path) -> Result<PhysicalSpace> {
        let file = crate::evidence::open_input(path, "memory image")?;
        let len = file.metadata().map_err(|e| io_error(path, &e))?.len();
        if len == 0 {
            return Err(Error::cause(path, Cause::Empty));
        }
        // Asked before the map takes the descriptor; only passes use the answer.
        let data = extents::data_extents(&file, len);
        let map = crate::evidence::EvidenceMap::new(file, path)?;
        let mut space = Self::detect(Backing::Map(map), path)?;
        if let Some(data) = data {
            space.set_data_extents(data);
        }
        Ok(space)
    }

    /// Remembers where the file holds data (the file ranges `[start, end)`; `open` gives what
    /// `SEEK_DATA` says, tests and fuzzing their own), for containers whose runs are file bytes (a
    /// compressed container's runs are decoded positions, and a bitmap dump's pages are not listed
    /// up front: both are read plainly). Every byte outside them must be zero, or passes miss it.
    pub fn set_data_extents(&mut self, mut extents: Vec<(u64, u64)>) {
        if self.blocks.is_some() || self.pages.is_some() {
            return;
        }
        // Sorted and apart, whatever the caller gave.
        extents.retain(|&(start, end)| start < end);
        extents.sort_unstable();
        let mut kept: Vec<(u64, u64)> = Vec::with_capacity(extents.len());
        for (start, end) in extents {
            match kept.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => kept.push((start, end)),
            }
        }
        let extents = kept;
        let pass = extents::pass_runs(&self.runs, &extents);
        self.holes = Some(Holes { extents, pass });
    }

    /// The present ranges a whole-image pass reads (a tag or signature search): [`runs`](Self::runs)
    /// less the holes of a sparse file. Holes still read as zeros through every read; zeros hold
    /// nothing a pass looks for, so a pass over these finds what a pass over all runs finds.
    pub fn pass_runs(&self) -> &[Run] {
        match &self.holes {
            Some(h) => &h.pass,
            None => self.runs(),
        }
    }

    /// Bytes a whole-image pass reads ([`present_size`](Self::present_size) less the holes).
    pub fn pass_size(&self) -> u64 {
        match &self.holes {
            Some(h) => h.pass.iter().map(|r| r.len).sum(),
            None => self.present_size(),
        }
    }

    /// The file ranges holding data when the file is sparse (`None`: read every byte).
    pub fn data_extents(&self) -> Option<&[(u64, u64)]> {
        self.holes.as_ref().map(|h| h.extents.as_slice())
    }

    /// Whether the present byte at `pa` lies in a hole of a sparse file (reads give zeros there).
    pub fn in_hole(&self, pa: u64) -> bool {
        let Some(h) = &self.holes else {
            return false;
        };
        let Some((offset, _)) = self.locate(pa) else {
            return false;
        };
        let i = h.extents.partition_point(|&(_, end)| end <= offset);
        h.extents.get(i).is_none_or(|&(start, _)| offset < start)
    }

    /// Detects the container of in-memory bytes (tests and fuzzing use this).
    pub fn from_bytes(bytes: Vec<u8>, origin: &Path) -> Result<PhysicalSpace> {
        if bytes.is_empty() {
            return Err(Error::cause(origin, Cause::Empty));
        }
        Self::detect(Backing::Owned(bytes), origin)
    }

    /// Picks the container from the first bytes; a file that matches no header is raw memory, unless
    /// a VMware snapshot file sits beside it.
    fn detect(backing: Backing, path: &Path) -> Result<PhysicalSpace> {
        let head = backing.bytes();
        if head.starts_with(b"PAGE") && head.len() < 8 {
            return Err(Error::cause(path, Cause::Truncated("crash dump header")));
        }
        if crashdump::detect(head) {
            return crashdump::open(backing, path);
        }
        if ewf::detect(head) {
            return ewf::open(backing, path);
        }
        if hiberfil::detect(head) {
            return hiberfil::open(backing, path);
        }
        let named_hiberfil = path
            .file_name()
            .is_some_and(|n| n.eq_ignore_ascii_case("hiberfil.sys"));
        if named_hiberfil {
            let first_page = head.get(..0x1000).unwrap_or(head);
            let what = if first_page.iter().all(|&b| b == 0) {
                "its first page is all zeros (Windows clears the file after resuming)"
            } else {
                "no hibernation signature (HIBR, WAKE, RSTR, hibr, wake) at its start"
            };
            return Err(Error::cause(
                path,
                Cause::Unsupported(format!("hibernation file holds no memory image: {what}")),
            ));
        }
        if ewf::is_version2(head) {
            return Err(Error::cause(
                path,
                Cause::Unsupported(
                    "EWF version 2 (Ex01/Lx01) is not supported: convert it with `ewfexport -f raw`"
                        .into(),
                ),
            ));
        }
        if head.starts_with(b"PAGE") && head.get(4..8).is_some_and(|v| v.starts_with(b"DU")) {
            return Err(Error::cause(
                path,
                Cause::Malformed(
                    "unknown crash dump signature (neither PAGEDUMP nor PAGEDU64)".into(),
                ),
            ));
        }
        if elf::detect(head) {
            return elf::open(backing, path);
        }
        if lime::detect(head) {
            return lime::open(backing, path);
        }
        if let Some(meta) = vmware::sibling_metadata(path) {
            return vmware::open_with_metadata(backing, path, &meta);
        }
        if vmware::looks_like_vmem(path) {
            return vmware::open_without_metadata(backing, path);
        }
        if head.len() < 0x1000 {
            return Err(Error::cause(path, Cause::UnknownFormat { len: head.len() }));
        }
        raw::open(backing, path)
    }

    /// The present ranges, sorted. A bitmap dump's are listed on the first call (a whole-image
    /// pass); lookups and the scan do without.
    pub fn runs(&self) -> &[Run] {
        match &self.pages {
            Some(pages) => self
                .listed_pages
                .get_or_init(|| pages.runs(self.backing.bytes())),
            None => &self.runs,
        }
    }

    /// How many runs [`runs`](Self::runs) holds, without listing them.
    pub fn run_count(&self) -> u64 {
        match &self.pages {
            Some(pages) => pages.run_count(),
            None => self.runs.len() as u64,
        }
    }

    /// Contiguous present physical ranges: the runs, except that compressed containers keep a
    /// run per block, which says nothing about the machine's memory map.
    pub fn range_count(&self) -> u64 {
        if self.blocks.is_none() {
            return self.run_count();
        }
        let mut count = 0;
        let mut end = None;
        for r in &self.runs {
            if end != Some(r.phys) {
                count += 1;
            }
            end = Some(r.phys_end());
        }
        count
    }

    /// A bitmap dump's page bitmap, with the bytes it indexes.
    pub fn page_storage(&self) -> Option<(&PageBitmap, &[u8])> {
        self.pages.as_ref().map(|p| (p, self.backing.bytes()))
    }

    /// Calls `f` with each present range inside the physical range `[lo, hi)`, clipped to it.
    pub fn for_each_run_between(&self, lo: u64, hi: u64, mut f: impl FnMut(Run)) {
        if let Some(pages) = &self.pages {
            return pages.for_each_run_between(self.backing.bytes(), lo, hi, f);
        }
        let first = self.runs.partition_point(|r| r.phys_end() <= lo);
        for run in self.runs.get(first..).unwrap_or(&[]) {
            if run.phys >= hi {
                break;
            }
            if let Some(part) = run.clip_phys(lo, hi) {
                f(part);
            }
        }
    }

    /// The stored bytes of one run: borrowed from the file, or decoded (compressed containers;
    /// empty where a block cannot be decoded).
    pub fn run_bytes(&self, run: &Run) -> std::borrow::Cow<'_, [u8]> {
        if let Some(store) = &self.blocks {
            let mut out = vec![0u8; usize::try_from(run.len).unwrap_or(0)];
            if !store.read(run.file_offset, &mut out) {
                out.clear();
            }
            return std::borrow::Cow::Owned(out);
        }
        let start = run.file_offset as usize;
        std::borrow::Cow::Borrowed(&self.backing.bytes()[start..start + run.len as usize])
    }

    /// The whole backing file (for hashing); empty for compressed containers, whose contents are
    /// decoded through [`blocks`](Self::blocks).
    pub fn file_bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    /// The block store of a compressed container.
    pub fn blocks(&self) -> Option<&BlockStore> {
        self.blocks.as_ref()
    }

    /// When the file bytes `[offset, offset + len)` are not in the page cache, asks the kernel to
    /// read and map them in one call before they are scanned (a cold scan then waits on one large
    /// read instead of a fault every few pages). When they are cached, page faults with the
    /// kernel's fault-around map them more cheaply than populating every page (measured on a hot
    /// 4 GiB scan: 0.16-0.40 s against 0.52 s), so nothing is asked. Only the first and last pages
    /// are checked. A hint only: failure (an old kernel, an owned buffer) changes nothing but speed.
    pub fn populate(&self, offset: u64, len: u64) {
        #[cfg(target_os = "linux")]
        if len > 0 && !(self.page_cached(offset) && self.page_cached(offset + len - 1)) {
            self.advise(offset, len, memmap2::Advice::PopulateRead);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (offset, len);
    }

    /// Starts reading the file bytes `[offset, offset + len)` from disk in the background when
    /// they are not already cached, so that a cold scan finds its next chunk in the page cache.
    /// Only the range's last page is checked: a hot cache then costs one `mincore` call, not a
    /// page-cache lookup per page. A hint only.
    pub fn prefetch(&self, offset: u64, len: u64) {
        #[cfg(unix)]
        if len > 0 && !self.page_cached(offset + len - 1) {
            self.advise(offset, len, memmap2::Advice::WillNeed);
        }
        #[cfg(not(unix))]
        let _ = (offset, len);
    }

    /// Drops this process's mapping of the file bytes `[offset, offset + len)` once they have been
    /// read, when they are mapped page by page: the page cache keeps the data and a later read maps
    /// it again, but the page-table teardown (a step per page) is then done by the worker that
    /// scanned the chunk, in parallel, rather than by one thread when the whole map is unmapped at
    /// exit. A range mapped by huge pages is left to the exit, which unmaps it in a few steps:
    /// releasing it here would only interrupt the other cores to flush their TLBs (2-5 ms of a hot
    /// 4 GiB scan). A hint only.
    pub fn release(&self, offset: u64, len: u64) {
        /// Below this many small pages, leaving them to the exit costs less than the interrupt.
        const WORTH_RELEASING: u64 = 64;
        #[cfg(unix)]
        if let Some((map, offset, len)) = self.map_range(offset, len) {
            let small = mapping::small_pages_mapped(map[offset..].as_ptr(), len, WORTH_RELEASING);
            if small.is_some_and(|pages| pages < WORTH_RELEASING) {
                return;
            }
            // SAFETY: the map is a read-only file mapping: after MADV_DONTNEED a read faults the
            // same file bytes back in, so slices borrowed from it stay valid and unchanged.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len)
            };
        }
        #[cfg(not(unix))]
        let _ = (offset, len);
    }

    /// The map and `[offset, offset + len)` clipped to it, as `usize`s.
    fn map_range(&self, offset: u64, len: u64) -> Option<(&memmap2::Mmap, usize, usize)> {
        let Backing::Map(map) = &self.backing else {
            return None;
        };
        let map = map.mmap();
        let offset = usize::try_from(offset).ok()?;
        let len = usize::try_from(len)
            .ok()?
            .min(map.len().checked_sub(offset)?);
        (len > 0).then_some((map, offset, len))
    }

    #[cfg(unix)]
    fn advise(&self, offset: u64, len: u64, advice: memmap2::Advice) {
        if let Some((map, offset, len)) = self.map_range(offset, len) {
            let _ = map.advise_range(advice, offset, len);
        }
    }

    /// Whether the file looks wholly in the page cache: 32 pages spread evenly over it all are.
    /// The scan then skips its per-window checks before [`populate`](Self::populate) and
    /// [`prefetch`](Self::prefetch) (two or three `mincore` calls per 8 MiB window: 1.3% of a hot
    /// scan's time on one thread). A file with some pages evicted keeps the per-window checks.
    pub fn looks_cached(&self) -> bool {
        const SAMPLES: u64 = 32;
        #[cfg(unix)]
        {
            let len = self.backing.bytes().len() as u64;
            (0..SAMPLES).all(|i| self.page_cached(len / SAMPLES * i + len / SAMPLES / 2))
        }
        #[cfg(not(unix))]
        false
    }

    /// Whether the mapped page at file `offset` is in the page cache (true when unknown).
    #[cfg(unix)]
    fn page_cached(&self, offset: u64) -> bool {
        let Some((map, offset, _)) = self.map_range(offset, 1) else {
            return true;
        };
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let addr = (map.as_ptr() as usize + offset) / page * page;
        let mut resident = 0u8;
        // SAFETY: `addr` is the page-aligned start of a page inside the live mapping, and the
        // vector has room for the one page asked about.
        let ok = unsafe { libc::mincore(addr as *mut libc::c_void, 1, &mut resident) } == 0;
        !ok || resident & 1 != 0
    }

    /// What went wrong decoding compressed blocks so far (a chunk that failed its checksum, a
    /// missing segment's range): only known after the reads that met it, so callers ask after
    /// their pass. Empty for uncompressed containers.
    pub fn decode_warnings(&self) -> Vec<String> {
        self.blocks
            .as_ref()
            .map(BlockStore::warnings)
            .unwrap_or_default()
    }

    /// Bytes of present physical memory.
    pub fn present_size(&self) -> u64 {
        match &self.pages {
            Some(pages) => pages.present_pages() * PAGE,
            None => self.runs.iter().map(|r| r.len).sum(),
        }
    }

    /// Highest present physical address + 1.
    pub fn end(&self) -> u64 {
        match &self.pages {
            Some(pages) => pages.end(),
            None => self.runs.last().map_or(0, |r| r.phys_end()),
        }
    }

    /// File offset of `pa`, and how many bytes from it are stored contiguously (to the end of its
    /// run, or of its page in a bitmap dump).
    fn locate(&self, pa: u64) -> Option<(u64, u64)> {
        if let Some(pages) = &self.pages {
            let offset = pages.page_offset(self.backing.bytes(), pa / PAGE)?;
            return Some((offset + pa % PAGE, PAGE - pa % PAGE));
        }
        let r = &self.runs[self.run_index(pa)?];
        Some((r.file_offset + (pa - r.phys), r.phys_end() - pa))
    }

    fn run_index(&self, pa: u64) -> Option<usize> {
        let std::ops::Range {
            start: from,
            end: to,
        } = self.run_index.candidates(pa, self.runs.len());
        let candidates = self.runs.get(from..to)?;
        // Usually one or two candidates (decoding looks up every page-table entry it reads): a
        // straight look at them is cheaper than setting up a binary search.
        let i = from
            + if candidates.len() <= 4 {
                candidates
                    .iter()
                    .position(|r| pa < r.phys_end())
                    .unwrap_or(candidates.len())
            } else {
                candidates.partition_point(|r| r.phys_end() <= pa)
            };
        let run = self.runs.get(i)?;
        (run.phys <= pa && pa < run.phys_end()).then_some(i)
    }

    /// Whether the byte at `pa` is present in the image.
    pub fn is_present(&self, pa: u64) -> bool {
        self.locate(pa).is_some()
    }

    /// Zero-copy slice of `len` bytes at `pa`, if they are present and stored contiguously (never
    /// for compressed containers: their bytes exist only decoded, see [`ReadBytes::read_into`]).
    pub fn slice(&self, pa: u64, len: usize) -> Option<&[u8]> {
        if self.blocks.is_some() {
            return None;
        }
        let (offset, mut stored) = self.locate(pa)?;
        // A bitmap dump's consecutive present pages are stored back to back (runs are merged
        // when they continue each other, so for them this loop ends at the first step).
        while stored < len as u64 {
            let (next, more) = self.locate(pa.checked_add(stored)?)?;
            if next != offset + stored {
                return None;
            }
            stored += more;
        }
        let start = usize::try_from(offset).ok()?;
        self.backing.bytes().get(start..start.checked_add(len)?)
    }

    /// `N` bytes at `pa`: a fixed-size copy when they are stored contiguously (page-table entries
    /// always are), else through [`ReadBytes::read_into`].
    pub fn read_array<const N: usize>(&self, pa: u64) -> Option<[u8; N]> {
        if let Some(bytes) = self.slice(pa, N).and_then(|s| s.first_chunk::<N>()) {
            return Some(*bytes);
        }
        let mut b = [0u8; N];
        self.read_into(pa, &mut b).then_some(b)
    }
}

impl ReadBytes for PhysicalSpace {
    /// Copies `buf.len()` bytes at `pa` into `buf`, across runs if needed. False if any byte is absent.
    fn read_into(&self, pa: u64, buf: &mut [u8]) -> bool {
        if let Some(s) = self.slice(pa, buf.len()) {
            buf.copy_from_slice(s);
            return true;
        }
        let mut done = 0usize;
        while done < buf.len() {
            let Some((offset, stored)) =
                pa.checked_add(done as u64).and_then(|cur| self.locate(cur))
            else {
                return false;
            };
            let avail = stored.min((buf.len() - done) as u64) as usize;
            if let Some(store) = &self.blocks {
                if !store.read(offset, &mut buf[done..done + avail]) {
                    return false;
                }
                done += avail;
                continue;
            }
            let Some(bytes) = usize::try_from(offset)
                .ok()
                .and_then(|start| self.backing.bytes().get(start..start.checked_add(avail)?))
            else {
                return false;
            };
            buf[done..done + avail].copy_from_slice(bytes);
            done += avail;
        }
        true
    }
    fn read_u32(&self, pa: u64) -> Option<u32> {
        self.read_array(pa).map(u32::from_le_bytes)
    }
    fn read_u64(&self, pa: u64) -> Option<u64> {
        self.read_array(pa).map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_lookup_on_many_small_runs_and_a_far_one() {
        // A page every other page (a bitmap dump's shape), then one run far away (a hostile
        // header): the index sizes its regions from both.
        let page = 0x1000u64;
        let mut runs: Vec<Run> = (0..1000)
            .map(|i| Run {
                phys: 2 * i * page,
                len: page,
                file_offset: i * page,
            })
            .collect();
        runs.push(Run {
            phys: 1 << 40,
            len: page,
            file_offset: 1000 * page,
        });
        let bytes = vec![0u8; 1001 * page as usize];
        let space = PhysicalSpace::new(Backing::Owned(bytes), runs, "raw", Path::new("t")).unwrap();
        let mut probes: Vec<u64> = (0..2100 * page).step_by(0x800).collect();
        probes.extend([
            (1 << 40) - 1,
            1 << 40,
            (1 << 40) + page - 1,
            (1 << 40) + page,
            u64::MAX,
        ]);
        for pa in probes {
            let linear = space
                .runs()
                .iter()
                .position(|r| r.phys <= pa && pa < r.phys_end());
            assert_eq!(space.run_index(pa), linear, "pa {pa:#x}");
        }
    }

    #[test]
    fn run_lookup_through_the_region_index_agrees_with_a_linear_search() {
        // Runs of one page to several regions, with gaps, some touching region boundaries.
        let page = 0x1000;
        let mut runs = vec![];
        let mut phys = 0x3000u64;
        let mut file_offset = 0;
        for (i, pages) in [1u64, 3, 512, 1, 2, 700, 1, 1, 1025, 5].iter().enumerate() {
            let len = pages * page;
            runs.push(Run {
                phys,
                len,
                file_offset,
            });
            file_offset += len;
            phys += len + (i as u64 % 3) * page + if i == 4 { 6 << 20 } else { 0 };
        }
        let bytes = vec![0u8; file_offset as usize];
        let space =
            PhysicalSpace::new(Backing::Owned(bytes), runs.clone(), "raw", Path::new("t")).unwrap();
        assert!(!space.run_index.first_run.is_empty());
        let end = space.end() + (4 << 20);
        let mut pa = 0;
        while pa < end {
            for probe in [pa, pa + 1, pa + page - 1] {
                let linear = space
                    .runs()
                    .iter()
                    .position(|r| r.phys <= probe && probe < r.phys_end());
                assert_eq!(space.run_index(probe), linear, "pa {probe:#x}");
            }
            pa += page;
        }
    }

    /// A bitmap dump's space answers every read as the same space built from its run list does:
    /// inside pages, across page and run boundaries, into absent pages and past the end.
    #[test]
    fn page_bitmap_space_reads_as_its_run_list() {
        let mut rng = crate::synth::rng::Rng::new(0x2545_f491_4f6c_dd1d);
        let mut next = move || rng.next_u64();
        let bits = 3000u64;
        let bitmap: Vec<u8> = (0..bits / 8).map(|_| (next() | next()) as u8).collect();
        let (present, _) = pages::census(&bitmap, bits);
        let first_page = 0x2000u64;
        let mut file = vec![0u8; 0x40];
        file.extend(&bitmap);
        file.resize(first_page as usize, 0);
        file.extend((0..present * PAGE).map(|_| next() as u8));
        let index = PageBitmap::new(&file, 0x40, bits, first_page);
        let listed = index.runs(&file);
        let by_pages = PhysicalSpace::from_storage(
            Backing::Owned(file.clone()),
            Storage::Pages(index),
            "crashdump-bitmap",
            Path::new("t"),
        )
        .unwrap();
        let by_runs =
            PhysicalSpace::new(Backing::Owned(file), listed, "raw", Path::new("t")).unwrap();
        assert!(by_pages.page_storage().is_some() && by_runs.page_storage().is_none());
        assert_eq!(by_pages.runs(), by_runs.runs());
        assert_eq!(by_pages.run_count(), by_runs.run_count());
        assert_eq!(by_pages.present_size(), by_runs.present_size());
        assert_eq!(by_pages.end(), by_runs.end());
        let mut reads = 0;
        for _ in 0..20_000 {
            let pa = next() % ((bits + 4) * PAGE);
            let len = [1, 8, 16, 0x100, 0x1000, 0x1800, 0x3000][(next() % 7) as usize];
            assert_eq!(
                by_pages.slice(pa, len),
                by_runs.slice(pa, len),
                "{pa:#x}+{len:#x}"
            );
            let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
            let read = by_pages.read_into(pa, &mut a);
            assert_eq!(read, by_runs.read_into(pa, &mut b), "{pa:#x}+{len:#x}");
            assert_eq!(a, b);
            reads += usize::from(read);
            let (lo, hi) = (pa, pa + next() % (64 * PAGE));
            let (mut ra, mut rb) = (vec![], vec![]);
            by_pages.for_each_run_between(lo, hi, |r| ra.push(r));
            by_runs.for_each_run_between(lo, hi, |r| rb.push(r));
            assert_eq!(ra, rb, "{lo:#x}..{hi:#x}");
        }
        assert!(reads > 5_000, "only {reads} reads found their bytes");
        // Pages said to lie past the end of the file are refused.
        let mut short = vec![0u8; first_page as usize];
        short[..8].fill(0xFF);
        let index = PageBitmap::new(&short, 0, 64, 0x100);
        assert!(PhysicalSpace::from_storage(
            Backing::Owned(short),
            Storage::Pages(index),
            "crashdump-bitmap",
            Path::new("t")
        )
        .is_err());
    }
}
