-- Users and their API tokens, bookmarks and tags.
--
-- Constraints live here, not in application code: the unique indexes are what make
-- "one tag per name" and "one token per hash" true under concurrency, and foreign keys
-- (enabled per connection by the store) keep bookmark_tags from pointing at nothing.

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    username    TEXT    NOT NULL,
    inserted_at TEXT    NOT NULL
);
-- Usernames are validated lowercase at the edge; the index keeps them unique.
CREATE UNIQUE INDEX users_username_idx ON users (username);

-- Only a SHA-256 of each token is stored: a leaked database does not leak credentials.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   BLOB    NOT NULL,
    inserted_at  TEXT    NOT NULL
);
CREATE UNIQUE INDEX api_tokens_hash_idx ON api_tokens (token_hash);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

CREATE TABLE bookmarks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       TEXT    NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    description TEXT    NOT NULL DEFAULT '' CHECK (length(description) <= 10000),
    url         TEXT    NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    public      INTEGER NOT NULL DEFAULT 1 CHECK (public IN (0, 1)),
    inserted_at TEXT    NOT NULL
);
-- AUTOINCREMENT: ids are never reused after a delete, so a listener never sees two
-- different bookmarks under one id.
-- Feeds read newest-first public bookmarks, and one user's bookmarks.
CREATE INDEX bookmarks_public_id_idx ON bookmarks (public, id DESC);
CREATE INDEX bookmarks_user_idx ON bookmarks (user_id, id DESC);

CREATE TABLE tags (
    id   INTEGER PRIMARY KEY,
    name TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 50)
);
CREATE UNIQUE INDEX tags_name_idx ON tags (name);

CREATE TABLE bookmark_tags (
    bookmark_id INTEGER NOT NULL REFERENCES bookmarks (id) ON DELETE CASCADE,
    tag_id      INTEGER NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    PRIMARY KEY (bookmark_id, tag_id)
) WITHOUT ROWID;
-- The tag feed walks from a tag to its newest bookmarks.
CREATE INDEX bookmark_tags_tag_idx ON bookmark_tags (tag_id, bookmark_id DESC);
