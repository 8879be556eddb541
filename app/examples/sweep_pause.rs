//! How long a topic sweep holds up broadcasts: fills the pub/sub with N idle topics
//! (each broadcast once, history aged out at once), then sweeps them while another
//! thread keeps broadcasting to one watched topic, and prints the longest single
//! broadcast during the sweep beside the sweep's own time.
//!
//!   cargo run --release -p firehose-app --example sweep_pause -- [TOPICS] [ROUNDS]
//!
//! Exits 1 if a sweep did not free every idle topic (scripts/test runs it small).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use firehose_app::pubsub::{HistoryLimits, PubSub, SocketHandle};
use firehose_app::wire::Vsn;
use tokio_util::sync::CancellationToken;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
    let topics = args.next().unwrap_or(100_000);
    let rounds = args.next().unwrap_or(5);
    let pubsub = Arc::new(PubSub::new(HistoryLimits { max_events: 100, max_age: Duration::ZERO }));
    let (outbox, mut rx) = tokio::sync::mpsc::channel(1 << 16);
    pubsub.subscribe("room:hot", Vsn::V2, SocketHandle { id: 0, outbox, slow: CancellationToken::new() });

    for round in 1..=rounds {
        for i in 0..topics {
            pubsub.broadcast(&format!("bookmarks:tag:t{round}-{i}"), "new", &serde_json::json!({}));
        }
        std::thread::sleep(Duration::from_millis(2));
        let sweeping = Arc::new(AtomicBool::new(true));
        let publisher = {
            let (pubsub, sweeping) = (pubsub.clone(), sweeping.clone());
            std::thread::spawn(move || {
                let (mut longest, mut count, mut over_1ms) = (Duration::ZERO, 0u64, 0u64);
                while sweeping.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    pubsub.broadcast("room:hot", "msg", &serde_json::json!({}));
                    let took = start.elapsed();
                    longest = longest.max(took);
                    over_1ms += u64::from(took > Duration::from_millis(1));
                    count += 1;
                }
                (longest, count, over_1ms)
            })
        };
        std::thread::sleep(Duration::from_millis(1));
        let start = Instant::now();
        let freed = pubsub.sweep();
        let took = start.elapsed();
        sweeping.store(false, Ordering::Relaxed);
        let (longest, count, over_1ms) = publisher.join().expect("publisher thread");
        while rx.try_recv().is_ok() {}
        println!(
            "round {round}: swept {freed} of {topics} topics in {:.1} ms; {count} broadcasts meanwhile, {over_1ms} over 1 ms, longest {:.3} ms",
            took.as_secs_f64() * 1e3,
            longest.as_secs_f64() * 1e3
        );
        if freed != topics {
            eprintln!("expected every idle topic to be freed");
            std::process::exit(1);
        }
    }
}
