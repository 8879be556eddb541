//! Scenario files: a run described in TOML (`fixtures/scenarios/*.toml`, format in
//! `fixtures/scenarios/README.md`). This module only reads a file into raw values that
//! remember where they were written; `plan` layers command-line flags over them and
//! validates the result, so an error can point at the file, line and key.
//!
//! Unknown keys are refused (`deny_unknown_fields`): a misspelt `rate` must not
//! silently run the default.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// Where shipped scenarios live, relative to the repository root.
pub const SCENARIO_DIR: &str = "fixtures/scenarios";

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Free text, for people.
    pub description: Option<String>,
    /// One base URL, or a list of them (the nodes of one cluster); `embedded` alone is
    /// the in-process app.
    pub target: Option<Spanned<TargetList>>,
    /// Target profile: a path (relative to this file or the current directory) or a
    /// name under `fixtures/profiles/`; `--profile` overrides it.
    pub profile: Option<Spanned<String>>,
    pub duration: Option<Spanned<String>>,
    pub warmup: Option<Spanned<String>>,
    pub seed: Option<Spanned<u64>>,
    pub max_lag: Option<Spanned<String>>,
    pub drain_timeout: Option<Spanned<String>>,
    pub max_in_flight: Option<Spanned<u32>>,
    pub seed_bookmarks: Option<Spanned<u32>>,
    /// Gates, as `--threshold` takes them; `--threshold` flags replace the list.
    pub thresholds: Option<Vec<Spanned<String>>>,
    /// `[[stages]]`: the traffic phase as ramps, plateaus and spikes (`--stage` replaces).
    pub stages: Option<Spanned<Vec<StageFile>>>,
    /// The rate multiplier at the start of the first stage.
    pub start_scale: Option<Spanned<f64>>,
    #[serde(default)]
    pub listeners: ListenersFile,
    #[serde(default)]
    pub actions: ActionsFile,
}

/// `target = "URL"` or `target = ["URL", "URL"]`, as the values of repeated `--target`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetList(pub Vec<String>);

impl<'de> Deserialize<'de> for TargetList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = TargetList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base URL or a list of base URLs")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TargetList, E> {
                Ok(TargetList(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<TargetList, A::Error> {
                let mut urls = Vec::new();
                while let Some(url) = seq.next_element::<String>()? {
                    urls.push(url);
                }
                if urls.is_empty() {
                    return Err(serde::de::Error::invalid_length(0, &"at least one base URL"));
                }
                Ok(TargetList(urls))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// `[listeners]`: counts per group and how fast they connect.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenersFile {
    pub firehose: Option<Spanned<u32>>,
    pub tag: Option<Spanned<u32>>,
    pub connect_rate: Option<Spanned<f64>>,
    /// Listeners on one `room:<slug>` each (`--room-listeners`).
    pub room: Option<Spanned<u32>>,
    /// Room listeners per room, spread evenly (`--room-members`; replaces `room`).
    pub room_members: Option<Spanned<u32>>,
    /// Listeners on one `likes:<bookmark_id>` each (`--likes-listeners`).
    pub likes: Option<Spanned<u32>>,
    /// Signed-in listeners on their own `user:<id>` (`--user-listeners`).
    pub user: Option<Spanned<u32>>,
    /// Anonymous listeners on the hot `page:<path>` topics (`--page-listeners`).
    pub page: Option<Spanned<u32>>,
}

/// `[actions.<kind>]`: one table per traffic kind.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionsFile {
    pub create_bookmark: Option<Spanned<CreateBookmark>>,
    pub delete_bookmark: Option<Spanned<RateOnly>>,
    pub like: Option<Spanned<LikeFile>>,
    pub unlike: Option<Spanned<RateOnly>>,
    pub chat_message: Option<Spanned<ChatFile>>,
    pub typing: Option<Spanned<RateOnly>>,
    pub room_presence: Option<Spanned<PresenceFile>>,
    pub presence_churn: Option<Spanned<PresenceChurnFile>>,
    pub reconnect_storm: Option<Spanned<ReconnectStormFile>>,
    pub page_readers: Option<Spanned<PageReadersFile>>,
    pub read_list: Option<Spanned<RateOnly>>,
    pub read_tag: Option<Spanned<RateOnly>>,
    pub read_random: Option<Spanned<RateOnly>>,
    pub search: Option<Spanned<RateOnly>>,
}

/// `[actions.page_readers]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageReadersFile {
    /// Reader arrivals per second.
    pub rate: Option<Spanned<f64>>,
    /// How long each reader stays, e.g. "3s".
    pub dwell: Option<Spanned<String>>,
}

