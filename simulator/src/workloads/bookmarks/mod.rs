//! Bookmark creation and the firehose and tag listener groups.

pub mod audience;
pub mod correlate;
pub mod generator;
pub mod ledger;
pub mod lifecycle;
pub mod listeners;
pub mod ramp;
pub mod reach;
pub mod report;
pub mod schedule;
pub mod seed;
