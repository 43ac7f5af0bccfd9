//! Where every command's output goes, and the one policy for ending it. A closed pipe (`| head`)
//! is the reader's choice: the command ends quietly with the exit code it would have returned
//! (ripgrep's rule). Any other write error names the destination and is exit code 2.
use crate::error::{io_error, Result};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct Sink {
    w: BufWriter<Box<dyn Write>>,
    dest: PathBuf,
}

impl Sink {
    /// `-o FILE` (created or truncated; refused when it is one of the command's inputs) or stdout.
    pub fn open(path: Option<&Path>) -> Result<Sink> {
        let (w, dest): (Box<dyn Write>, PathBuf) = match path {
            Some(p) => {
                let f = crate::evidence::open_output(p)?;
                (Box::new(f), p.to_path_buf())
            }
            None => (
                Box::new(std::io::stdout().lock()),
                PathBuf::from("<stdout>"),
            ),
        };
        Ok(Sink {
            // Serializers write a few bytes at a time: buffer before the dynamic writer.
            w: BufWriter::with_capacity(1 << 16, w),
            dest,
        })
    }

    pub fn writer(&mut self) -> &mut dyn Write {
        &mut self.w
    }

    /// Ends the output: flushes what `written` left buffered and turns the outcome into the
    /// command's result, `code` unless a write failed for another reason than a closed pipe.
    pub fn finish(mut self, written: std::io::Result<()>, code: u8) -> Result<u8> {
        match written.and_then(|()| self.w.flush()) {
            Ok(()) => Ok(code),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                // What is still buffered has nowhere to go; dropping must not retry the write.
                let (_, _) = self.w.into_parts();
                Ok(code)
            }
            Err(e) => Err(io_error(&self.dest, &e)),
        }
    }
}

/// A serializer's error as the I/O error it wraps, so a closed pipe stays recognisable.
pub fn json_io(e: serde_json::Error) -> std::io::Error {
    std::io::Error::from(e)
}

/// The CSV writer's error as the I/O error it wraps, so a closed pipe stays recognisable.
pub fn csv_io(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("cannot write CSV: {other:?}")),
    }
}
