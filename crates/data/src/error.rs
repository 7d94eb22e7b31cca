//! One error type for everything that reads user data: every variant names the file, so a user with
//! a broken download knows which file to fetch again.

use std::path::{Path, PathBuf};

/// A problem with a dataset file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused (missing file, permission, disk full...). The cause is part of
    /// the message and deliberately not a `source()`: error reporters that print the chain (`{:#}`)
    /// would otherwise say it twice.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The file exists but its content is not what RCAR expects.
    #[error("{}: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },
}

impl DataError {
    pub fn io(path: &Path, cause: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            cause,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn an_io_error_says_its_cause_once() {
        let err = DataError::io(
            Path::new("/nonexistent.json"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        let text = err.to_string();
        assert_eq!(text.matches("not found").count(), 1, "{text}");
        // What `{:#}` and other chain printers append.
        assert!(err.source().is_none());
    }
}
