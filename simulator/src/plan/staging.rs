//! The plan's shape over time and its listener lifecycles, from flags over scenario
//! tables: `--stage`/`[[stages]]` and `--start-scale`/`start_scale` into validated
//! [`Stage`]s, `--churn-*`/`[actions.presence_churn]` into a [`ChurnPlan`],
//! `--storm-*`/`[actions.reconnect_storm]` into a [`StormPlan`]. A flag typed on the
//! command line replaces the file's value; every error names the flag or the file's
//! line:column and key.

use std::time::Duration;

use toml::Spanned;

use crate::plan::args::RunArgs;
use crate::plan::lifecycle::{ChurnPlan, StormPlan};
use crate::plan::ramp::ListenerRamp;
use crate::plan::scenario::Scenario;
use crate::plan::stages::Stage;
use crate::plan::{Origin, PlanError, parse_duration};

/// Validated stages: the start multiplier, the stages, and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Staging {
    pub start_scale: f64,
    pub stages: Vec<Stage>,
    pub origin: Origin,
    /// The stages' `listeners` fractions, when any stage gives one.
    pub listeners: Option<ListenerRamp>,
}

impl Staging {
    /// The traffic phase's length: the stages' sum.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }
}

fn invalid(origin: Origin, reason: impl Into<String>) -> PlanError {
    PlanError::Invalid { origin, reason: reason.into() }
}

fn file_origin(scenario: &Scenario, key: &str, span: std::ops::Range<usize>) -> Origin {
    Origin::File(Box::new(scenario.place(key, span)))
}

fn scale_value(value: f64, origin: &Origin) -> Result<f64, PlanError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(invalid(origin.clone(), format!("must be a finite multiplier >= 0, got {value}")))
    }
}

fn duration_at(text: &str, origin: &Origin) -> Result<Duration, PlanError> {
    parse_duration(text).map_err(|reason| PlanError::Duration {
        origin: origin.clone(),
        value: text.to_owned(),
        reason,
    })
}

fn listener_fraction(origin: Origin, fraction: f64) -> Result<f64, PlanError> {
    if (0.0..=1.0).contains(&fraction) {
        Ok(fraction)
    } else {
        Err(invalid(origin, format!("must be a fraction between 0 and 1, got {fraction}")))
    }
}

/// The ramp of per-stage fractions (`None` keeps the previous one; the start is the
/// first stage's own, or 1), `None` when no stage gives one.
fn ramp_of(stages: &[Stage], fractions: &[Option<f64>]) -> Option<ListenerRamp> {
    fractions.iter().any(Option::is_some).then(|| {
        let start = fractions.first().copied().flatten().unwrap_or(1.0);
        let mut at = start;
        let stages = stages
            .iter()
            .zip(fractions)
            .map(|(s, f)| {
                at = f.unwrap_or(at);
                (s.duration, at)
            })
            .collect();
        ListenerRamp { start, stages }
    })
}

