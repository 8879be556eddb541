//! firehose-sim: a load-testing traffic simulator and firehose harness for Phoenix
//! Channels apps.
