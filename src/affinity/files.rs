//! Private files written atomically: a temporary file (mode 0600 from its creation, so the content is never
//! readable by others even for a moment) in the target's directory, synced, then moved into place.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::affinity::AffinityError;

/// Whether [`write_private`] may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replace {
    /// Replace it (snapshots).
    Yes,
    /// Keep it and report `false` (keys: the first one created wins).
    No,
}

/// Writes `path` atomically with mode 0600; `fill` writes the content. Returns whether the file was written
/// (`false` only with [`Replace::No`] when the file already existed).
pub(crate) fn write_private(
    path: &Path,
    replace: Replace,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<bool, AffinityError> {
    let io_err = |source| AffinityError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = temp_sibling(path);
    let result = (|| {
        let file = create_private(&tmp)?;
        let mut writer = BufWriter::new(file);
        fill(&mut writer)?;
        let file = writer
            .into_inner()
            .map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        match replace {
            Replace::Yes => std::fs::rename(&tmp, path).map(|()| true),
            // A hard link never replaces its target, so two processes racing to create a key agree on one.
            Replace::No => match std::fs::hard_link(&tmp, path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            },
        }
    })();
    // After a rename the temporary name is gone; after a link or a failure it must go.
    let _ = std::fs::remove_file(&tmp);
    let written = result.map_err(io_err)?;
    if written {
        sync_parent(path);
    }
    Ok(written)
}

/// Refuses a file that group or others can access.
pub(crate) fn check_private(path: &Path) -> Result<(), AffinityError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| AffinityError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(AffinityError::KeyPermissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn temp_sibling(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(
        ".tmp-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    PathBuf::from(name)
}

fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Makes the rename durable. Best effort: some filesystems cannot sync a directory, and the file itself is
/// already complete either way.
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A path in the temp directory no other test (or test run) uses.
    pub(crate) fn temp_path(label: &str) -> PathBuf {
        static N: AtomicU32 = AtomicU32::new(0);
        std::env::temp_dir().join(format!(
            "tokenroute-test-{label}-{}-{}-{:08x}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        ))
    }

    #[test]
    fn replace_no_keeps_the_first_file() {
        let path = temp_path("first");
        assert!(write_private(&path, Replace::No, |w| w.write_all(b"one")).unwrap());
        assert!(!write_private(&path, Replace::No, |w| w.write_all(b"two")).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        assert!(write_private(&path, Replace::Yes, |w| w.write_all(b"three")).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn failed_fill_leaves_no_file_behind() {
        let path = temp_path("fail");
        let err = write_private(&path, Replace::Yes, |_| Err(io::Error::other("boom")));
        assert!(err.is_err());
        assert!(!path.exists());
        let dir = std::env::temp_dir();
        let prefix = path.file_name().unwrap().to_string_lossy().into_owned();
        let leftovers = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .count();
        assert_eq!(leftovers, 0);
    }
}
