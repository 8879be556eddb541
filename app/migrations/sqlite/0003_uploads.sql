-- Uploaded files: one row per stored file under <data_dir>/uploads/.
--
-- The file on disk is named `<public_id>.<extension of content_type>`; no path is
-- stored, so nothing read back from this table can point outside the uploads dir.
-- `public_id` is the unguessable key in `/uploads/<public_id>` (128 random bits as
-- hex); `id` is what the owner deletes by, and AUTOINCREMENT keeps it from being
-- reused after a delete.
--
-- The CHECKs restate the application's rules so a row can never carry a type outside
-- the allow-list (it is served with exactly this Content-Type) or a malformed key.
-- Deleting a user deletes their rows; their files are then unreachable (no row, no
-- URL) until swept.
-- Timestamps are `inserted_at` like every other table here.

CREATE TABLE uploads (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id     TEXT    NOT NULL CHECK (length(public_id) = 32 AND public_id NOT GLOB '*[^0-9a-f]*'),
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content_type  TEXT    NOT NULL CHECK (content_type IN (
                      'image/jpeg', 'image/png', 'image/gif', 'image/webp',
                      'application/pdf', 'text/plain; charset=utf-8')),
    size          INTEGER NOT NULL CHECK (size > 0),
    original_name TEXT    NOT NULL CHECK (length(original_name) BETWEEN 1 AND 255),
    sha256        TEXT    NOT NULL CHECK (length(sha256) = 64),
    inserted_at   TEXT    NOT NULL
);
CREATE UNIQUE INDEX uploads_public_id_idx ON uploads (public_id);
-- A user's uploads (listing, quotas, cleanup when the user goes).
CREATE INDEX uploads_user_idx ON uploads (user_id, id DESC);
