//! One error type for everything that reads user data: every variant names the file, so a user with
//! a broken download knows which file to fetch again.

use std::path::{Path, PathBuf};

/// A problem with a dataset file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused (missing file, permission, disk full...).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file exists but its content is not what RCAR expects.
    #[error("{}: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },
}

impl DataError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn invalid(path: &Path, msg: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. } | Self::Invalid { path, .. } => path,
        }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
