//! Durable, private file writes: temp file, fsync, rename, fsync the
//! directory. A reader (or a restart after `kill -9`) sees the old file or
//! the new one, never a mix.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and parents) with mode 0700, and tightens an existing one.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let meta = fs::metadata(dir)?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically and durably, mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_file(path, bytes)?;
    sync_dir(parent(path)?)
}

/// Replaces `path` atomically (temp file, fsync, rename) without syncing the
/// directory: for batches that call [`sync_dir`] once at the end.
pub fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent(path)?;
    let name = path.file_name().ok_or_else(|| io::Error::other("path has no file name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `path` in place, mode 0600, without any fsync: for batches that
/// can write a torn file again after a crash, made durable by one
/// [`sync_filesystem`] afterwards.
pub fn write_private_unsynced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)
}

/// Makes everything written to the filesystem holding `dir` durable
/// (`syncfs`): one call for a batch of many files.
pub fn sync_filesystem(dir: &Path) -> io::Result<()> {
    let f = File::open(dir)?;
    rustix::fs::syncfs(&f)?;
    Ok(())
}

fn parent(path: &Path) -> io::Result<&Path> {
    path.parent().ok_or_else(|| io::Error::other("path has no parent directory"))
}

/// fsyncs a directory, making renames and creations in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes leftover `.*.tmp` files of interrupted atomic writes.
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            fs::remove_file(entry.path())?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_private_and_replaces() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("k.json");
        write_atomic(&p, b"one").expect("write");
        write_atomic(&p, b"two").expect("rewrite");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        assert_eq!(fs::metadata(&p).expect("meta").permissions().mode() & 0o777, 0o600);
        fs::write(d.path().join(".x.json.tmp"), b"partial").expect("tmp");
        assert_eq!(remove_stale_temps(d.path()).expect("clean"), 1);
    }

    #[test]
    fn private_dir_tightens_mode() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("a/b");
        private_dir(&p).expect("create");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
        private_dir(&p).expect("tighten");
        assert_eq!(fs::metadata(&p).expect("meta").permissions().mode() & 0o777, 0o700);
    }
}
