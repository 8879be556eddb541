-- Chat: rooms, who belongs to them, and their messages.
--
-- Names are part of a contract: message search (0006) puts an FTS5 table over
-- `messages(body)` keyed by `messages.id`, so the table, its columns and its
-- AUTOINCREMENT key (ids are never reused after a delete, which keeps the FTS rowids
-- unambiguous) must stay as they are.
--
-- Deleting a room deletes its memberships and messages; deleting a user deletes their
-- memberships and messages and, through the creator column, the rooms they created.
-- Deleting an upload only detaches it from the messages that showed it.
-- Timestamps are RFC 3339 UTC text with a fixed width, like every other table here.

CREATE TABLE rooms (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    -- The room's address in URLs and in the `room:<slug>` topic; validated at the edge,
    -- restated here so no row can carry a slug the router would not accept.
    slug        TEXT    NOT NULL CHECK (length(slug) BETWEEN 1 AND 64 AND slug NOT GLOB '*[^a-z0-9-]*'),
    description TEXT    NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    private     INTEGER NOT NULL DEFAULT 0 CHECK (private IN (0, 1)),
    creator_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    inserted_at TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);
CREATE UNIQUE INDEX rooms_slug_idx ON rooms (slug);

CREATE TABLE room_members (
    room_id   INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      TEXT    NOT NULL CHECK (role IN ('admin', 'member')),
    joined_at TEXT    NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
-- "Rooms I belong to" (the room list, search across my rooms).
CREATE INDEX room_members_user_idx ON room_members (user_id);

CREATE TABLE messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id       INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Stored verbatim (HTML included): escaping is the renderer's job, never the store's.
    body          TEXT    NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
    attachment_id INTEGER NULL REFERENCES uploads (id) ON DELETE SET NULL,
    inserted_at   TEXT    NOT NULL
);
-- The last page of a room and every older page: `WHERE room_id = ? AND id < ? ORDER BY id DESC`.
CREATE INDEX messages_room_idx ON messages (room_id, id DESC);
-- Foreign keys are checked from the parent side on delete: without these, deleting a
-- user or an upload would scan every message.
CREATE INDEX messages_user_idx ON messages (user_id);
CREATE INDEX messages_attachment_idx ON messages (attachment_id) WHERE attachment_id IS NOT NULL;
