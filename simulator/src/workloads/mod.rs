//! The traffic a run drives and the listener groups that receive it.

pub mod actions;
pub mod bookmarks;
pub mod pages;
pub mod rooms;
