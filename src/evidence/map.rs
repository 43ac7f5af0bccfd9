//! Read-only maps of evidence, guarded against the file shrinking under them. Reading a mapped
//! page past the file's new end raises SIGBUS, which would kill the process without a word
//! (exit 135) when an image is re-copied in place mid-scan. A SIGBUS handler looks the faulting
//! address up in the live maps; inside one, it writes that map's preformatted line and exits with
//! code 2; anywhere else it puts the previous action back and returns, so the fault repeats under
//! it (Rust's own handler, or the default). The handler only loads atomics and calls `fstat`,
//! `write` and `_exit`, all async-signal-safe.
use crate::error::{io_error, Result};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicUsize, Ordering};

/// A read-only map of one evidence file, registered with the SIGBUS guard while it lives.
pub struct EvidenceMap {
    guard: &'static Guard,
    map: memmap2::Mmap,
    /// Kept open so that the handler can ask for the file's size now.
    _file: File,
}

impl EvidenceMap {
    /// Maps `file` (opened with [`open_input`](super::open_input)) whole; `path` names it in the
    /// line the guard prints.
    pub fn new(file: File, path: &Path) -> Result<EvidenceMap> {
        // SAFETY: a read-only, private view; the file changing under it is what the guard is for
        // (a shrink ends the process with a message, other changes are inconsistent bytes).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io_error(path, &e))?;
        let guard = Guard::register(&map, &file, path);
        Ok(EvidenceMap {
            guard,
            map,
            _file: file,
        })
    }

    /// The map itself, for advice to the kernel.
    pub fn mmap(&self) -> &memmap2::Mmap {
        &self.map
    }
}

impl std::ops::Deref for EvidenceMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for EvidenceMap {
    fn drop(&mut self) {
        // Before the fields drop: the range is forgotten before it is unmapped and the file closed.
        self.guard.end.store(0, Ordering::Release);
        self.guard.start.store(0, Ordering::Release);
        self.guard.fd.store(-1, Ordering::Release);
    }
}

/// One guarded range. Nodes are leaked and never unlinked (the handler may be walking them);
/// a dropped map leaves an empty range behind. A process maps a few files.
struct Guard {
    start: AtomicUsize,
    end: AtomicUsize,
    fd: AtomicI32,
    /// The line for a file now shorter than its map, and for a read that failed otherwise (an
    /// I/O error under the map).
    shrunk: &'static [u8],
    failed: &'static [u8],
    next: AtomicPtr<Guard>,
}

static GUARDS: AtomicPtr<Guard> = AtomicPtr::new(std::ptr::null_mut());

impl Guard {
    fn register(map: &memmap2::Mmap, file: &File, path: &Path) -> &'static Guard {
        let line = |what: &str| -> &'static [u8] {
            let text = format!("netcarve: {}: {what}\n", path.display());
            Box::leak(text.into_bytes().into_boxed_slice())
        };
        let start = map.as_ptr() as usize;
        let guard: &'static Guard = Box::leak(Box::new(Guard {
            start: AtomicUsize::new(start),
            end: AtomicUsize::new(start + map.len()),
            fd: AtomicI32::new(raw_fd(file)),
            shrunk: line("changed size while being read"),
            failed: line("a read of the mapped file failed (I/O error)"),
            next: AtomicPtr::new(std::ptr::null_mut()),
        }));
        let node = guard as *const Guard as *mut Guard;
        let mut head = GUARDS.load(Ordering::Acquire);
        loop {
            guard.next.store(head, Ordering::Release);
            match GUARDS.compare_exchange(head, node, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
        install();
        guard
    }
}

#[cfg(unix)]
fn raw_fd(file: &File) -> i32 {
    std::os::fd::AsRawFd::as_raw_fd(file)
}

#[cfg(not(unix))]
fn raw_fd(_: &File) -> i32 {
    -1
}

/// The action SIGBUS had before ours, put back for faults outside evidence maps.
#[cfg(target_os = "linux")]
static PREVIOUS: std::sync::OnceLock<libc::sigaction> = std::sync::OnceLock::new();

#[cfg(target_os = "linux")]
fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction with valid pointers to zero-initialised structs (a valid bit pattern
        // for them); the handler is an `extern "C"` function of the expected signature.
        unsafe {
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut previous) != 0 {
                return;
            }
            let _ = PREVIOUS.set(previous);
            let mut action: libc::sigaction = std::mem::zeroed();
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                on_sigbus;
            action.sa_sigaction = handler as libc::sighandler_t;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
        }
    });
}

/// Elsewhere the fault keeps its default outcome.
#[cfg(not(target_os = "linux"))]
fn install() {}

#[cfg(target_os = "linux")]
extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers; `si_addr` is the
    // faulting address for SIGBUS.
    let addr = unsafe { (*info).si_addr() } as usize;
    let mut node = GUARDS.load(Ordering::Acquire);
    while !node.is_null() {
        // SAFETY: nodes are leaked, never freed.
        let guard = unsafe { &*node };
        let start = guard.start.load(Ordering::Acquire);
        let end = guard.end.load(Ordering::Acquire);
        if start <= addr && addr < end {
            // SAFETY: fstat, write and _exit are async-signal-safe; `stat` is plain data and the
            // line a leaked, immutable buffer.
            unsafe {
                let mut stat: libc::stat = std::mem::zeroed();
                let fd = guard.fd.load(Ordering::Acquire);
                let shrunk = libc::fstat(fd, &mut stat) == 0
                    && u64::try_from(stat.st_size).is_ok_and(|size| size < (end - start) as u64);
                let line = if shrunk { guard.shrunk } else { guard.failed };
                libc::write(2, line.as_ptr().cast(), line.len());
                libc::_exit(2);
            }
        }
        node = guard.next.load(Ordering::Acquire);
    }
    // Not evidence: the previous action handles the fault when it repeats on return, or the
    // signal raised again when it was sent rather than caused (si_code <= 0: kill, raise).
    // SAFETY: sigaction with a struct read from the kernel, or the default action; raise is
    // async-signal-safe.
    unsafe {
        match PREVIOUS.get() {
            Some(previous) => libc::sigaction(libc::SIGBUS, previous, std::ptr::null_mut()),
            None => {
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
                0
            }
        };
        if (*info).si_code <= 0 {
            libc::raise(libc::SIGBUS);
        }
    }
}
