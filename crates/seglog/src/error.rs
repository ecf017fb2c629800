//! The one error type of the storage engine.
//!
//! Callers match on it in two places only: the server maps `Corrupt` and `Io` to an internal
//! failure, and `Poisoned` tells a shard writer to stop acknowledging.

use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Error {
    /// An I/O call failed on the named file.
    Io { path: PathBuf, source: io::Error },
    /// Bytes on disk that fail a check: a checksum, a magic number, a position out of order.
    /// Never a torn tail of the active segment, which recovery truncates instead.
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A record or a batch larger than the format can hold.
    TooLarge { bytes: usize, max: usize },
    /// An earlier fsync failed; the log refuses further writes until it is reopened, because
    /// after a failed fsync the kernel may have dropped dirty pages and a retry can lie.
    Poisoned { path: PathBuf },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The file system is out of space (or quota): the write can succeed once space frees,
    /// and nothing before it was lost.
    pub fn is_storage_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => {
                matches!(
                    source.kind(),
                    io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
                )
            }
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "i/o error on {}: {source}", path.display()),
            Error::Corrupt {
                path,
                offset,
                reason,
            } => {
                write!(
                    f,
                    "corrupt data in {} at offset {offset}: {reason}",
                    path.display()
                )
            }
            Error::TooLarge { bytes, max } => {
                write!(
                    f,
                    "batch of {bytes} bytes is larger than the maximum of {max}"
                )
            }
            Error::Poisoned { path } => write!(
                f,
                "log {} refuses writes after a failed fsync; restart to recover",
                path.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
