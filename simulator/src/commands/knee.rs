//! `firehose-sim knee`: where does the target stop meeting its SLO? One dimension of a
//! run — the bookmark rate or the firehose listener count — is stepped from `--start`
//! (geometrically by `--factor`, or additively by `--step`) up to `--max`; every level is
//! a complete run of the base plan (the usual run flags or `--scenario`) with that one
//! value changed, judged against `--slo` expressions (the `--threshold` syntax and metric
//! catalogue) and against validity: a run whose generator fell behind breaks the SLO too,
//! since its figures no longer describe the load asked for. Stepping stops at the first
//! level that breaks (re-run once with `--confirm`); the highest level that held, the
//! first that broke and why, and a table of every level go to
//! `<out>/<stamp>-knee/knee.json` and `knee.md`, each level's report folder beside them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::engine::error::{SimError, exit};
use crate::plan::args::RunArgs;
use crate::plan::{Plan, PlanError};
use crate::report::gate::{Threshold, ThresholdError};
use crate::report::{self, Report};

/// More levels than this is a typo in `--step` or `--factor`, not a plan.
pub const MAX_LEVELS: usize = 100;
/// Schema of `knee.json`.
pub const KNEE_SCHEMA: &str = "firehose-sim/knee/v1";

/// What a knee search steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vary {
    /// Bookmarks created per second (`--rate`).
    Rate,
    /// Listeners on the firehose topic (`--listeners`).
    Listeners,
}

impl Vary {
    fn unit(self) -> &'static str {
        match self {
            Vary::Rate => "/s",
            Vary::Listeners => " listeners",
        }
    }
}

/// `firehose-sim knee` flags, unvalidated.
#[derive(Debug, Clone, Args)]
pub struct KneeArgs {
    /// The dimension stepped: `rate` (bookmarks per second) or `listeners` (firehose
    /// listeners). Every other value comes from the run flags below or `--scenario`.
    #[arg(long, value_enum)]
    pub vary: Vary,

    /// The first level (bookmarks/s, or a listener count).
    #[arg(long, value_name = "N")]
    pub start: f64,

    /// Geometric steps: each level is the previous one times this (> 1). The default
    /// when --step is not given: 1.5.
    #[arg(long, value_name = "X", conflicts_with = "step")]
    pub factor: Option<f64>,

    /// Additive steps: each level is the previous one plus this (> 0).
    #[arg(long, value_name = "N")]
    pub step: Option<f64>,

    /// The last level tried (always tried, even when the steps jump past it).
    #[arg(long, value_name = "N")]
    pub max: f64,

    /// The SLO every level must meet, e.g. 'delivery.firehose.p99 < 50ms' (repeatable,
    /// at least one; the --threshold syntax and metrics). A level whose run is invalid
    /// (generator lag) breaks it too. The run flags' --threshold is not used here.
    #[arg(long = "slo", value_name = "EXPR", required = true)]
    pub slos: Vec<String>,

    /// Re-run the first level that breaks once; it counts as broken only if the re-run
    /// breaks too (otherwise stepping goes on).
    #[arg(long)]
    pub confirm: bool,

    #[command(flatten)]
    pub run: RunArgs,
}

