-- Message search: an FTS5 index over `messages(body)`.
--
-- External content: the index stores only the tokens, the text stays in `messages`
-- (`content_rowid` is `messages.id`, which AUTOINCREMENT never reuses). The triggers
-- below keep the two in step on insert, delete (including deletes cascading from a
-- room or a user) and edits of the body; an external-content delete must be given the
-- old text, so it is passed from `old`.
--
-- unicode61 with remove_diacritics 2: case- and accent-insensitive ("cafe" finds
-- "Café"), letters and digits of every script are token characters.

CREATE VIRTUAL TABLE messages_fts USING fts5 (
    body,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

-- Index whatever messages exist already.
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');

CREATE TRIGGER messages_fts_after_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
END;

CREATE TRIGGER messages_fts_after_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;

CREATE TRIGGER messages_fts_after_update AFTER UPDATE OF id, body ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
    INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
END;
