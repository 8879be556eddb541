//! At start, before anything is served: upload files that no row points at are
//! removed. A crash (SIGKILL, power loss) can leave two kinds: a partial file of a
//! request that was being received (`uploads-partial/*.part`), and a stored file
//! renamed into `uploads/` whose row was never committed. No request is in flight
//! yet, so every partial file is an orphan, and a stored file is one when the database
//! has no upload with its key and type. Files whose names we never make are left
//! alone (with a warning): the sweep only deletes what this server wrote.
//!
//! A directory shared by the nodes of a cluster (`--uploads-dir`) may have requests in
//! flight on the other nodes: there the sweep removes only files untouched for
//! [`SHARED_GRACE`], which no upload still being received or committed is.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::fs;

use super::{Kind, UploadDir, UploadKey};
use crate::store::Store;

/// What a sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub partial: usize,
    pub stored: usize,
}

/// How long a file in a shared uploads directory must have been left alone before a
/// starting node may take it for an orphan.
pub const SHARED_GRACE: Duration = Duration::from_secs(3600);

/// Removes the orphaned upload files under `root` (see the module docs); with `grace`,
/// only those not modified for that long.
pub async fn sweep_orphans(store: &Store, root: &Path, grace: Option<Duration>) -> Result<Swept, String> {
    let dir = UploadDir::new(root);
    let recorded: HashSet<PathBuf> = store
        .upload_files()
        .await
        .map_err(|e| format!("listing uploads: {e}"))?
        .iter()
        .map(|(key, kind)| dir.path_of(key, *kind))
        .collect();
    let mut swept = Swept::default();
    for path in files_in(dir.partial_dir()).await? {
        if !left_alone(&path, grace).await {
            continue;
        }
        if path.extension().is_some_and(|e| e == "part") {
            remove(&path).await?;
            swept.partial += 1;
        } else {
            tracing::warn!(path = %path.display(), "not an upload file; left alone");
        }
    }
    for path in files_in(dir.stored_dir()).await? {
        if recorded.contains(&path) || !left_alone(&path, grace).await {
            continue;
        }
        if is_upload_name(&path) {
            remove(&path).await?;
            swept.stored += 1;
        } else {
            tracing::warn!(path = %path.display(), "not an upload file; left alone");
        }
    }
    if swept != Swept::default() {
        tracing::info!(partial = swept.partial, stored = swept.stored, "removed orphaned upload files");
    }
    Ok(swept)
}

/// `<key>.<extension of a kind>`: a name `UploadDir::path_of` makes.
fn is_upload_name(path: &Path) -> bool {
    let (Some(stem), Some(ext)) = (path.file_stem().and_then(|s| s.to_str()), path.extension()) else {
        return false;
    };
    UploadKey::parse(stem).is_some() && Kind::ALL.iter().any(|k| ext == k.extension())
}

/// Whether `path` has not been modified for `grace` (always, without one).
async fn left_alone(path: &Path, grace: Option<Duration>) -> bool {
    let Some(grace) = grace else { return true };
    let modified = fs::metadata(path).await.and_then(|m| m.modified());
    modified.is_ok_and(|at| at.elapsed().is_ok_and(|age| age >= grace))
}

/// The regular files directly in `dir` (none when it does not exist).
async fn files_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let failed = |e: std::io::Error| format!("reading {}: {e}", dir.display());
    let mut entries = match fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(failed(e)),
    };
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(failed)? {
        if entry.file_type().await.map_err(failed)?.is_file() {
            files.push(entry.path());
        }
    }
    Ok(files)
}

async fn remove(path: &Path) -> Result<(), String> {
    match fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("removing {}: {e}", path.display())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_we_make_are_upload_names() {
        let key = UploadKey::generate();
        assert!(is_upload_name(Path::new(&format!("/d/uploads/{}.png", key.as_str()))));
        assert!(is_upload_name(Path::new(&format!("/d/uploads/{}.txt", key.as_str()))));
        for other in ["/d/uploads/notes.txt", "/d/uploads/README", &format!("/d/uploads/{}.exe", key.as_str())] {
            assert!(!is_upload_name(Path::new(other)), "{other}");
        }
    }
}
