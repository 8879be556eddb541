//! Scenario files: any text, read as a scenario and planned over the default flags,
//! must give a plan or an error that renders — never a panic. A plan is then used as a
//! run starts to use it: printed, serialized, split among agents, and its rate curve
//! and listener ramp asked for intended start times.

#![no_main]

use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use firehose_sim::Plan;
use firehose_sim::plan::AgentSlot;
use firehose_sim::plan::args::RunArgs;
use firehose_sim::plan::scenario::Scenario;
use libfuzzer_sys::fuzz_target;

static DEFAULTS: LazyLock<RunArgs> = LazyLock::new(RunArgs::defaults);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut scenario = match Scenario::parse(Path::new("fuzz.toml"), text.to_owned()) {
        Ok(scenario) => scenario,
        Err(err) => {
            let _ = err.to_string();
            return;
        }
    };
    // A profile is another file to read: the profile target covers its contents.
    scenario.file.profile = None;
    match Plan::from_layers(&DEFAULTS, Some(&scenario), Some(20_000)) {
        Ok(plan) => use_plan(&plan),
        Err(err) => {
            let _ = err.to_string();
        }
    }
});

fn use_plan(plan: &Plan) {
    let _ = plan.to_string();
    let _ = serde_json::to_string(plan).expect("a plan serializes");
    let _ = (plan.total_sockets(), plan.requests(), plan.warmup_requests(), plan.own_seed());
    let curve = plan.traffic.curve(plan.bookmarks.rate_per_s);
    let count = curve.count();
    for i in [0, 1, count / 2, count.saturating_sub(1)] {
        let _ = curve.offset(i);
    }
    let _ = (curve.duration(), curve.mean_rate(), curve.rate_at(plan.traffic.duration / 2));
    if let Some(ramp) = &plan.bookmarks.listener_ramp {
        let n = plan.bookmarks.listeners.max(1) as usize;
        let _ = (ramp.statics(n), ramp.connected_at(n, Duration::ZERO), ramp.connected_at(n, plan.traffic.duration));
        for rank in [0, n / 2, n - 1] {
            let _ = ramp.windows(rank, n);
        }
    }
    for count in [2, 3] {
        let share = plan.share(AgentSlot { index: count - 1, count });
        let _ = (share.to_string(), share.total_sockets());
    }
}
