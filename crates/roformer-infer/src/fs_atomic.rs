//! Writing files so that a crash never leaves a half-written one: write a temporary file
//! beside the target, flush it to disk, then rename it over the target (atomic on POSIX).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::InferError;

/// The temporary path used while `path` is being written.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), InferError> {
    let tmp = temporary_path(path);
    let mut file = std::fs::File::create(&tmp).map_err(|e| InferError::io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| InferError::io(&tmp, e))?;
    file.sync_all().map_err(|e| InferError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| InferError::io(path, e))
}

/// Produces `path` atomically with `write`, which is handed the temporary path to write.
/// A temporary file left by an earlier write that was killed is removed first, since
/// writers such as burn's safetensors store refuse to overwrite a file.
pub fn produce_atomic(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), InferError>,
) -> Result<(), InferError> {
    let tmp = temporary_path(path);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(InferError::io(&tmp, e)),
    }
    write(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| InferError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kill during an earlier write leaves `NAME.tmp`; the next write must still land,
    /// even with a writer that refuses to overwrite (as burn's safetensors store does).
    #[test]
    fn a_stale_temporary_file_does_not_block_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        std::fs::write(temporary_path(&path), b"torn").unwrap();
        produce_atomic(&path, |tmp| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(tmp)
                .map_err(|e| InferError::io(tmp, e))?;
            file.write_all(b"complete")
                .map_err(|e| InferError::io(tmp, e))
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"complete");
        assert!(!temporary_path(&path).exists());
    }
}
