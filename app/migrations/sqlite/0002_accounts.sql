-- Accounts: email + password sign-in, browser sessions, named and revocable API tokens.
--
-- The new user columns are nullable on purpose: `POST /api/users` (what the simulator
-- and the tests use) still creates token-only users with just a username, and those
-- rows must stay valid. A user signs in with a password only when both `email` and
-- `password_hash` are set.

-- Emails are compared case-insensitively. The application stores them lowercased (the
-- CHECK makes sure of it, and lowercasing in Rust also folds non-ASCII letters, which
-- SQLite's lower() would not); the unique index then does the comparison. Storing the
-- folded form, rather than relying on COLLATE NOCASE, carries over to PostgreSQL as is.
ALTER TABLE users ADD COLUMN email TEXT CHECK (email IS NULL OR (email = lower(email) AND length(email) <= 254));
-- A PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash): algorithm, parameters and salt
-- travel with the hash, so parameters can be raised later without a migration.
ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE users ADD COLUMN display_name TEXT CHECK (display_name IS NULL OR length(display_name) BETWEEN 1 AND 80);
-- A path under the data dir, set by the upload handling that comes later.
ALTER TABLE users ADD COLUMN avatar_path TEXT;
-- Unique indexes let any number of NULLs through, so token-only users do not collide.
CREATE UNIQUE INDEX users_email_idx ON users (email);

-- Browser sessions. As with API tokens, only a SHA-256 of the cookie's random token is
-- kept: reading the database does not let anyone sign in. The CSRF token of a session
-- is derived from the session token (see accounts::tokens), so it needs no column and
-- does not leak with the database either.
-- Timestamps are `inserted_at` like every other table here (Phoenix's naming); all are
-- RFC 3339 UTC with a fixed width, so text comparison orders them correctly.
CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  BLOB    NOT NULL,
    inserted_at TEXT    NOT NULL,
    expires_at  TEXT    NOT NULL,
    -- Shown in a future "where you are signed in" list; capped so a header cannot bloat rows.
    user_agent  TEXT    CHECK (user_agent IS NULL OR length(user_agent) <= 512)
);
CREATE UNIQUE INDEX sessions_token_hash_idx ON sessions (token_hash);
-- Password change and logout-everywhere delete by user.
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- API tokens get a name (shown in the list) and when they were last used.
--
-- Revoking deletes the row instead of setting a `revoked_at`: a revoked token has no
-- further use, keeping its hash only keeps a liability, and "revoked tokens fail
-- everywhere" then holds by construction — the lookup by hash cannot find the row —
-- rather than depending on every query remembering `AND revoked_at IS NULL`. The cost
-- is no audit trail of revoked tokens, which nothing here needs yet.
--
-- `last_used_at` is written at most once a minute per token (see accounts), so bearer
-- authentication on the hot path stays a read.
ALTER TABLE api_tokens ADD COLUMN name TEXT NOT NULL DEFAULT 'default' CHECK (length(name) BETWEEN 1 AND 100);
ALTER TABLE api_tokens ADD COLUMN last_used_at TEXT;