/// Why a knee search cannot run, or stopped before it could judge.
#[derive(Debug, thiserror::Error)]
pub enum KneeError {
    #[error("{0}")]
    Usage(String),
    #[error("--slo: {0}")]
    Slo(#[from] ThresholdError),
    /// `level` names the level (`level 40/s`) or `the base plan`.
    #[error("{level}: {source}")]
    Plan { level: String, source: Box<PlanError> },
    #[error("level {level}: {source}")]
    Run { level: String, source: Box<SimError> },
    #[error("cannot write under {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

impl KneeError {
    pub fn exit_code(&self) -> u8 {
        match self {
            KneeError::Usage(_) | KneeError::Slo(_) | KneeError::Plan { .. } => exit::USAGE,
            KneeError::Run { source, .. } => source.as_ref().exit_code(),
            KneeError::Write { .. } => exit::FAILURE,
        }
    }
}

/// The levels a search may visit, in order: `start`, then geometric or additive steps
/// while they stay at or below `max`, then `max` itself. Listener counts are whole
/// numbers; steps that round to the same count are visited once.
pub fn levels(vary: Vary, start: f64, factor: Option<f64>, step: Option<f64>, max: f64) -> Result<Vec<f64>, KneeError> {
    let usage = |m: String| Err(KneeError::Usage(m));
    if !start.is_finite() || start <= 0.0 {
        return usage(format!("--start must be a positive number, got {start}"));
    }
    if !max.is_finite() || max < start {
        return usage(format!("--max ({max}) must be at least --start ({start})"));
    }
    if vary == Vary::Listeners && start < 1.0 {
        return usage(format!("--start must be at least 1 listener, got {start}"));
    }
    if vary == Vary::Listeners && max > f64::from(u32::MAX) {
        return usage(format!("--max {max} listeners is more than any run can hold"));
    }
    let next: Box<dyn Fn(f64) -> f64> = match (factor, step) {
        (Some(_), Some(_)) => return usage("give --factor or --step, not both".into()),
        (None, Some(step)) if !(step.is_finite() && step > 0.0) => {
            return usage(format!("--step must be a positive number, got {step}"));
        }
        (None, Some(step)) => Box::new(move |x| x + step),
        (Some(f), None) if !(f.is_finite() && f > 1.0) => {
            return usage(format!("--factor must be a number above 1, got {f}"));
        }
        (f, None) => {
            let f = f.unwrap_or(1.5);
            Box::new(move |x| x * f)
        }
    };
    let round = |x: f64| if vary == Vary::Listeners { x.round() } else { x };
    let mut out: Vec<f64> = Vec::new();
    let mut x = start;
    while x <= max * (1.0 + 1e-9) {
        let level = round(x);
        if out.last() != Some(&level) {
            out.push(level);
        }
        if out.len() > MAX_LEVELS {
            return usage(format!(
                "--start {start} to --max {max} makes more than {MAX_LEVELS} levels: use a larger --factor or --step"
            ));
        }
        x = next(x);
    }
    let last = round(max);
    if out.last().is_none_or(|&l| l < last) {
        out.push(last);
    }
    Ok(out)
}

/// One run of the search.
#[derive(Debug, Clone, Serialize)]
pub struct LevelResult {
    /// Bookmarks/s or listeners.
    pub level: f64,
    /// A confirmation re-run of the level before it.
    pub confirmation: bool,
    pub held: bool,
    pub valid: bool,
    /// Deliveries owed but never received, all groups.
    pub loss: u64,
    /// Each SLO judged on this run (`actual`, `unit`, `passed`).
    pub slos: Vec<report::model::ThresholdOutcome>,
    /// Why the level broke: invalid-run reasons, then failed SLOs.
    pub reasons: Vec<String>,
    /// This level's report folder.
    pub report: Option<PathBuf>,
}

/// `knee.json`.
#[derive(Debug, Clone, Serialize)]
pub struct KneeReport {
    pub schema: String,
    pub simulator_version: String,
    pub started_at: String,
    pub finished_at: String,
    pub vary: Vary,
    /// The SLO expressions, as written.
    pub slos: Vec<String>,
    /// Every level the search could visit.
    pub levels_planned: Vec<f64>,
    /// The base plan, at the first level.
    pub plan: serde_json::Value,
    /// The highest level that held (`null`: not even `--start` did).
    pub highest_held: Option<f64>,
    /// The first level that broke (`null`: every level up to `--max` held).
    pub first_broken: Option<f64>,
    /// Why `first_broken` broke.
    pub broken_because: Vec<String>,
    /// Whether every level up to `--max` held.
    pub reached_max: bool,
    /// Every run, in order (a confirmation re-run follows the run it confirms).
    pub runs: Vec<LevelResult>,
}

impl KneeReport {
    /// One line saying what was found.
    pub fn verdict(&self) -> String {
        let unit = self.vary.unit();
        match (self.highest_held, self.first_broken) {
            (_, None) => format!("every level up to the max held: {}{unit}", fmt_level(self.levels_planned.last())),
            (None, Some(b)) => format!(
                "not even the first level held ({}{unit} broke: {}); start lower",
                fmt_num(b),
                self.broken_because.join("; ")
            ),
            (Some(h), Some(b)) => format!(
                "knee: {}{unit} held, {}{unit} broke ({})",
                fmt_num(h),
                fmt_num(b),
                self.broken_because.join("; ")
            ),
        }
    }
}

fn fmt_level(x: Option<&f64>) -> String {
    x.map_or_else(|| "-".into(), |x| fmt_num(*x))
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{x:.0}") } else { format!("{x:.3}") }
}

/// The plan of one level: the base flags with the varied value typed over them. Varying
/// the rate scales every action rate the base plan has (likes, chat, …) by the same
/// factor as the bookmark rate, typed over them too so their users are planned anew.
pub fn plan_for(args: &KneeArgs, base: &Plan, slos: &[Threshold], level: f64) -> Result<Plan, PlanError> {
    let mut run = args.run.clone();
    match args.vary {
        Vary::Rate => {
            let ratio = level / base.bookmarks.rate_per_s;
            run.rate = level;
            run.explicit.insert("rate".into());
            let (a, typed) = (&base.actions, &mut run.actions);
            for (id, field, value) in [
                ("like_rate", &mut typed.like_rate, a.like_rate_per_s),
                ("unlike_rate", &mut typed.unlike_rate, a.unlike_rate_per_s),
                ("delete_rate", &mut typed.delete_rate, a.delete_rate_per_s),
                ("message_rate", &mut typed.message_rate, a.message_rate_per_s),
                ("typing_rate", &mut typed.typing_rate, a.typing_rate_per_s),
            ] {
                if value > 0.0 {
                    *field = value * ratio;
                    run.explicit.insert(id.into());
                }
            }
        }
        Vary::Listeners => {
            run.listeners = level as u32;
            run.explicit.insert("listeners".into());
        }
    }
    let mut plan = Plan::from_args(&run)?;
    plan.thresholds = slos.to_vec();
    Ok(plan)
}

/// The plan the flags make before any level is typed over them.
fn base_plan(args: &KneeArgs) -> Result<Plan, KneeError> {
    Plan::from_args(&args.run)
        .map_err(|source| KneeError::Plan { level: "the base plan".into(), source: Box::new(source) })
}

/// Judges a finished run: valid, complete, the default gates and every SLO met.
fn judge(report: &mut Report, slos: &[Threshold], level: f64, confirmation: bool) -> LevelResult {
    report.judge(slos, crate::engine::interrupt::requested());
    let m = &report.model;
    let v = &m.verdict;
    let mut reasons: Vec<String> = v.invalid_reasons.iter().map(|r| format!("invalid run: {r}")).collect();
    if !v.valid && reasons.is_empty() {
        reasons.push("invalid run".into());
    }
    // `valid == true` failing on an invalid run says nothing the reasons above do not.
    for t in m.thresholds.iter().filter(|t| !t.passed && (t.metric != "valid" || v.valid)) {
        reasons.push(format!("{} = {}, wanted {}", t.metric, show_actual(t), t.expected));
    }
    if let Some(p) = &v.partial {
        reasons.push(format!("partial run: {p}"));
    }
    let loss = m.totals.lost;
    LevelResult {
        level,
        confirmation,
        held: reasons.is_empty(),
        valid: v.valid,
        loss,
        // The SLOs alone, one per `--slo` in order (knee.md gives each a column); a failed
        // default gate is among the reasons above.
        slos: m.thresholds.iter().filter(|t| !t.default).cloned().collect(),
        reasons,
        report: None,
    }
}

/// Plans every level (so a level that cannot run fails before anything does), then runs
/// them in order until one breaks.
pub async fn search(args: &KneeArgs, dir: &Path) -> Result<KneeReport, KneeError> {
    let started_at = chrono::Utc::now();
    let slos: Vec<Threshold> = args.slos.iter().map(|s| Threshold::parse(s)).collect::<Result<_, _>>()?;
    let planned = levels(args.vary, args.start, args.factor, args.step, args.max)?;
    let unit = args.vary.unit();
    let base = base_plan(args)?;
    let plans = planned
        .iter()
        .map(|&l| {
            plan_for(args, &base, &slos, l).map_err(|source| KneeError::Plan {
                level: format!("level {}{unit}", fmt_num(l)),
                source: Box::new(source),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let first_plan = serde_json::to_value(&plans[0]).unwrap_or_default();
    let mut runs: Vec<LevelResult> = Vec::new();
    let (mut highest_held, mut first_broken, mut broken_because) = (None, None, Vec::new());
    for (plan, &level) in plans.into_iter().zip(&planned) {
        let first = runs.is_empty();
        let mut result = run_level(plan.clone(), &slos, level, false, first, dir).await?;
        print_level(&result, unit);
        let mut held = result.held;
        let mut reasons = result.reasons.clone();
        runs.push(result);
        if !held && args.confirm {
            result = run_level(plan, &slos, level, true, first, dir).await?;
            print_level(&result, unit);
            held = result.held;
            reasons = result.reasons.clone();
            runs.push(result);
        }
        if held {
            highest_held = Some(level);
        } else {
            first_broken = Some(level);
            broken_because = reasons;
            break;
        }
    }
    Ok(KneeReport {
        schema: KNEE_SCHEMA.into(),
        simulator_version: env!("CARGO_PKG_VERSION").into(),
        started_at: started_at.to_rfc3339(),
        finished_at: chrono::Utc::now().to_rfc3339(),
        vary: args.vary,
        slos: slos.iter().map(|s| s.expr.clone()).collect(),
        levels_planned: planned,
        plan: first_plan,
        highest_held,
        reached_max: first_broken.is_none(),
        first_broken,
        broken_because,
        runs,
    })
}

/// Runs one level and writes its report under `dir`. A setup failure at the first
/// level (nothing has held yet: the target is unreachable or refuses the setup) is an
/// error; later, e.g. listeners that could not join at a higher count, it breaks the
/// level.
async fn run_level(
    mut plan: Plan,
    slos: &[Threshold],
    level: f64,
    confirmation: bool,
    first: bool,
    dir: &Path,
) -> Result<LevelResult, KneeError> {
    plan.out = dir.to_owned();
    let level_name = fmt_num(level);
    let written = |report: &Report, mut result: LevelResult| -> Result<LevelResult, KneeError> {
        let folder =
            report::files::write(report, dir).map_err(|source| KneeError::Write { path: dir.to_owned(), source })?;
        result.report = Some(folder.strip_prefix(dir).map(Path::to_owned).unwrap_or(folder));
        Ok(result)
    };
    match crate::commands::run::run(plan).await {
        Ok(mut report) => {
            let result = judge(&mut report, slos, level, confirmation);
            written(&report, result)
        }
        // The target failed mid-run (e.g. closed the listeners' sockets): the level
        // broke, and what was measured until then is its report.
        Err(SimError::Partial { cause, report }) => {
            let mut report = *report;
            let mut result = judge(&mut report, slos, level, confirmation);
            result.held = false;
            result.reasons.insert(0, format!("run failed: {cause}"));
            written(&report, result)
        }
        Err(e @ SimError::Setup(_)) if !first => Ok(LevelResult {
            level,
            confirmation,
            held: false,
            valid: false,
            loss: 0,
            slos: Vec::new(),
            reasons: vec![format!("run failed: {e}")],
            report: None,
        }),
        Err(source) => Err(KneeError::Run { level: level_name, source: Box::new(source) }),
    }
}

fn print_level(r: &LevelResult, unit: &str) {
    let figures: Vec<String> = r.slos.iter().map(|t| format!("{} {}", t.metric, show_actual(t))).collect();
    crate::report::terminal::println(&format!(
        "level {:>10}{unit}{}  {}  valid {}  loss {}  {}",
        fmt_num(r.level),
        if r.confirmation { " (confirm)" } else { "" },
        if r.held { "held " } else { "BROKE" },
        r.valid,
        r.loss,
        if r.held { figures.join(", ") } else { r.reasons.join("; ") }
    ));
}

fn show_actual(t: &report::model::ThresholdOutcome) -> String {
    let value = match &t.actual {
        serde_json::Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), fmt_num),
        other => other.to_string(),
    };
    match t.unit.as_str() {
        "" | "fraction" => value,
        "/s" => format!("{value}/s"),
        unit => format!("{value} {unit}"),
    }
}

/// `knee.md`: the verdict and one table row per run.
pub fn render_md(k: &KneeReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# firehose-sim knee: {}\n",
        match k.vary {
            Vary::Rate => "bookmark rate",
            Vary::Listeners => "firehose listeners",
        }
    );
    let _ = writeln!(s, "**{}**\n", k.verdict());
    let _ = writeln!(s, "SLO: {}\n", k.slos.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", "));
    let mut header = format!(
        "| {} |",
        match k.vary {
            Vary::Rate => "rate (/s)",
            Vary::Listeners => "listeners",
        }
    );
    // Each SLO's column is headed by its whole expression, so `valid == true` as an SLO
    // is not confused with the run's own validity column.
    for e in &k.slos {
        let _ = write!(header, " `{}` |", e.trim());
    }
    header.push_str(" run valid | loss | verdict | report |");
    let _ = writeln!(s, "{header}");
    let _ = writeln!(s, "{}", "|---".repeat(k.slos.len() + 5) + "|");
    for r in &k.runs {
        let mut row = format!("| {}{} |", fmt_num(r.level), if r.confirmation { " (confirm)" } else { "" });
        for t in &r.slos {
            let _ = write!(row, " {} |", show_actual(t));
        }
        for _ in r.slos.len()..k.slos.len() {
            row.push_str(" - |");
        }
        let verdict = if r.held { "held".to_owned() } else { format!("**broke**: {}", r.reasons.join("; ")) };
        let folder = r.report.as_ref().map_or_else(|| "-".into(), |p| format!("`{}`", p.display()));
        let _ = writeln!(s, "{row} {} | {} | {verdict} | {folder} |", r.valid, r.loss);
    }
    s
}

/// `firehose-sim knee`: flags → levels → runs → `knee.json` + `knee.md` → exit code.
pub fn main(args: &KneeArgs) -> u8 {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .try_init();
    // Usage errors before anything is created on disk.
    if let Err(e) = check(args) {
        eprintln!("firehose-sim knee: {e}");
        return e.exit_code();
    }
    let dir = match report::files::create_stamped(&args.run.out, "knee") {
        Ok(dir) => dir,
        Err(source) => {
            eprintln!("firehose-sim knee: {}", KneeError::Write { path: args.run.out.clone(), source });
            return exit::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("firehose-sim knee: cannot start the runtime: {e}");
            return exit::FAILURE;
        }
    };
    let knee = match runtime.block_on(search(args, &dir)) {
        Ok(knee) => knee,
        Err(e) => {
            eprintln!("firehose-sim knee: {e}");
            return e.exit_code();
        }
    };
    if let Err(e) = write(&knee, &dir) {
        eprintln!("firehose-sim knee: {e}");
        return exit::FAILURE;
    }
    crate::report::terminal::println(&format!("\n{}", knee.verdict()));
    crate::report::terminal::println(&format!("knee            {}", dir.join("knee.json").display()));
    exit::OK
}

/// Every usage error a search can have, found without running anything.
pub fn check(args: &KneeArgs) -> Result<(), KneeError> {
    if args.run.given("thresholds") {
        return Err(KneeError::Usage("knee judges levels by --slo; --threshold is not used here".into()));
    }
    let slos: Vec<Threshold> = args.slos.iter().map(|s| Threshold::parse(s)).collect::<Result<_, _>>()?;
    let planned = levels(args.vary, args.start, args.factor, args.step, args.max)?;
    if args.run.agents > 1 {
        return Err(KneeError::Usage("knee runs every level in this process: --agents is not supported here".into()));
    }
    let base = base_plan(args)?;
    for &l in &planned {
        plan_for(args, &base, &slos, l).map_err(|source| KneeError::Plan {
            level: format!("level {}{}", fmt_num(l), args.vary.unit()),
            source: Box::new(source),
        })?;
    }
    Ok(())
}

/// Writes `knee.json` and `knee.md` into `dir`.
pub fn write(knee: &KneeReport, dir: &Path) -> Result<(), KneeError> {
    let err = |source| KneeError::Write { path: dir.to_owned(), source };
    let mut json = serde_json::to_vec_pretty(knee).map_err(|e| err(std::io::Error::other(e)))?;
    json.push(b'\n');
    std::fs::File::create(dir.join("knee.json")).and_then(|mut f| f.write_all(&json)).map_err(err)?;
    std::fs::write(dir.join("knee.md"), render_md(knee)).map_err(err)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::*;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        knee: KneeArgs,
    }

    fn parse(flags: &[&str]) -> KneeArgs {
        let matches =
            Wrap::command().try_get_matches_from(std::iter::once("knee").chain(flags.iter().copied())).unwrap();
        let mut knee = Wrap::from_arg_matches(&matches).unwrap().knee;
        knee.run.explicit = RunArgs::from_matches(&matches).unwrap().explicit;
        knee
    }

    #[test]
    fn a_rate_level_scales_every_action_rate_with_the_bookmark_rate() {
        let args = parse(&[
            "--vary",
            "rate",
            "--start",
            "10",
            "--max",
            "40",
            "--slo",
            "valid == true",
            "--rate",
            "20",
            "--like-rate",
            "4",
        ]);
        let base = base_plan(&args).unwrap();
        let slos = vec![Threshold::parse("valid == true").unwrap()];
        let plan = plan_for(&args, &base, &slos, 40.0).unwrap();
        assert_eq!(plan.bookmarks.rate_per_s, 40.0);
        assert_eq!(plan.actions.like_rate_per_s, 8.0);
        assert_eq!(plan.actions.message_rate_per_s, 0.0, "an action that is off stays off");
        assert_eq!(plan.thresholds, slos, "levels are judged by the SLOs");
        let listeners = parse(&["--vary", "listeners", "--start", "10", "--max", "40", "--slo", "valid == true"]);
        let base = base_plan(&listeners).unwrap();
        let plan = plan_for(&listeners, &base, &slos, 30.0).unwrap();
        assert_eq!((plan.bookmarks.listeners, plan.bookmarks.rate_per_s), (30, base.bookmarks.rate_per_s));
    }

    #[test]
    fn geometric_levels_end_at_max() {
        let l = levels(Vary::Rate, 10.0, None, None, 40.0).unwrap();
        assert_eq!(l, vec![10.0, 15.0, 22.5, 33.75, 40.0]);
        let l = levels(Vary::Rate, 10.0, Some(2.0), None, 40.0).unwrap();
        assert_eq!(l, vec![10.0, 20.0, 40.0]);
    }

    #[test]
    fn additive_listener_levels_are_whole_and_distinct() {
        assert_eq!(
            levels(Vary::Listeners, 100.0, None, Some(250.0), 1000.0).unwrap(),
            vec![100.0, 350.0, 600.0, 850.0, 1000.0]
        );
        assert_eq!(levels(Vary::Listeners, 1.0, Some(1.2), None, 3.0).unwrap(), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn bad_steps_are_usage_errors() {
        for (start, factor, step, max) in [
            (0.0, None, None, 10.0),
            (10.0, None, None, 5.0),
            (1.0, Some(1.0), None, 10.0),
            (1.0, None, Some(0.0), 10.0),
            (1.0, None, Some(0.001), 10.0),
            (1.0, Some(2.0), Some(1.0), 10.0),
        ] {
            let err = levels(Vary::Rate, start, factor, step, max).unwrap_err();
            assert_eq!(err.exit_code(), exit::USAGE, "{err}");
        }
    }
}
