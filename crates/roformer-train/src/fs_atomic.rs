//! Writing files so that a crash never leaves a half-written one: write a temporary file
//! beside the target, flush it to disk, then rename it over the target (atomic on POSIX).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::TrainError;

/// The temporary path used while `path` is being written.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let tmp = temporary_path(path);
    let mut file = std::fs::File::create(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| TrainError::io(&tmp, e))?;
    file.sync_all().map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

/// Produces `path` atomically with `write`, which is handed the temporary path to write.
pub fn produce_atomic(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), TrainError>,
) -> Result<(), TrainError> {
    let tmp = temporary_path(path);
    write(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}
