//! Atomic file writes and canonical JSON bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::ReportError;

fn io_err(path: &Path, source: std::io::Error) -> ReportError {
    ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write `bytes` to `path` atomically: write a temporary file in the same directory, flush it,
/// then rename it over `path` (readers see either the old or the new file, never a torn one).
///
/// # Errors
/// [`ReportError::Io`] naming the path that failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp: PathBuf = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
    f.sync_all().map_err(|e| io_err(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))
}

/// Canonical JSON bytes: pretty-printed, keys in insertion order (the crate builds JSON with
/// `preserve_order`, never from hash maps), a trailing newline. Same value ⇒ same bytes.
///
/// # Errors
/// [`ReportError::Json`] when serialisation fails.
pub fn to_json_bytes<T: serde::Serialize>(what: &str, value: &T) -> Result<Vec<u8>, ReportError> {
    let mut v = serde_json::to_vec_pretty(value).map_err(|e| ReportError::Json {
        what: what.to_string(),
        message: e.to_string(),
    })?;
    v.push(b'\n');
    Ok(v)
}

/// [`to_json_bytes`] then [`write_atomic`].
///
/// # Errors
/// As those two functions.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), ReportError> {
    let bytes = to_json_bytes(&path.display().to_string(), value)?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/a.json");
        write_json_atomic(&p, &serde_json::json!({"b": 1, "a": [1.5, "x"]})).unwrap();
        write_json_atomic(&p, &serde_json::json!({"b": 2, "a": []})).unwrap();
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.starts_with("{\n  \"b\": 2,"), "{s}");
        assert!(s.ends_with("}\n"));
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn json_bytes_are_deterministic_and_ordered() {
        let v = serde_json::json!({"z": 1, "a": 2});
        let a = to_json_bytes("t", &v).unwrap();
        assert_eq!(a, to_json_bytes("t", &v).unwrap());
        assert!(String::from_utf8(a).unwrap().find("\"z\"") < Some(10));
    }

    #[test]
    fn unwritable_path_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = write_atomic(&blocker.join("x.json"), b"{}").unwrap_err();
        assert!(err.to_string().contains("file"), "{err}");
    }
}