/// The stages of the run, `None` without any.
pub fn stages(args: &RunArgs, scenario: Option<&Scenario>) -> Result<Option<Staging>, PlanError> {
    let file = scenario.and_then(|s| s.file.stages.as_ref().map(|st| (s, st)));
    let mut fractions = Vec::new();
    let (stages, origin) = match file {
        Some((scenario, list)) if !args.given("stages") => {
            let mut stages = Vec::with_capacity(list.get_ref().len());
            for (i, stage) in list.get_ref().iter().enumerate() {
                let at = |field: &str, span| file_origin(scenario, &format!("stages[{i}].{field}"), span);
                let duration = duration_at(stage.duration.get_ref(), &at("duration", stage.duration.span()))?;
                let scale = scale_value(*stage.scale.get_ref(), &at("scale", stage.scale.span()))?;
                let fraction = match &stage.listeners {
                    Some(l) => Some(listener_fraction(at("listeners", l.span()), *l.get_ref())?),
                    None => None,
                };
                fractions.push(fraction);
                stages.push(Stage { duration, scale });
            }
            (stages, file_origin(scenario, "stages", list.span()))
        }
        _ if !args.stages.is_empty() => {
            let origin = Origin::Flag("stage");
            let mut stages = Vec::with_capacity(args.stages.len());
            for text in &args.stages {
                let mut parts = text.split(':');
                let (Some(d), Some(scale)) = (parts.next(), parts.next()) else {
                    return Err(invalid(origin, format!("{text:?}: expected DURATION:SCALE, e.g. 10s:1.5")));
                };
                let duration = duration_at(d, &origin)?;
                let scale: f64 = scale
                    .trim()
                    .parse()
                    .map_err(|_| invalid(origin.clone(), format!("{text:?}: the scale {scale:?} is not a number")))?;
                let scale = scale_value(scale, &origin)?;
                let fraction = match parts.next() {
                    Some(l) => {
                        let f: f64 = l.trim().parse().map_err(|_| {
                            invalid(origin.clone(), format!("{text:?}: the listener fraction {l:?} is not a number"))
                        })?;
                        Some(listener_fraction(origin.clone(), f)?)
                    }
                    None => None,
                };
                fractions.push(fraction);
                stages.push(Stage { duration, scale });
            }
            (stages, origin)
        }
        _ => return Ok(None),
    };
    let start_scale = match (scenario.and_then(|s| s.file.start_scale.as_ref().map(|v| (s, v))), args.start_scale) {
        (Some((scenario, v)), _) if !args.given("start_scale") => {
            scale_value(*v.get_ref(), &file_origin(scenario, "start_scale", v.span()))?
        }
        (_, Some(v)) => scale_value(v, &Origin::Flag("start-scale"))?,
        _ => stages.first().map_or(1.0, |s| s.scale),
    };
    let listeners = ramp_of(&stages, &fractions);
    let staging = Staging { start_scale, stages, origin, listeners };
    if staging.duration().is_zero() {
        return Err(invalid(staging.origin, "last no time at all: give at least one stage a duration > 0"));
    }
    if staging.start_scale == 0.0 && staging.stages.iter().all(|s| s.scale == 0.0) {
        return Err(invalid(staging.origin, "scale every rate by 0: the run would send nothing"));
    }
    Ok(Some(staging))
}

/// `--churn-rate` over `[actions.presence_churn]`.
pub fn churn(args: &RunArgs, scenario: Option<&Scenario>) -> Result<Option<ChurnPlan>, PlanError> {
    let file = scenario.and_then(|s| s.file.actions.presence_churn.as_ref().map(|c| (s, c.get_ref())));
    let rate = match (file.and_then(|(s, c)| c.rate.as_ref().map(|r| (s, r))), args.churn_rate) {
        (Some((s, r)), _) if !args.given("churn_rate") => {
            Some((*r.get_ref(), file_origin(s, "actions.presence_churn.rate", r.span())))
        }
        (_, Some(r)) => Some((r, Origin::Flag("churn-rate"))),
        (None, None) if file.is_some() => {
            let (s, _) = file.unwrap_or_else(|| unreachable!());
            let table = s.file.actions.presence_churn.as_ref().map_or(0..0, Spanned::span);
            return Err(invalid(file_origin(s, "actions.presence_churn", table), "needs a `rate` (per second)"));
        }
        _ => None,
    };
    let Some((rate, origin)) = rate else { return Ok(None) };
    if !(rate.is_finite() && rate > 0.0) {
        return Err(PlanError::Rate { origin, value: rate });
    }
    let (absence, origin) = match file.and_then(|(s, c)| c.absence.as_ref().map(|a| (s, a))) {
        Some((s, a)) if !args.given("churn_absence") => {
            (a.get_ref().clone(), file_origin(s, "actions.presence_churn.absence", a.span()))
        }
        _ => (args.churn_absence.clone(), Origin::Flag("churn-absence")),
    };
    let absence = duration_at(&absence, &origin)?;
    Ok(Some(ChurnPlan { rate_per_s: rate, absence }))
}

