//! Where a sparse image file holds data: `SEEK_DATA`/`SEEK_HOLE` on its descriptor. A hole reads
//! as zeros like any other byte; knowing where the holes are only lets whole-image passes skip
//! them (a 1 TiB sparse raw file holding 32 MiB of memory is scanned in the time of its 32 MiB,
//! and its holes are never faulted into the page cache).
use super::{Run, PAGE};
use std::fs::File;

/// Extents listed at most; past them the rest of the file counts as data (a file fragmented into
/// more pieces is read plainly from there on: bounded memory and lseek calls, the same results).
const MAX_EXTENTS: usize = 1 << 16;

/// The file ranges `[start, end)` holding data, sorted and apart, when the file has holes; `None`
/// when it has none, when the file system cannot say (`SEEK_DATA` refused: EINVAL and the like),
/// or off Linux: whole-image passes then read the whole file, as for any file.
pub(super) fn data_extents(file: &File, len: u64) -> Option<Vec<(u64, u64)>> {
    #[cfg(target_os = "linux")]
    {
        let extents = linux::list(file, len);
        // Restores the descriptor's offset (nothing reads through it, but it is the evidence's).
        linux::rewind(file);
        extents.filter(|e| e.as_slice() != [(0, len)])
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, len);
        None
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::MAX_EXTENTS;
    use std::fs::File;
    use std::os::fd::AsRawFd;

    /// `lseek(fd, offset, whence)`, or the errno.
    fn seek(file: &File, offset: u64, whence: libc::c_int) -> Result<u64, i32> {
        let offset = libc::off_t::try_from(offset).map_err(|_| libc::EOVERFLOW)?;
        // SAFETY: lseek on an open descriptor this File owns; it only moves the file offset.
        let at = unsafe { libc::lseek(file.as_raw_fd(), offset, whence) };
        u64::try_from(at).map_err(|_| std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    pub(super) fn rewind(file: &File) {
        let _ = seek(file, 0, libc::SEEK_SET);
    }

    pub(super) fn list(file: &File, len: u64) -> Option<Vec<(u64, u64)>> {
        let mut extents = vec![];
        let mut pos = 0u64;
        while pos < len {
            let data = match seek(file, pos, libc::SEEK_DATA) {
                Ok(at) => at,
                // No data past `pos`: the rest of the file is a hole.
                Err(libc::ENXIO) => break,
                // The file system does not say: the plain pass.
                Err(_) => return None,
            };
            if data >= len {
                break;
            }
            let hole = seek(file, data, libc::SEEK_HOLE).ok()?.min(len);
            if hole <= data {
                return None;
            }
            if extents.len() + 1 == MAX_EXTENTS {
                extents.push((data, len));
                break;
            }
            extents.push((data, hole));
            pos = hole;
        }
        Some(extents)
    }
}

/// `runs` less the parts stored in holes, for whole-image passes. Each data extent is widened by
/// a page on each side and to whole physical pages (within its run), so that a pass still sees
/// every page holding any data whole, and every pattern that starts or ends in data (one can run
/// on into the zeros of a hole: a UTF-16 name's last NUL, a pointer after a tag).
pub(super) fn pass_runs(runs: &[Run], extents: &[(u64, u64)]) -> Vec<Run> {
    let mut out: Vec<Run> = vec![];
    for run in runs {
        let (file_start, file_end) = (run.file_offset, run.file_offset + run.len);
        let first = extents.partition_point(|&(_, end)| end.saturating_add(PAGE) <= file_start);
        // Parts of one run, in order: merged when they touch or overlap.
        let mut pending: Option<Run> = None;
        for &(start, end) in extents.get(first..).unwrap_or(&[]) {
            let (start, end) = (start.saturating_sub(PAGE), end.saturating_add(PAGE));
            if start >= file_end {
                break;
            }
            let Some(part) = run.clip_file(start, end) else {
                continue;
            };
            // Whole physical pages, inside the run.
            let lo = (part.phys / PAGE * PAGE).max(run.phys);
            let hi = part
                .phys_end()
                .div_ceil(PAGE)
                .saturating_mul(PAGE)
                .min(run.phys_end());
            let Some(part) = run.clip_phys(lo, hi) else {
                continue;
            };
            pending = match pending {
                Some(mut last) if part.phys <= last.phys_end() => {
                    last.len = last.phys_end().max(part.phys_end()) - last.phys;
                    Some(last)
                }
                Some(last) => {
                    out.push(last);
                    Some(part)
                }
                None => Some(part),
            };
        }
        out.extend(pending);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(phys: u64, len: u64, file_offset: u64) -> Run {
        Run {
            phys,
            len,
            file_offset,
        }
    }

    #[test]
    fn holes_are_cut_out_with_a_page_of_margin() {
        let raw = [run(0, 1 << 30, 0)];
        let extents = [(0, 0x2000), (0x10_0000, 0x10_1000), (0x10_3000, 0x20_0000)];
        assert_eq!(
            pass_runs(&raw, &extents),
            vec![
                run(0, 0x3000, 0),
                run(0xF_F000, 0x20_1000 - 0xF_F000, 0xF_F000)
            ]
        );
        // A run whose pages are not aligned to its file offsets: whole physical pages.
        let elf = [run(0x1000, 0x10_0000, 0x234)];
        let pass = pass_runs(&elf, &[(0x8000, 0x9000)]);
        assert_eq!(pass.len(), 1);
        let p = pass[0];
        assert!(
            p.phys.is_multiple_of(PAGE) && p.len.is_multiple_of(PAGE),
            "{p:?}"
        );
        assert!(
            p.file_offset <= 0x7000 && p.file_offset + p.len >= 0xA000,
            "{p:?}"
        );
        // Runs wholly in a hole are left out.
        assert!(pass_runs(&[run(0, 0x10_0000, 0x100_0000)], &[(0, 0x1000)]).is_empty());
    }

    #[test]
    fn a_sparse_file_lists_its_data() {
        use std::io::{Seek, SeekFrom, Write};
        let dir = std::env::temp_dir().join(format!("netcarve-extents-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sparse");
        let mut f = File::create(&path).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all(&[1u8; 0x1000]).unwrap();
        f.seek(SeekFrom::Start(32 << 20)).unwrap();
        f.write_all(&[2u8; 0x1000]).unwrap();
        drop(f);
        let f = File::open(&path).unwrap();
        let extents = data_extents(&f, 64 << 20);
        std::fs::remove_dir_all(&dir).ok();
        // Some file systems (tmpfs before 3.8, some overlays) cannot say: nothing to check then.
        if let Some(extents) = extents {
            let data: u64 = extents.iter().map(|(a, b)| b - a).sum();
            assert!(data < 8 << 20, "{extents:?}");
            for at in [0u64, 32 << 20] {
                assert!(
                    extents.iter().any(|&(a, b)| a <= at && at < b),
                    "{extents:?}"
                );
            }
        }
    }
}
