//! The search query builder: whatever `fts_query` makes of the user's `q` must be a
//! valid SQLite FTS5 query — it is run, as the search route runs it (MATCH, snippet,
//! highlight, bm25), against an in-memory database with the app's own index (its
//! migrations) and a few messages, and must not fail. And `render_marked` must turn
//! any text into HTML with balanced `<mark>` tags and nothing else unescaped.

#![no_main]

use firehose_app::fuzzing::{fts_query, render_marked};
use libfuzzer_sys::fuzz_target;
use rusqlite::Connection;

/// The app's schema, in order (0006 is the FTS5 index over `messages.body`).
const MIGRATIONS: [&str; 6] = [
    include_str!("../../migrations/sqlite/0001_users_bookmarks.sql"),
    include_str!("../../migrations/sqlite/0002_accounts.sql"),
    include_str!("../../migrations/sqlite/0003_uploads.sql"),
    include_str!("../../migrations/sqlite/0004_likes.sql"),
    include_str!("../../migrations/sqlite/0005_chat.sql"),
    include_str!("../../migrations/sqlite/0006_search.sql"),
];

/// What `store::search` asks of FTS5 (the sentinels are U+E000 and U+E001).
const SEARCH: &str = "SELECT rowid, \
     snippet(messages_fts, 0, char(57344), char(57345), '…', 16), \
     highlight(messages_fts, 0, char(57344), char(57345)), \
     bm25(messages_fts) AS score \
     FROM messages_fts WHERE messages_fts MATCH ?1 ORDER BY score, rowid DESC LIMIT 20";

const BODIES: [&str; 6] = [
    "hello world, the firehose is live",
    "Café crème at the phoenix meetup — ünïcode and 日本語 too",
    "foo-bar baz* NEAR(x y) AND OR NOT \"quoted\" (parens) col:umn ^caret",
    "numbers 42 3.14 1e10 and emoji 😀 and tabs\tand\nnewlines",
    "<b>html</b> & entities &amp; stay text",
    "\u{E000}sentinel\u{E001} in a body",
];

thread_local! {
    static DB: Connection = {
        let db = Connection::open_in_memory().expect("an in-memory database");
        for sql in MIGRATIONS {
            db.execute_batch(sql).expect("the migrations run");
        }
        db.execute_batch(
            "INSERT INTO users (id, username, inserted_at) VALUES (1, 'fuzz', '2026-01-01T00:00:00Z');
             INSERT INTO rooms (id, name, slug, creator_id, inserted_at, updated_at)
                 VALUES (1, 'Fuzz', 'fuzz', 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z');",
        )
        .expect("a user and a room");
        for body in BODIES {
            db.execute(
                "INSERT INTO messages (room_id, user_id, body, inserted_at) VALUES (1, 1, ?1, '2026-01-01T00:00:00Z')",
                [body],
            )
            .expect("a message is stored and indexed");
        }
        db
    };
}

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else { return };
    if let Ok(Some(expr)) = fts_query(q) {
        DB.with(|db| {
            let mut stmt = db.prepare_cached(SEARCH).expect("the search statement prepares");
            let rows = stmt
                .query_map([&expr], |row| row.get::<_, i64>(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>());
            if let Err(e) = rows {
                panic!("q {q:?} built {expr:?}, which FTS5 refuses: {e}");
            }
        });
    }
    for tainted in [false, true] {
        let html = render_marked(q, tainted);
        let opened = html.matches("<mark>").count();
        assert_eq!(opened, html.matches("</mark>").count(), "{html:?}");
        if tainted {
            assert_eq!(opened, 0, "{html:?}");
        }
        let rest = html.replace("<mark>", "").replace("</mark>", "");
        assert!(!rest.contains(['<', '>', '"', '\'']), "unescaped markup in {html:?}");
        for (i, _) in rest.match_indices('&') {
            let entity = &rest[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"].iter().any(|e| entity.starts_with(e)),
                "a bare & in {html:?}"
            );
        }
    }
});