/// `--storm-at`/`--storm-every` over `[actions.reconnect_storm]`, inside `duration`.
pub fn storm(args: &RunArgs, scenario: Option<&Scenario>, duration: Duration) -> Result<Option<StormPlan>, PlanError> {
    let file = scenario.and_then(|s| s.file.actions.reconnect_storm.as_ref().map(|t| (s, t)));
    let flags_given = args.given("storm_at") || args.given("storm_every");
    let mut at = Vec::new();
    if let (Some((s, table)), false) = (file, flags_given) {
        let t = table.get_ref();
        if t.at.is_some() && t.every.is_some() {
            return Err(invalid(
                file_origin(s, "actions.reconnect_storm", table.span()),
                "gives both `at` and `every`: choose one",
            ));
        }
        for (i, v) in t.at.iter().flatten().enumerate() {
            let origin = file_origin(s, &format!("actions.reconnect_storm.at[{i}]"), v.span());
            at.push((duration_at(v.get_ref(), &origin)?, origin));
        }
        if let Some(every) = &t.every {
            let origin = file_origin(s, "actions.reconnect_storm.every", every.span());
            at.extend(every_within(duration_at(every.get_ref(), &origin)?, duration, &origin)?);
        }
        if at.is_empty() {
            return Err(invalid(file_origin(s, "actions.reconnect_storm", table.span()), "needs `at` or `every`"));
        }
    } else {
        if !args.storm_at.is_empty() && args.storm_every.is_some() {
            return Err(invalid(Origin::Flag("storm-at"), "and --storm-every exclude each other"));
        }
        for v in &args.storm_at {
            let origin = Origin::Flag("storm-at");
            at.push((duration_at(v, &origin)?, origin));
        }
        if let Some(every) = &args.storm_every {
            let origin = Origin::Flag("storm-every");
            at.extend(every_within(duration_at(every, &origin)?, duration, &origin)?);
        }
        if at.is_empty() {
            return Ok(None);
        }
    }
    for (offset, origin) in &at {
        if *offset >= duration {
            return Err(invalid(
                origin.clone(),
                format!("{offset:?} is not inside the traffic phase ({duration:?}); storms must hit during it"),
            ));
        }
    }
    let (fraction, origin) = match file.and_then(|(s, t)| t.get_ref().fraction.as_ref().map(|f| (s, f))) {
        Some((s, f)) if !args.given("storm_fraction") => {
            (*f.get_ref(), file_origin(s, "actions.reconnect_storm.fraction", f.span()))
        }
        _ => (args.storm_fraction, Origin::Flag("storm-fraction")),
    };
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(invalid(origin, format!("must be a fraction in (0, 1], got {fraction}")));
    }
    let jitter = match file.and_then(|(_, t)| t.get_ref().jitter.as_ref()) {
        Some(j) if !args.given("storm_jitter") => *j.get_ref(),
        _ => args.storm_jitter,
    };
    let mut at: Vec<Duration> = at.into_iter().map(|(d, _)| d).collect();
    at.sort();
    Ok(Some(StormPlan { at, fraction, jitter }))
}

/// Reconnect storms one run may hold: each is a plan entry and a wave of reconnects.
const MAX_STORMS: u128 = 10_000;

