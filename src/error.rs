//! One error type for the library. Every error renders as one line, `<file>: <what is wrong>`,
//! and `main` prefixes `netcarve: ` and exits with code 2. What is wrong is a typed [`Cause`], so
//! callers and tests match the cause, not the words.
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A problem with one input or output file: it names the file.
    #[error("{}: {cause}", path.display())]
    File { path: PathBuf, cause: Cause },
    /// A problem with the arguments or something not tied to one file.
    #[error("{0}")]
    Usage(String),
}

/// What is wrong with a file. The variants group what a caller may act on; the numbers in them
/// are the evidence the message gives.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Cause {
    #[error("no such file")]
    NotFound,
    #[error("permission denied")]
    PermissionDenied,
    /// Any other I/O error: its message, lower-cased, without the `(os error N)` tail.
    #[error("{0}")]
    Io(String),
    #[error("empty file")]
    Empty,
    /// A directory, pipe, socket or device given where a regular file was wanted.
    #[error("{0}")]
    NotRegular(String),
    /// `-o` names one of the command's inputs.
    #[error("is the {what} {input} (the same file): netcarve never writes over its input")]
    IsInput { what: String, input: String },
    /// A fixed header or table that the file ends before.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A fixed header shorter than its format's size.
    #[error("truncated {what} ({actual:#x} of {expected:#x} bytes)")]
    HeaderSize {
        what: &'static str,
        expected: u64,
        actual: u64,
    },
    /// The data a header describes end past the end of the file.
    #[error("{what} need {expected:#x} bytes but the file has {actual:#x} (truncated dump)")]
    DataSize {
        what: &'static str,
        expected: u128,
        actual: u64,
    },
    /// A processor architecture netcarve does not read.
    #[error("unsupported architecture: {0}")]
    UnsupportedArch(String),
    /// A format, version or variant netcarve does not read, and why.
    #[error("{0}")]
    Unsupported(String),
    /// A header or table whose fields contradict each other or the file.
    #[error("{0}")]
    Malformed(String),
    /// No known container header, and too small for raw memory.
    #[error("unknown format: {len} bytes, no known header and too small for a raw memory image")]
    UnknownFormat { len: usize },
    /// Nothing in the image leads to the kernel.
    #[error("{0}")]
    NoKernel(&'static str),
    /// A profile or PDB that does not give what a profile needs.
    #[error("{0}")]
    Profile(String),
    /// A capture that cannot be read.
    #[error("{0}")]
    Capture(Fault),
    /// Said in words only (compare's inputs, scan JSON).
    #[error("{0}")]
    Other(String),
}

/// Why a capture, or one row of it, could not be read: typed by what a caller may act on (a field
/// absent, a value the format does not allow, a time, the file's structure, its text encoding),
/// each rendering as the one line the warnings and errors show.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// A field the format requires is absent (`"LocalAddress"`, `local address`).
    #[error("missing {0}")]
    Missing(String),
    /// A field is there but its value is not one the format allows.
    #[error("{0}")]
    Value(String),
    /// A time that reads as no instant.
    #[error("{0}")]
    Time(String),
    /// The file is not laid out as its format is (not JSON, no rows, an unknown producer).
    #[error("{0}")]
    Structure(String),
    /// The bytes are not text in an encoding that can be decided.
    #[error("{0}")]
    Encoding(String),
    /// A fault of one row (`row 3`, `line 12`).
    #[error("{place}: {fault}")]
    At { place: String, fault: Box<Fault> },
}

impl Fault {
    pub fn at(self, place: impl Into<String>) -> Fault {
        Fault::At {
            place: place.into(),
            fault: Box::new(self),
        }
    }
    pub fn missing(field: impl Into<String>) -> Fault {
        Fault::Missing(field.into())
    }
}

impl Error {
    /// An error of `path` said in words only; [`Error::cause`] gives a typed cause.
    pub fn file(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::cause(path, Cause::Other(msg.into()))
    }
    pub fn cause(path: impl AsRef<Path>, cause: Cause) -> Self {
        Error::File {
            path: path.as_ref().to_path_buf(),
            cause,
        }
    }
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }
    /// Names `path` as the file of an error that was raised without one.
    pub fn in_file(self, path: impl AsRef<Path>) -> Self {
        match self {
            Error::Usage(msg) => Error::file(path, msg),
            other => other,
        }
    }
    /// The cause of a file error.
    pub fn file_cause(&self) -> Option<&Cause> {
        match self {
            Error::File { cause, .. } => Some(cause),
            Error::Usage(_) => None,
        }
    }
}

/// Turns an I/O error into a one-line message naming the file.
pub fn io_error(path: impl AsRef<Path>, e: &std::io::Error) -> Error {
    let cause = match e.kind() {
        std::io::ErrorKind::NotFound => Cause::NotFound,
        std::io::ErrorKind::PermissionDenied => Cause::PermissionDenied,
        _ => {
            // Strip the "(os error N)" tail: the kind is what the user needs.
            let s = e.to_string();
            Cause::Io(s.split(" (os error").next().unwrap_or(&s).to_lowercase())
        }
    };
    Error::cause(path, cause)
}
