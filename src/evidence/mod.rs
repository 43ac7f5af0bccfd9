//! Evidence is only ever read. Every input file is opened through [`open_input`]: read-only and
//! non-blocking (a FIFO without a writer cannot hang the open), anything but a regular file
//! refused, and its identity (device, inode) remembered for the rest of the process, so that
//! [`open_output`] refuses an output that is an input under any name (the same path, a hard link,
//! a symlink). Evidence is mapped through [`EvidenceMap`], which turns the file shrinking under
//! the map (SIGBUS) into one line and exit code 2 (see `map`).
use crate::error::{io_error, Cause, Error, Result};
use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod map;

pub use map::EvidenceMap;

/// An input this process has opened: what `-o` must never overwrite.
struct Input {
    dev: u64,
    ino: u64,
    path: PathBuf,
    what: String,
}

/// Every input opened so far (a command opens a few; kept for the process's life).
static INPUTS: Mutex<Vec<Input>> = Mutex::new(Vec::new());

/// Opens an input file read-only. `what` names what the file should be ("memory image",
/// "capture", ...) in the one-line error for a directory or a special file.
pub fn open_input(path: &Path, what: &str) -> Result<File> {
    // Looked at before opening, so that a device is never opened at all (opening one can act).
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, &e))?;
    refuse_special(path, &meta, what)?;
    let file = open_read_only(path).map_err(|e| io_error(path, &e))?;
    // And again through the descriptor: the path may have been replaced in between.
    let meta = file.metadata().map_err(|e| io_error(path, &e))?;
    refuse_special(path, &meta, what)?;
    blocking(&file).map_err(|e| io_error(path, &e))?;
    remember(&meta, path, what);
    Ok(file)
}

/// Opens `-o FILE` for writing (created, or truncated), unless it is one of the inputs this
/// process has opened: then nothing is opened for writing and the error names both.
pub fn open_output(path: &Path) -> Result<File> {
    if let Ok(meta) = std::fs::metadata(path) {
        refuse_input(path, &meta)?;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| io_error(path, &e))?;
    // Truncated only once the descriptor is known not to be an input (the path may have changed
    // since it was looked at). A pipe or a device is written as it is.
    let meta = file.metadata().map_err(|e| io_error(path, &e))?;
    refuse_input(path, &meta)?;
    if meta.is_file() {
        file.set_len(0).map_err(|e| io_error(path, &e))?;
    }
    Ok(file)
}

fn refuse_input(out: &Path, meta: &Metadata) -> Result<()> {
    let Some((dev, ino)) = identity(meta) else {
        return Ok(());
    };
    let inputs = INPUTS.lock().unwrap_or_else(|e| e.into_inner());
    match inputs.iter().find(|i| i.dev == dev && i.ino == ino) {
        Some(input) => Err(Error::cause(
            out,
            Cause::IsInput {
                what: input.what.clone(),
                input: input.path.display().to_string(),
            },
        )),
        None => Ok(()),
    }
}

fn remember(meta: &Metadata, path: &Path, what: &str) {
    let Some((dev, ino)) = identity(meta) else {
        return;
    };
    let mut inputs = INPUTS.lock().unwrap_or_else(|e| e.into_inner());
    if !inputs.iter().any(|i| i.dev == dev && i.ino == ino) {
        inputs.push(Input {
            dev,
            ino,
            path: path.to_path_buf(),
            what: what.to_string(),
        });
    }
}

fn refuse_special(path: &Path, meta: &Metadata, what: &str) -> Result<()> {
    if meta.is_dir() {
        return Err(Error::cause(
            path,
            Cause::NotRegular(format!("is a directory, not a {what}")),
        ));
    }
    if let Some(kind) = special_file_kind(meta) {
        // A pipe cannot be mapped or read twice, and a device reports no size: say so.
        return Err(Error::cause(
            path,
            Cause::NotRegular(format!(
                "is a {kind}, not a regular file: copy the {what} to a file first"
            )),
        ));
    }
    Ok(())
}

/// What a non-regular file is (`None` for a regular file or where the platform cannot tell).
fn special_file_kind(meta: &Metadata) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return Some("named pipe");
        }
        if t.is_socket() {
            return Some("socket");
        }
        if t.is_char_device() {
            return Some("character device");
        }
        if t.is_block_device() {
            return Some("block device");
        }
    }
    (!meta.is_file()).then_some("special file")
}

#[cfg(unix)]
fn identity(meta: &Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn identity(_: &Metadata) -> Option<(u64, u64)> {
    None
}

#[cfg(unix)]
fn open_read_only(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

#[cfg(not(unix))]
fn open_read_only(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

/// Clears the `O_NONBLOCK` the open used: reads of the regular file then wait for the disk.
#[cfg(unix)]
fn blocking(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function's caller owns, with no pointers involved.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(unix))]
fn blocking(_: &File) -> std::io::Result<()> {
    Ok(())
}
