-- Likes: one row per (user, bookmark) a user likes.
--
-- The UNIQUE constraint is what makes "a user likes a bookmark at most once" true under
-- concurrency: a like is `INSERT … ON CONFLICT DO NOTHING`, so a double like is a no-op
-- instead of a second row or a constraint error. Deleting a user or a bookmark deletes
-- its likes. Counts are not stored: they are `COUNT(*)` over the bookmark's index
-- entries, read in the transaction of the write that changed them.
-- Timestamps are `inserted_at` like every other table here.

CREATE TABLE likes (
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    bookmark_id INTEGER NOT NULL REFERENCES bookmarks (id) ON DELETE CASCADE,
    inserted_at TEXT    NOT NULL,
    UNIQUE (user_id, bookmark_id)
);
-- A bookmark's count and "does this user like it" are lookups by bookmark first.
CREATE INDEX likes_bookmark_idx ON likes (bookmark_id, user_id);
