//! One error type for the library. Every error renders as one line, `<file>: <what is wrong>`,
//! and `main` prefixes `netcarve: ` and exits with code 2.
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A problem with one input or output file: it names the file.
    #[error("{}: {msg}", path.display())]
    File { path: PathBuf, msg: String },
    /// A problem with the arguments or something not tied to one file.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub fn file(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::File {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
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
}

/// Turns an I/O error into a one-line message naming the file.
pub fn io_error(path: impl AsRef<Path>, e: &std::io::Error) -> Error {
    let msg = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => {
            // Strip the "(os error N)" tail: the kind is what the user needs.
            let s = e.to_string();
            s.split(" (os error").next().unwrap_or(&s).to_lowercase()
        }
    };
    Error::file(path, msg)
}