/// `[actions.create_bookmark]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBookmark {
    /// Bookmarks per second.
    pub rate: Option<Spanned<f64>>,
    pub private_fraction: Option<Spanned<f64>>,
}

/// `[[stages]]`: one stage of the traffic phase.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageFile {
    /// How long the stage lasts, e.g. "10s".
    pub duration: Spanned<String>,
    /// Every rate's multiplier at the stage's end (reached linearly).
    pub scale: Spanned<f64>,
    /// Fraction of each listener group connected by the stage's end (listener ramps).
    pub listeners: Option<Spanned<f64>>,
}

/// `[actions.presence_churn]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceChurnFile {
    /// Leave-and-rejoin actions per second over all listeners.
    pub rate: Option<Spanned<f64>>,
    /// Time away between leave and rejoin, e.g. "500ms".
    pub absence: Option<Spanned<String>>,
}

/// `[actions.reconnect_storm]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectStormFile {
    /// Offsets into the traffic phase, e.g. ["5s", "12s"].
    pub at: Option<Vec<Spanned<String>>>,
    /// Or a storm every this long, e.g. "10s".
    pub every: Option<Spanned<String>>,
    /// Fraction of the listener sockets dropped by each storm.
    pub fraction: Option<Spanned<f64>>,
    /// Equal jitter on phoenix.js's reconnect delays.
    pub jitter: Option<Spanned<bool>>,
}

/// `[actions.like]`, `[actions.unlike]`, `[actions.delete_bookmark]`, `[actions.typing]`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateOnly {
    pub rate: Option<Spanned<f64>>,
}

/// `[actions.like]`
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LikeFile {
    pub rate: Option<Spanned<f64>>,
    /// Bookmarks liked (`--like-targets`).
    pub targets: Option<Spanned<u32>>,
}

/// `[actions.room_presence]`
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceFile {
    pub rate: Option<Spanned<f64>>,
    /// How long each join stays, e.g. "1s" (`--presence-hold`).
    pub hold: Option<Spanned<String>>,
}

/// `[actions.chat_message]`
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatFile {
    pub rate: Option<Spanned<f64>>,
    /// Rooms (`--rooms`).
    pub rooms: Option<Spanned<u32>>,
    pub mention_fraction: Option<Spanned<f64>>,
    pub actor_users: Option<Spanned<u32>>,
}

/// A loaded scenario: its path, text (for line numbers) and values.
#[derive(Debug)]
pub struct Scenario {
    pub path: PathBuf,
    text: String,
    pub file: ScenarioFile,
}

/// A place in a scenario file, for messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub file: String,
    /// Dotted key, e.g. `actions.create_bookmark.rate`.
    pub key: String,
    /// 1-based.
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.key)
    }
}

/// Why a scenario cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    #[error("--scenario {name:?}: no such scenario (looked for {}); shipped scenarios: {}", looked.join(", "), available.join(", "))]
    NotFound { name: String, looked: Vec<String>, available: Vec<String> },
    #[error("{file}: cannot read the scenario: {reason}")]
    Read { file: String, reason: String },
    /// Syntax, wrong type, unknown key: toml's message at its span.
    #[error("{file}:{line}:{column}: {message}\n{snippet}")]
    Parse { file: String, line: usize, column: usize, message: String, snippet: String },
}

