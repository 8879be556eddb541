//! Reading the `POST /api/uploads` form: the one `file` field streamed into a partial
//! file while its size is counted, its kind sniffed and its SHA-256 taken; other fields
//! skipped. Nothing is buffered whole, so memory stays flat whatever is sent.
//!
//! After a rejection the rest of the body is still read, within a small budget, so the
//! client gets to read our error instead of a connection reset (hyper closes a
//! connection whose request body was left unread, and the kernel answers the unread
//! bytes with a reset). Past the budget we stop reading and let that happen.

use axum::extract::multipart::{Field, Multipart, MultipartError};
use sha2::{Digest, Sha256};

use super::model::hex;
use super::storage::{PartialFile, UploadDir};
use super::{Kind, Sniffer, name};
use crate::http::ApiError;

/// The form field that carries the file.
pub const FILE_FIELD: &str = "file";

/// Bytes a form may carry besides the file: multipart framing, other fields, and what
/// is read on after a rejection.
pub const FORM_OVERHEAD: usize = 64 * 1024;

/// A file received in full and of an allowed kind, not yet stored.
pub struct Received {
    pub partial: PartialFile,
    pub kind: Kind,
    pub size: usize,
    pub sha256: String,
    pub original_name: String,
}

/// Reads the whole form; the file must be at most `max_file` bytes.
pub async fn receive(multipart: &mut Multipart, dir: &UploadDir, max_file: usize) -> Result<Received, ApiError> {
    let mut spare = FORM_OVERHEAD;
    let mut received = None;
    let mut error = None;
    while let Some(field) = multipart.next_field().await.map_err(|e| error.take().unwrap_or(malformed(e)))? {
        let is_file = field.name() == Some(FILE_FIELD);
        if is_file && received.is_none() && error.is_none() {
            match read_file(field, dir, max_file, &mut spare).await {
                Ok(file) => received = Some(file),
                Err(Rejected { error: e, at_boundary: true }) => error = Some(e),
                Err(Rejected { error: e, at_boundary: false }) => return Err(e),
            }
            continue;
        }
        if is_file && error.is_none() {
            error = Some(invalid("send exactly one file per upload"));
        }
        if !skip(field, &mut spare).await {
            return Err(error.unwrap_or(ApiError::PayloadTooLarge(max_file)));
        }
    }
    match error {
        Some(e) => Err(e),
        None => received.ok_or_else(|| invalid("is required: send the file as a multipart field named `file`")),
    }
}

/// Reads the rest of a form and throws it away, within `budget` bytes: for a request
/// refused before its file was read, so the client gets to read the answer.
pub async fn discard(multipart: &mut Multipart, mut budget: usize) {
    while let Ok(Some(field)) = multipart.next_field().await {
        if !skip(field, &mut budget).await {
            return;
        }
    }
}

/// A rejected file, and whether the body was read to the end of its field (so reading
/// can go on with the next one).
struct Rejected {
    error: ApiError,
    at_boundary: bool,
}

impl Rejected {
    fn midway(error: ApiError) -> Self {
        Self { error, at_boundary: false }
    }
}

async fn read_file(
    mut field: Field<'_>,
    dir: &UploadDir,
    max_file: usize,
    spare: &mut usize,
) -> Result<Received, Rejected> {
    let original_name = name::sanitize(field.file_name());
    let mut partial = dir.begin().await.map_err(|e| Rejected::midway(io_error(e)))?;
    let mut sniffer = Sniffer::new();
    let mut hasher = Sha256::new();
    let mut size = 0usize;
    while let Some(chunk) = field.chunk().await.map_err(|e| Rejected::midway(malformed(e)))? {
        size += chunk.len();
        if size > max_file {
            let at_boundary = skip(field, spare).await;
            return Err(Rejected { error: ApiError::PayloadTooLarge(max_file), at_boundary });
        }
        // A file that can no longer pass is read to its end but not kept.
        if !sniffer.hopeless() {
            sniffer.feed(&chunk);
            hasher.update(&chunk);
            partial.write(&chunk).await.map_err(|e| Rejected::midway(io_error(e)))?;
        }
    }
    let rejected = |error| Rejected { error, at_boundary: true };
    if size == 0 {
        return Err(rejected(invalid("must not be empty")));
    }
    let kind = sniffer.finish().ok_or_else(|| rejected(ApiError::UnsupportedMediaType("unsupported file type")))?;
    Ok(Received { partial, kind, size, sha256: hex(&hasher.finalize()), original_name })
}

/// Reads a field to its end, discarding it, within the `spare` budget; false when the
/// budget ran out (or the body broke) first.
async fn skip(mut field: Field<'_>, spare: &mut usize) -> bool {
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) if chunk.len() <= *spare => *spare -= chunk.len(),
            Ok(None) => return true,
            Ok(Some(_)) | Err(_) => return false,
        }
    }
}

fn invalid(message: &str) -> ApiError {
    ApiError::field(FILE_FIELD, message)
}

fn malformed(err: MultipartError) -> ApiError {
    ApiError::BadRequest(format!("malformed multipart body: {}", err.body_text()))
}

fn io_error(err: std::io::Error) -> ApiError {
    ApiError::Internal(format!("writing an upload: {err}"))
}
