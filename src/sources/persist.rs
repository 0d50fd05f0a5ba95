//! Keeping the last accepted admin snapshot on disk, written atomically (temporary file, fsync,
//! rename, fsync of the directory), so a restart during an admin outage still routes.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The persisted document, exactly as the admin served it.
pub const SNAPSHOT_FILE: &str = "snapshot.json";
/// The ETag that came with it, for a conditional first fetch after a restart.
pub const ETAG_FILE: &str = "snapshot.etag";

/// Writes `bytes` to `dir/name` so that readers see the old file or the new one, never a part.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_FILE)
}

/// The persisted ETag, if any.
pub fn read_etag(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(ETAG_FILE)).ok()?;
    let etag = text.trim();
    (!etag.is_empty()).then(|| etag.to_string())
}

/// Persists an accepted document and its ETag (an absent ETag removes the old one).
pub fn save(dir: &Path, body: &[u8], etag: Option<&str>) -> std::io::Result<()> {
    write_atomically(dir, SNAPSHOT_FILE, body)?;
    match etag {
        Some(etag) => write_atomically(dir, ETAG_FILE, etag.as_bytes()),
        None => match std::fs::remove_file(dir.join(ETAG_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_replaces_whole_files_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), b"{\"version\":\"1\"}", Some("\"v1\"")).unwrap();
        save(dir.path(), b"{\"version\":\"2\"}", Some("\"v2\"")).unwrap();
        assert_eq!(
            std::fs::read(snapshot_path(dir.path())).unwrap(),
            b"{\"version\":\"2\"}"
        );
        assert_eq!(read_etag(dir.path()).as_deref(), Some("\"v2\""));
        save(dir.path(), b"{}", None).unwrap();
        assert_eq!(read_etag(dir.path()), None);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![SNAPSHOT_FILE.to_string()]);
    }

    #[test]
    fn a_failed_write_keeps_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), b"old", None).unwrap();
        let missing = dir.path().join("no-such-dir");
        assert!(write_atomically(&missing, SNAPSHOT_FILE, b"new").is_err());
        assert_eq!(std::fs::read(snapshot_path(dir.path())).unwrap(), b"old");
    }
}
