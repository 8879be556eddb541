//! The traffic a run drives and the listener groups that receive it, each a
//! [`Workload`](crate::engine::workload::Workload): `bookmarks` (creation, firehose and
//! tag listeners, ramps, churn, storms), `actions` (likes, unlikes, deletions, chat
//! messages, typing, room presence; room, likes and user listeners), `pages` (page
//! readers and page listeners), `reads` (list, tag feed, random, search); `failover`: how
//! every listener kind carries on when its node goes away or tells of a gap.

pub mod actions;
pub mod bookmarks;
pub mod failover;
pub mod pages;
pub mod reads;
