//! What every workload runs on: the target, errors, SIGINT/SIGTERM, process resources.

pub mod error;
pub mod interrupt;
pub mod resources;
pub mod target;
