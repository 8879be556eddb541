//! What every workload runs on, and nothing that knows a workload: the targets and
//! their TLS config (`target`, `tls`), which target each socket and request goes to
//! (`route`), the servers' own figures (`servers`), the run loop (`run`) over the [`Workload`] trait
//! (`workload`), the one scheduler (`dispatch`), the figures every kind and group keeps
//! (`stats`, `delivery`) and where they live during a run (`meters`), the sampler
//! behind the timeline (`sampler`), the report made of the meters (`build`),
//! SIGINT/SIGTERM (`interrupt`) and the run's errors (`error`). Process resources
//! (memory, CPU, load) are read through `firehose_app::resources`, as the server
//! reports its own.
//!
//! [`Workload`]: workload::Workload

pub mod build;
pub mod delivery;
pub mod dispatch;
pub mod error;
pub mod interrupt;
pub mod meters;
pub mod route;
pub mod run;
pub mod sampler;
pub mod servers;
pub mod stats;
pub mod target;
pub mod tls;
pub mod workload;
