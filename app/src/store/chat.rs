//! Rooms, memberships and messages in the database.
//!
//! Messages are read newest first through `messages_room_idx` and handed out oldest
//! first, the order a chat shows them in. A message's attachment comes with it (one
//! LEFT JOIN), so a page of history is one query.

use futures_util::future::BoxFuture;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::uploads::{COLUMNS as UPLOAD_COLUMNS, upload_from_row};
use super::writer::{Pending, WriteOp, Writer};
use super::{Store, StoreError, conflict_as, now_timestamp};
use crate::accounts::User;
use crate::chat::{Member, Message, NewRoom, Role, Room, RoomPatch};
use crate::uploads::Upload;

// Unqualified: no column name of `rooms` occurs in `room_members`, and RETURNING takes
// no table qualifiers.
const ROOM_COLUMNS: &str = "id, name, slug, description, private, creator_id, inserted_at, updated_at";

// The attachment's columns carry an `up_` prefix (`uploads::upload_from_row`).
const MESSAGE_SELECT: &str = "SELECT m.id, m.room_id, m.user_id, u.username, m.body, m.inserted_at, \
     up.id AS up_id, up.public_id AS up_public_id, up.user_id AS up_user_id, \
     up.content_type AS up_content_type, up.size AS up_size, up.original_name AS up_original_name, \
     up.sha256 AS up_sha256, up.inserted_at AS up_inserted_at \
     FROM messages m JOIN users u ON u.id = m.user_id LEFT JOIN uploads up ON up.id = m.attachment_id";

fn decode_error(what: String) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(what.into()))
}

fn room_from_row(row: &AnyRow) -> Room {
    Room {
        id: row.get("id"),
        name: row.get("name"),
        slug: row.get("slug"),
        description: row.get("description"),
        private: row.get::<i64, _>("private") != 0,
        creator_id: row.get("creator_id"),
        inserted_at: row.get("inserted_at"),
        updated_at: row.get("updated_at"),
    }
}

fn role_from(raw: &str) -> Result<Role, StoreError> {
    Role::parse(raw).ok_or_else(|| decode_error(format!("bad room role {raw:?}")))
}

fn message_from_row(row: &AnyRow) -> Result<Message, StoreError> {
    let attachment = match row.get::<Option<i64>, _>("up_id") {
        Some(_) => Some(upload_from_row(row, "up_")?),
        None => None,
    };
    Ok(Message {
        id: row.get("id"),
        room_id: row.get("room_id"),
        user: User { id: row.get("user_id"), username: row.get("username") },
        body: row.get("body"),
        inserted_at: row.get("inserted_at"),
        attachment,
    })
}

