//! One writer per run directory: an exclusive OS lock (`flock`) on its `lock` file, taken before
//! anything in the directory is written and held until the writer is dropped. The OS releases it
//! when the process exits or dies, so a crashed run leaves a `lock` file that locks nothing.

use rcar_data::DataError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

pub const LOCK_FILE: &str = "lock";

/// Held while this process writes a run directory (or a table of them).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Locks `dir` (created if absent) or refuses at once, naming the directory and the process
    /// that holds it.
    pub fn acquire(dir: &Path) -> Result<Self, DataError> {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| DataError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {
                let pid = format!("{}\n", std::process::id());
                file.set_len(0)
                    .and_then(|()| file.seek(SeekFrom::Start(0)))
                    .and_then(|_| file.write_all(pid.as_bytes()))
                    .map_err(|e| DataError::io(&path, e))?;
                Ok(Self { _file: file })
            }
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // The holder wrote its pid right after locking; an unreadable one is still a lock.
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "another process".to_string(),
                    pid => format!("process {pid}"),
                };
                Err(DataError::invalid(
                    dir,
                    format!(
                        "{holder} is writing this run directory (a trainer, --resume or \
                         experiment): wait for it to finish or stop it"
                    ),
                ))
            }
            Err(TryLockError::Error(e)) => Err(DataError::io(&path, e)),
        }
    }
}
