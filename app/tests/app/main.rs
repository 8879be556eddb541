//! Integration tests of the firehose server: the real server, in-process on an
//! ephemeral port with a fresh data dir per test (or the real binary, for crashes),
//! driven over raw HTTP and raw WebSocket frames.

mod abuse;
mod accounts;
mod api;
mod chat;
mod conformance;
mod durability;
mod faults;
mod helpers;
mod likes;
mod pages;
mod recovery;
mod search;
mod signups;
mod uploads;
mod web;
mod writes;
