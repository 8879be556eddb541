//! Upload files on disk. A stored file is `<data_dir>/uploads/<key>.<ext>`: the key is
//! generated (and checked for its exact shape when it comes back in a URL) and the
//! extension comes from the sniffed kind, so no byte of a path is chosen by a client.
//!
//! A file being received is written to `<data_dir>/uploads-partial/<random>.part` and
//! renamed into place only once it is complete and accepted; the rename is atomic (same
//! filesystem), so `uploads/` never holds a half-written or rejected file. A partial
//! file is deleted when it is dropped without being kept — on rejection, on error, and
//! when the client goes away mid-upload and the request is cancelled.

use std::io;
use std::path::{Path, PathBuf};

use tokio::fs::{self, File, OpenOptions};
use tokio::io::AsyncWriteExt;

use super::{Kind, UploadKey};

/// The two upload directories under the data dir.
#[derive(Debug, Clone)]
pub struct UploadDir {
    stored: PathBuf,
    partial: PathBuf,
}

impl UploadDir {
    pub fn new(data_dir: &Path) -> Self {
        Self { stored: data_dir.join("uploads"), partial: data_dir.join("uploads-partial") }
    }

    /// Where stored files live (`<data_dir>/uploads`).
    pub fn stored_dir(&self) -> &Path {
        &self.stored
    }

    /// Where files being received live (`<data_dir>/uploads-partial`).
    pub fn partial_dir(&self) -> &Path {
        &self.partial
    }

    /// Where the file of an upload lives.
    pub fn path_of(&self, key: &UploadKey, kind: Kind) -> PathBuf {
        self.stored.join(format!("{}.{}", key.as_str(), kind.extension()))
    }

    /// A new, empty partial file (creating the directories on first use).
    pub async fn begin(&self) -> io::Result<PartialFile> {
        fs::create_dir_all(&self.partial).await?;
        fs::create_dir_all(&self.stored).await?;
        let path = self.partial.join(format!("{}.part", UploadKey::generate().as_str()));
        let file = OpenOptions::new().write(true).create_new(true).open(&path).await?;
        Ok(PartialFile { path, file, kept: false })
    }

    /// The stored file, or `None` if it is not there.
    pub async fn open(&self, key: &UploadKey, kind: Kind) -> io::Result<Option<File>> {
        match File::open(self.path_of(key, kind)).await {
            Ok(file) => Ok(Some(file)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Removes a stored file; one already gone is not an error.
    pub async fn remove(&self, key: &UploadKey, kind: Kind) -> io::Result<()> {
        match fs::remove_file(self.path_of(key, kind)).await {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

/// A file still being received; deleted on drop unless `keep_as` moved it into place.
pub struct PartialFile {
    path: PathBuf,
    file: File,
    kept: bool,
}

impl PartialFile {
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes).await
    }

    /// Finishes the file and renames it to `dest`.
    ///
    /// The data is flushed to the OS (tokio writes in the background; the flush waits
    /// for them), not fsynced: like the database (`synchronous = NORMAL`), a stored
    /// upload survives the process being killed, and only an OS crash may lose the last
    /// ones.
    pub async fn keep_as(mut self, dest: &Path) -> io::Result<()> {
        self.file.flush().await?;
        fs::rename(&self.path, dest).await?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.kept {
            // Synchronous on purpose: one unlink, and the file is gone by the time the
            // response goes out. Unlinking a file that still has a write in flight is
            // fine on Unix; the inode goes with the last handle.
            if let Err(err) = std::fs::remove_file(&self.path)
                && err.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(%err, path = %self.path.display(), "could not remove a partial upload");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn files_in(dir: &Path) -> usize {
        let Ok(mut entries) = fs::read_dir(dir).await else { return 0 };
        let mut n = 0;
        while entries.next_entry().await.unwrap().is_some() {
            n += 1;
        }
        n
    }

    #[tokio::test]
    async fn a_dropped_partial_file_leaves_nothing_and_a_kept_one_lands_in_place() {
        let data = tempfile::tempdir().unwrap();
        let dir = UploadDir::new(data.path());
        let mut partial = dir.begin().await.unwrap();
        partial.write(b"abandoned").await.unwrap();
        assert_eq!(files_in(&data.path().join("uploads-partial")).await, 1);
        drop(partial);
        assert_eq!(files_in(&data.path().join("uploads-partial")).await, 0);

        let key = UploadKey::generate();
        let mut partial = dir.begin().await.unwrap();
        partial.write(b"hello ").await.unwrap();
        partial.write(b"world").await.unwrap();
        partial.keep_as(&dir.path_of(&key, Kind::Text)).await.unwrap();
        assert_eq!(files_in(&data.path().join("uploads-partial")).await, 0);
        let stored = fs::read(data.path().join("uploads").join(format!("{}.txt", key.as_str()))).await.unwrap();
        assert_eq!(stored, b"hello world");
        assert!(dir.open(&key, Kind::Text).await.unwrap().is_some());
        dir.remove(&key, Kind::Text).await.unwrap();
        dir.remove(&key, Kind::Text).await.unwrap();
        assert!(dir.open(&key, Kind::Text).await.unwrap().is_none());
    }
}