fn every_within(every: Duration, duration: Duration, origin: &Origin) -> Result<Vec<(Duration, Origin)>, PlanError> {
    if every.is_zero() {
        return Err(invalid(origin.clone(), "must be longer than zero"));
    }
    // k · every < duration for k = 1..=count, counted before anything is made.
    let count = duration.as_nanos().saturating_sub(1) / every.as_nanos();
    if count > MAX_STORMS {
        return Err(invalid(
            origin.clone(),
            format!("{every:?} over {duration:?} makes {count} storms; at most {MAX_STORMS} fit in one run"),
        ));
    }
    Ok((1..=count as u32).map(|k| (every * k, origin.clone())).collect())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::plan::Plan;
    use crate::plan::scenario::Scenario;

    use super::*;

    fn args(flags: &[&str]) -> RunArgs {
        RunArgs::try_parse_from(std::iter::once("run").chain(flags.iter().copied())).unwrap()
    }

    fn from_file(text: &str, flags: &[&str]) -> Result<Plan, PlanError> {
        let scenario = Scenario::parse(Path::new("s.toml"), text.to_owned()).unwrap();
        Plan::from_layers(&args(flags), Some(&scenario), None)
    }

    /// A storm every millisecond of a 100-hour run once planned 360 million storms
    /// (20 GB before the run could start); now it is refused at once.
    #[test]
    fn storms_that_would_not_fit_are_refused_before_they_are_planned() {
        let flags = ["--storm-every", "1ms", "--duration", "100h", "--rate", "0.01"];
        let Err(err) = Plan::from_layers(&args(&flags), None, None) else { panic!("planned") };
        assert!(err.to_string().contains("at most 10000"), "{err}");
        let plan = Plan::from_layers(&args(&["--storm-every", "10s", "--duration", "60s"]), None, None).unwrap();
        let storms = plan.bookmarks.reconnect_storm.expect("storms planned");
        assert_eq!(storms.at, [10, 20, 30, 40, 50].map(Duration::from_secs), "every 10 s, strictly inside the run");
    }

    #[test]
    fn stages_from_a_file_set_the_duration_and_shape_every_curve() {
        let text = "start_scale = 0.0\n[[stages]]\nduration = \"4s\"\nscale = 1.0\n[[stages]]\nduration = \"2s\"\nscale = 1.0\n";
        let p = from_file(text, &[]).unwrap();
        assert_eq!(p.traffic.duration, Duration::from_secs(6));
        // 0 → 20/s over 4 s (40), then 20/s for 2 s (40).
        assert_eq!(p.requests(), 80);
        assert_eq!(p.traffic.curve(5.0).count(), 20);
        // Warm-up 2 s: a quarter of the ramp's area.
        assert_eq!(p.warmup_requests(), 10);
        // Typed stages replace the file's.
        let p = from_file(text, &["--stage", "3s:2", "--start-scale", "2"]).unwrap();
        assert_eq!((p.traffic.duration, p.requests(), p.traffic.start_scale), (Duration::from_secs(3), 120, 2.0));
    }

    #[test]
    fn bad_stages_in_a_file_point_at_the_key() {
        let neg = "[[stages]]\nduration = \"4s\"\nscale = -1.0\n";
        let err = from_file(neg, &[]).unwrap_err().to_string();
        assert_eq!(err, "s.toml:3:9: stages[0].scale must be a finite multiplier >= 0, got -1");
        let zero = "[[stages]]\nduration = \"0s\"\nscale = 1.0\n";
        assert!(from_file(zero, &[]).unwrap_err().to_string().contains("last no time at all"));
        let ramp = "[[stages]]\nduration = \"4s\"\nscale = 1.0\nlisteners = 2.0\n";
        let err = from_file(ramp, &[]).unwrap_err().to_string();
        assert!(err.starts_with("s.toml:4:13: stages[0].listeners must be a fraction"), "{err}");
        let clash = "duration = \"5s\"\n[[stages]]\nduration = \"4s\"\nscale = 1.0\n";
        let err = from_file(clash, &[]).unwrap_err().to_string();
        assert!(err.starts_with("s.toml:1:12: duration (5s) disagrees with the stages"), "{err}");
    }

    #[test]
    fn churn_and_storm_tables_become_plans() {
        let text = "duration = \"10s\"\n[actions.presence_churn]\nrate = 2\nabsence = \"1s\"\n\
                    [actions.reconnect_storm]\nevery = \"3s\"\nfraction = 0.5\njitter = true\n";
        let p = from_file(text, &[]).unwrap();
        assert_eq!(p.bookmarks.presence_churn, Some(ChurnPlan { rate_per_s: 2.0, absence: Duration::from_secs(1) }));
        let s = p.bookmarks.reconnect_storm.unwrap();
        assert_eq!(s.at, [3, 6, 9].map(Duration::from_secs));
        assert_eq!((s.fraction, s.jitter), (0.5, true));
        let p = from_file(text, &["--storm-at", "1s", "--storm-fraction", "0.2"]).unwrap();
        let s = p.bookmarks.reconnect_storm.unwrap();
        assert_eq!((s.at, s.fraction), (vec![Duration::from_secs(1)], 0.2));

        let both = "[actions.reconnect_storm]\nat = [\"1s\"]\nevery = \"2s\"\n";
        assert!(from_file(both, &[]).unwrap_err().to_string().contains("choose one"));
        let no_rate = "[actions.presence_churn]\nabsence = \"1s\"\n";
        assert!(from_file(no_rate, &[]).unwrap_err().to_string().contains("needs a `rate`"));
        let bad = "[actions.presence_churn]\nrate = 0\n";
        let err = from_file(bad, &[]).unwrap_err().to_string();
        assert!(err.starts_with("s.toml:2:8: actions.presence_churn.rate must be a positive number"), "{err}");
        let unknown = "[actions.reconnect_storm]\nat = [\"1s\"]\nfractoin = 0.5\n";
        assert!(Scenario::parse(Path::new("s.toml"), unknown.into()).is_err());
    }
}