impl Store {
    /// Creates a room with its creator as its first admin, in one transaction.
    pub async fn insert_room(&self, creator: &User, new: &NewRoom) -> Result<Room, StoreError> {
        let now = now_timestamp();
        let mut tx = self.write.begin().await?;
        let sql = format!(
            "INSERT INTO rooms (name, slug, description, private, creator_id, inserted_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ROOM_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&new.name)
            .bind(&new.slug)
            .bind(&new.description)
            .bind(i64::from(new.private))
            .bind(creator.id)
            .bind(&now)
            .bind(&now)
            .fetch_one(&mut *tx)
            .await
            .map_err(conflict_as("slug"))?;
        let room = room_from_row(&row);
        sqlx::query("INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES ($1, $2, 'admin', $3)")
            .bind(room.id)
            .bind(creator.id)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(room)
    }

    pub async fn room_by_slug(&self, slug: &str) -> Result<Option<Room>, StoreError> {
        let sql = format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE slug = $1");
        let row = sqlx::query(&sql).bind(slug).fetch_optional(&self.read).await?;
        Ok(row.as_ref().map(room_from_row))
    }

    /// Applies `patch` to room `id`; the updated room, `None` if it is gone.
    pub async fn update_room(&self, id: i64, patch: &RoomPatch) -> Result<Option<Room>, StoreError> {
        let sql = format!(
            "UPDATE rooms SET name = coalesce($1, name), description = coalesce($2, description), \
             private = coalesce($3, private), updated_at = $4 WHERE id = $5 RETURNING {ROOM_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&patch.name)
            .bind(&patch.description)
            .bind(patch.private.map(i64::from))
            .bind(now_timestamp())
            .bind(id)
            .fetch_optional(&self.write)
            .await?;
        Ok(row.as_ref().map(room_from_row))
    }

    /// Deletes room `id` with its memberships and messages; whether it existed.
    pub async fn delete_room(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM rooms WHERE id = $1").bind(id).execute(&self.write).await?;
        Ok(done.rows_affected() > 0)
    }

    /// The rooms `user` may see (public ones and the ones they belong to), by name,
    /// each with the user's role in it.
    pub async fn visible_rooms(&self, user: Option<&User>) -> Result<Vec<(Room, Option<Role>)>, StoreError> {
        let sql = format!(
            "SELECT {ROOM_COLUMNS}, m.role FROM rooms \
             LEFT JOIN room_members m ON m.room_id = rooms.id AND m.user_id = $1 \
             WHERE rooms.private = 0 OR m.user_id IS NOT NULL ORDER BY rooms.name, rooms.id"
        );
        let rows = sqlx::query(&sql).bind(user.map(|u| u.id)).fetch_all(&self.read).await?;
        rows.iter()
            .map(|row| {
                let role = row.get::<Option<String>, _>("role").as_deref().map(role_from).transpose()?;
                Ok((room_from_row(row), role))
            })
            .collect()
    }

    /// `user_id`'s role in room `room_id`, if a member.
    pub async fn room_role(&self, room_id: i64, user_id: i64) -> Result<Option<Role>, StoreError> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM room_members WHERE room_id = $1 AND user_id = $2")
                .bind(room_id)
                .bind(user_id)
                .fetch_optional(&self.read)
                .await?;
        role.as_deref().map(role_from).transpose()
    }

    /// Adds a member; `false` if they already were one (their role is kept).
    pub async fn add_room_member(&self, room_id: i64, user_id: i64, role: Role) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (room_id, user_id) DO NOTHING",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(now_timestamp())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes a member; whether they were one.
    pub async fn remove_room_member(&self, room_id: i64, user_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM room_members WHERE room_id = $1 AND user_id = $2")
            .bind(room_id)
            .bind(user_id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Members of a room, in the order they joined.
    pub async fn room_members(&self, room_id: i64) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.id, u.username, m.role, m.joined_at FROM room_members m JOIN users u ON u.id = m.user_id \
             WHERE m.room_id = $1 ORDER BY m.joined_at, u.id",
        )
        .bind(room_id)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Member {
                    user: User { id: row.get("id"), username: row.get("username") },
                    role: role_from(&row.get::<String, _>("role"))?,
                    joined_at: row.get("joined_at"),
                })
            })
            .collect()
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT id, username FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| User { id: r.get("id"), username: r.get("username") }))
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let row =
            sqlx::query("SELECT id, username FROM users WHERE id = $1").bind(id).fetch_optional(&self.read).await?;
        Ok(row.map(|r| User { id: r.get("id"), username: r.get("username") }))
    }

    /// Upload `id` if `user_id` owns it: what a message may attach.
    pub async fn own_upload(&self, id: i64, user_id: i64) -> Result<Option<Upload>, StoreError> {
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1 AND user_id = $2");
        let row = sqlx::query(&sql).bind(id).bind(user_id).fetch_optional(&self.read).await?;
        row.as_ref().map(|r| upload_from_row(r, "")).transpose()
    }

    /// Up to `limit` messages of a room older than `before` (or the newest), oldest first.
    pub async fn messages_before(
        &self,
        room_id: i64,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let sql = format!("{MESSAGE_SELECT} WHERE m.room_id = $1 AND m.id < $2 ORDER BY m.id DESC LIMIT $3");
        let rows = sqlx::query(&sql)
            .bind(room_id)
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.read)
            .await?;
        let mut page = rows.iter().map(message_from_row).collect::<Result<Vec<_>, _>>()?;
        page.reverse();
        Ok(page)
    }

    /// Up to `limit` messages of a room newer than `after`, oldest first (a room page
    /// opened at an older message reads on from it).
    pub async fn messages_after(&self, room_id: i64, after: i64, limit: usize) -> Result<Vec<Message>, StoreError> {
        let sql = format!("{MESSAGE_SELECT} WHERE m.room_id = $1 AND m.id > $2 ORDER BY m.id ASC LIMIT $3");
        let rows = sqlx::query(&sql)
            .bind(room_id)
            .bind(after)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// The author of message `id` in room `room_id`, if it exists there.
    pub async fn message_author(&self, room_id: i64, id: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT user_id FROM messages WHERE id = $1 AND room_id = $2")
            .bind(id)
            .bind(room_id)
            .fetch_optional(&self.read)
            .await?)
    }
}

impl Writer {
    /// Queues a message for storing (or refuses it at once: `Overloaded`); the body is
    /// already validated, the attachment already checked. The stored message comes from
    /// the returned future once committed; the room's actor then broadcasts it.
    pub fn insert_message(
        &self,
        room_id: i64,
        user: &User,
        body: &str,
        attachment: Option<Upload>,
    ) -> Result<Pending<Message>, StoreError> {
        self.submit(InsertMessage { room_id, user: user.clone(), body: body.to_owned(), attachment })
    }

    /// Deletes message `id` of room `room_id`; whether it existed.
    pub async fn delete_message(&self, room_id: i64, id: i64) -> Result<bool, StoreError> {
        self.write(DeleteMessage { room_id, id }).await
    }
}

struct InsertMessage {
    room_id: i64,
    user: User,
    body: String,
    attachment: Option<Upload>,
}

impl WriteOp for InsertMessage {
    type Output = Message;

    fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> BoxFuture<'c, Result<Message, StoreError>> {
        Box::pin(async move {
            let now = now_timestamp();
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO messages (room_id, user_id, body, attachment_id, inserted_at) VALUES ($1, $2, $3, $4, $5) \
                 RETURNING id",
            )
            .bind(self.room_id)
            .bind(self.user.id)
            .bind(&self.body)
            .bind(self.attachment.as_ref().map(|a| a.id))
            .bind(&now)
            .fetch_one(conn)
            .await?;
            Ok(Message {
                id,
                room_id: self.room_id,
                user: self.user.clone(),
                body: self.body.clone(),
                attachment: self.attachment.clone(),
                inserted_at: now,
            })
        })
    }
}

struct DeleteMessage {
    room_id: i64,
    id: i64,
}

impl WriteOp for DeleteMessage {
    type Output = bool;

    fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> BoxFuture<'c, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM messages WHERE id = $1 AND room_id = $2")
                .bind(self.id)
                .bind(self.room_id)
                .execute(conn)
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }
}
