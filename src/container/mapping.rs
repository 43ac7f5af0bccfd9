//! How this process maps a range of the image (Linux `PAGEMAP_SCAN`, kernel 6.7 and later).
//!
//! Unmapping a range costs the kernel one step per page-table entry. A range mapped with 4 KiB
//! entries (a page cache of small folios) is worth releasing by the worker that scanned it, in
//! parallel; a range mapped with 2 MiB entries (huge folios, as after a sequential read) costs almost
//! nothing to unmap at exit, and releasing it early only buys a TLB-shootdown interrupt to the other
//! cores. This module tells the two apart.

/// How many of the pages in `[start, start + len)` of this process are present and mapped by
/// small (not huge) entries, counted up to `limit` (the kernel stops looking there). `None` when
/// the kernel cannot say (not Linux, older than 6.7, or /proc unavailable).
#[cfg(target_os = "linux")]
pub(super) fn small_pages_mapped(start: *const u8, len: usize, limit: u64) -> Option<u64> {
    use std::os::fd::AsRawFd;
    use std::sync::OnceLock;

    // uapi/linux/fs.h
    const PAGE_IS_PRESENT: u64 = 1 << 3;
    const PAGE_IS_HUGE: u64 = 1 << 6;
    const PAGEMAP_SCAN: u64 = 0xC060_6610; // _IOWR('f', 16, struct pm_scan_arg)
    #[repr(C)]
    #[derive(Default, Copy, Clone)]
    struct PageRegion {
        start: u64,
        end: u64,
        categories: u64,
    }
    #[repr(C)]
    struct PmScanArg {
        size: u64,
        flags: u64,
        start: u64,
        end: u64,
        walk_end: u64,
        vec: u64,
        vec_len: u64,
        max_pages: u64,
        category_inverted: u64,
        category_mask: u64,
        category_anyof_mask: u64,
        return_mask: u64,
    }

    static PAGEMAP: OnceLock<Option<std::fs::File>> = OnceLock::new();
    let pagemap = PAGEMAP
        .get_or_init(|| std::fs::File::open("/proc/self/pagemap").ok())
        .as_ref()?;
    let mut regions = [PageRegion::default(); 8];
    let start = start as u64;
    let mut arg = PmScanArg {
        size: std::mem::size_of::<PmScanArg>() as u64,
        flags: 0,
        start,
        end: start.checked_add(len as u64)?,
        walk_end: 0,
        vec: regions.as_mut_ptr() as u64,
        vec_len: regions.len() as u64,
        max_pages: limit,
        // Present and, inverted, not huge.
        category_inverted: PAGE_IS_HUGE,
        category_mask: PAGE_IS_PRESENT | PAGE_IS_HUGE,
        category_anyof_mask: 0,
        return_mask: PAGE_IS_PRESENT,
    };
    // SAFETY: PAGEMAP_SCAN reads `arg` and writes at most `vec_len` regions into `regions`, which
    // outlives the call; it only inspects this process's page tables.
    let filled = unsafe {
        libc::ioctl(
            pagemap.as_raw_fd(),
            PAGEMAP_SCAN as _,
            &mut arg as *mut PmScanArg,
        )
    };
    let filled = usize::try_from(filled).ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let pages: u64 = regions
        .get(..filled)?
        .iter()
        .map(|r| r.end.saturating_sub(r.start) / page)
        .sum();
    // The walk stopped early (the limit was reached, or more regions than `regions` holds): treat
    // it as reaching the limit.
    Some(if arg.walk_end < arg.end {
        pages.max(limit)
    } else {
        pages
    })
}

#[cfg(not(target_os = "linux"))]
pub fn small_pages_mapped(_start: *const u8, _len: usize, _limit: u64) -> Option<u64> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn counts_small_pages_of_a_touched_anonymous_map() {
        let len = 64 * 4096;
        let mut map = memmap2::MmapMut::map_anon(len).unwrap();
        // Untouched: nothing is present.
        let Some(none) = small_pages_mapped(map.as_ptr(), len, 1 << 20) else {
            return; // a kernel without PAGEMAP_SCAN: nothing to check
        };
        assert_eq!(none, 0);
        for page in (0..16).map(|p| p * 4096) {
            map[page] = 1;
        }
        let counted = small_pages_mapped(map.as_ptr(), len, 1 << 20).unwrap();
        // Anonymous memory may be backed by a huge page (THP), which counts as not small.
        assert!(counted == 16 || counted == 0, "counted {counted}");
        // With a limit the kernel stops there, and the answer is the limit.
        let limited = small_pages_mapped(map.as_ptr(), len, 4).unwrap();
        assert_eq!(limited, if counted == 16 { 4 } else { 0 });
    }
}
