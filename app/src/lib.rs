//! firehose-app: a real-time social app whose WebSocket speaks the Phoenix Channels
//! protocol. The library exposes the server so tests and the simulator can boot it
//! in-process on any listener.

pub mod wire;