/// The dotted key (`listeners.firehose`) of the `key = value` line holding byte `at`,
/// from the nearest `[table]` or `[[table]]` header above it; `None` when that line
/// is not an assignment.
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('#') || key.starts_with('[') {
        return None;
    }
    let table = text[..line_start].lines().rev().map(str::trim).find(|l| l.starts_with('['));
    Some(match table {
        Some(header) => format!("{}.{key}", header.trim_matches(|c| c == '[' || c == ']').trim()),
        None => key.to_owned(),
    })
}

impl Scenario {
    /// Finds a scenario by path, or by name under `fixtures/scenarios/` (from the
    /// current directory, then from the repository this binary was built in).
    pub fn find(name: &str) -> Result<PathBuf, ScenarioError> {
        let direct = Path::new(name);
        if name.ends_with(".toml") || name.contains(std::path::MAIN_SEPARATOR) {
            return Ok(direct.to_owned());
        }
        let candidates = scenario_dirs().into_iter().map(|d| d.join(format!("{name}.toml"))).collect::<Vec<_>>();
        if let Some(found) = candidates.iter().find(|p| p.is_file()) {
            // `…/simulator/../fixtures/…` reads better resolved in plans and reports.
            return Ok(found.canonicalize().unwrap_or_else(|_| found.clone()));
        }
        Err(ScenarioError::NotFound {
            name: name.to_owned(),
            looked: candidates.iter().map(|p| p.display().to_string()).collect(),
            available: shipped(),
        })
    }

    /// Reads and parses the scenario at `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::Read { file: path.display().to_string(), reason: e.to_string() })?;
        Self::parse(path, text)
    }

    /// Parses `text` as if read from `path`.
    pub fn parse(path: &Path, text: String) -> Result<Scenario, ScenarioError> {
        let file: ScenarioFile = toml::from_str(&text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let (line, column) = line_col(&text, span.start);
            let message = e.message().trim().to_owned();
            // toml names the value's type but not its key: name the key when the
            // error sits on a `key = value` line.
            let message = match key_at(&text, span.start) {
                Some(key) if !message.starts_with("unknown field") => format!("{key}: {message}"),
                _ => message,
            };
            ScenarioError::Parse {
                file: path.display().to_string(),
                line,
                column,
                message,
                snippet: snippet(&text, span),
            }
        })?;
        Ok(Scenario { path: path.to_owned(), text, file })
    }

    /// The place of a value spanning `span`.
    pub fn place(&self, key: &str, span: Range<usize>) -> Place {
        let (line, column) = line_col(&self.text, span.start);
        Place { file: self.path.display().to_string(), key: key.to_owned(), line, column }
    }
}

fn scenario_dirs() -> Vec<PathBuf> {
    let here = PathBuf::from(SCENARIO_DIR);
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(SCENARIO_DIR);
    let mut dirs = vec![here];
    if built.is_dir() {
        dirs.push(built);
    }
    dirs
}

/// Names of the scenarios found where `find` looks.
pub fn shipped() -> Vec<String> {
    let mut names: Vec<String> = scenario_dirs()
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".toml").map(str::to_owned)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// 1-based line and column (in characters) of byte `offset`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The line holding `span`, numbered, with carets under the span.
pub(crate) fn snippet(text: &str, span: Range<usize>) -> String {
    let (line, column) = line_col(text, span.start);
    let source = text.lines().nth(line - 1).unwrap_or("");
    let width = text.get(span.clone()).map_or(1, |s| s.lines().next().unwrap_or("").chars().count().max(1));
    let gutter = line.to_string().len();
    format!("{:gutter$} |\n{line} | {source}\n{:gutter$} | {}{}", "", "", " ".repeat(column - 1), "^".repeat(width))
}

#[cfg(test)]
mod tests;
