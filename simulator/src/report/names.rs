//! Every name a report uses, in one place: the listener groups, the traffic kinds, the
//! histograms (their `.hgrm`/`.hlog` file stems and the JSON pointer of the summary each
//! feeds) and the metric catalogue (name, unit, meaning) that thresholds, `compare`,
//! `merge`, the terminal, HTML, JUnit and `simulator/REPORT.md` all speak. Nothing else
//! assembles a metric or histogram name.

use std::fmt;

/// A listener group: which kind of topic its listeners joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// `bookmarks:firehose`: every public bookmark.
    Firehose,
    /// `bookmarks:tag:<tag>`: public bookmarks with that tag.
    Tag,
    /// `room:<slug>`: chat messages, typing, room presence.
    Room,
    /// `likes:<id>`: a bookmark's like count.
    Likes,
    /// `user:<id>`: @mention notifications of one signed-in user.
    User,
    /// `page:<path>`: readers arriving on and leaving a page.
    Page,
}

impl Group {
    pub const ALL: [Group; 6] = [Group::Firehose, Group::Tag, Group::Room, Group::Likes, Group::User, Group::Page];

    /// The key in `report.json`'s `groups` and in metric names.
    pub fn name(self) -> &'static str {
        match self {
            Group::Firehose => "firehose",
            Group::Tag => "tag",
            Group::Room => "room",
            Group::Likes => "likes",
            Group::User => "user",
            Group::Page => "page",
        }
    }

    pub fn parse(name: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.name() == name)
    }

    /// What its listeners receive, for help texts.
    pub fn about(self) -> &'static str {
        match self {
            Group::Firehose => "bookmark_created on bookmarks:firehose",
            Group::Tag => "bookmark_created on bookmarks:tag:<tag>",
            Group::Room => "new_message / user_typing / presence_diff on room:<slug>",
            Group::Likes => "like_count on likes:<bookmark id>",
            Group::User => "notification on user:<id> (@mentions)",
            Group::Page => "presence_diff on page:<path> (readers)",
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A traffic kind: something the simulator does on a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    CreateBookmark,
    Like,
    Unlike,
    DeleteBookmark,
    ChatMessage,
    Typing,
    RoomPresence,
    PresenceChurn,
    ReconnectStorm,
    PageReaders,
    ReadList,
    ReadTag,
    ReadRandom,
    Search,
}

impl Kind {
    pub const ALL: [Kind; 14] = [
        Kind::CreateBookmark,
        Kind::Like,
        Kind::Unlike,
        Kind::DeleteBookmark,
        Kind::ChatMessage,
        Kind::Typing,
        Kind::RoomPresence,
        Kind::PresenceChurn,
        Kind::ReconnectStorm,
        Kind::PageReaders,
        Kind::ReadList,
        Kind::ReadTag,
        Kind::ReadRandom,
        Kind::Search,
    ];

    /// The key in `report.json`'s `actions`, in scenario files' `[actions.<kind>]` and in
    /// metric names.
    pub fn name(self) -> &'static str {
        match self {
            Kind::CreateBookmark => "create_bookmark",
            Kind::Like => "like",
            Kind::Unlike => "unlike",
            Kind::DeleteBookmark => "delete_bookmark",
            Kind::ChatMessage => "chat_message",
            Kind::Typing => "typing",
            Kind::RoomPresence => "room_presence",
            Kind::PresenceChurn => "presence_churn",
            Kind::ReconnectStorm => "reconnect_storm",
            Kind::PageReaders => "page_readers",
            Kind::ReadList => "read_list",
            Kind::ReadTag => "read_tag",
            Kind::ReadRandom => "read_random",
            Kind::Search => "search",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// What one action is, for help texts.
    pub fn about(self) -> &'static str {
        match self {
            Kind::CreateBookmark => "POST /api/bookmarks",
            Kind::Like => "POST /api/bookmarks/:id/like",
            Kind::Unlike => "DELETE /api/bookmarks/:id/like",
            Kind::DeleteBookmark => "DELETE /api/bookmarks/:id",
            Kind::ChatMessage => "new_msg push on room:<slug>",
            Kind::Typing => "typing push on room:<slug>",
            Kind::RoomPresence => "a fresh signed-in socket joins a room (presence join → diff)",
            Kind::PresenceChurn => "a listener leaves its channel and rejoins with since",
            Kind::ReconnectStorm => "listener sockets dropped at once, reconnecting on phoenix.js backoff",
            Kind::PageReaders => "a reader joins page:<path>, stays, leaves",
            Kind::ReadList => "GET /api/bookmarks",
            Kind::ReadTag => "GET /api/bookmarks?tag=<tag>",
            Kind::ReadRandom => "GET /api/bookmarks/random",
            Kind::Search => "GET /api/search?q=…",
        }
    }

    /// Whether an action of this kind is a request the target answers (every kind but
    /// the listener lifecycles, whose "answer" is the rejoin).
    pub fn is_request(self) -> bool {
        !matches!(self, Kind::PresenceChurn | Kind::ReconnectStorm)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The three audience fractions whose time-to-reach is measured per event.
pub const REACH_MARKS: [(&str, f64); 3] = [("50", 0.5), ("99", 0.99), ("100", 1.0)];

/// One of a kind's three histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindPart {
    /// Completion − intended start (coordinated omission corrected).
    Corrected,
    /// Completion − actual send.
    Uncorrected,
    /// Actual send − intended start.
    Lag,
}

impl KindPart {
    pub const ALL: [KindPart; 3] = [KindPart::Corrected, KindPart::Uncorrected, KindPart::Lag];

    fn suffix(self) -> &'static str {
        match self {
            KindPart::Corrected => "corrected",
            KindPart::Uncorrected => "uncorrected",
            KindPart::Lag => "lag",
        }
    }

    fn field(self) -> &'static str {
        match self {
            KindPart::Corrected => "latency_corrected",
            KindPart::Uncorrected => "latency_uncorrected",
            KindPart::Lag => "lag",
        }
    }
}

/// A histogram of a report: its name (the `.hgrm`/`.hlog` file stem) and the JSON
/// pointer of the summary computed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramName {
    pub name: String,
    pub pointer: String,
}

/// `action_<kind>_<corrected|uncorrected|lag>` → `/actions/<kind>/<field>`.
pub fn kind_histogram(kind: Kind, part: KindPart) -> HistogramName {
    HistogramName {
        name: format!("action_{}_{}", kind.name(), part.suffix()),
        pointer: format!("/actions/{}/{}", kind.name(), part.field()),
    }
}

/// `delivery_<group>` → `/groups/<group>/latency`.
pub fn delivery_histogram(group: Group) -> HistogramName {
    HistogramName { name: format!("delivery_{}", group.name()), pointer: format!("/groups/{}/latency", group.name()) }
}

/// `reach_<group>_<50|99|100>` → `/groups/<group>/reach/pct_<mark>`.
pub fn reach_histogram(group: Group, mark: &str) -> HistogramName {
    HistogramName {
        name: format!("reach_{}_{mark}", group.name()),
        pointer: format!("/groups/{}/reach/pct_{mark}", group.name()),
    }
}

/// `connect` → `/listeners/connect`: connect + upgrade + join, every listener.
pub fn connect_histogram() -> HistogramName {
    HistogramName { name: "connect".into(), pointer: "/listeners/connect".into() }
}

/// `.hgrm` file name of histogram `name`.
pub fn hgrm_file(name: &str) -> String {
    format!("{name}.hgrm")
}

/// `.hlog` file name of histogram `name`.
pub fn hlog_file(name: &str) -> String {
    format!("{name}.hlog")
}

/// The unit of a metric, which fixes how a threshold on it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds; thresholds give a unit (`ms`, `s`, `us`).
    Latency,
    /// A plain count.
    Count,
    /// Per second, plain.
    PerSecond,
    /// A ratio 0–1; thresholds give a percentage (`0.1%`) or a plain fraction.
    Fraction,
    /// true/false; only `==` and `!=`.
    Flag,
}

impl Unit {
    /// How the unit is printed beside a value.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Latency => "ms",
            Unit::PerSecond => "/s",
            Unit::Fraction => "fraction",
            Unit::Count | Unit::Flag => "",
        }
    }
}

/// The statistic of a latency summary a metric reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    P50,
    P90,
    P99,
    P999,
    Max,
    Min,
    Mean,
    Count,
}

impl Stat {
    pub const ALL: [Stat; 8] =
        [Stat::P50, Stat::P90, Stat::P99, Stat::P999, Stat::Max, Stat::Min, Stat::Mean, Stat::Count];

    pub fn name(self) -> &'static str {
        match self {
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P99 => "p99",
            Stat::P999 => "p999",
            Stat::Max => "max",
            Stat::Min => "min",
            Stat::Mean => "mean",
            Stat::Count => "count",
        }
    }

    pub fn unit(self) -> Unit {
        if self == Stat::Count { Unit::Count } else { Unit::Latency }
    }
}

/// Which latency summary of the report a metric reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summarised {
    /// A kind's corrected (`actions.<kind>.p99`) or uncorrected latency.
    Kind(Kind, KindPart),
    /// A group's delivery latency (`delivery.<group>.p99`).
    Delivery(Group),
    /// A group's time to reach a fraction of each event's audience (`reach.<group>.99.p99`).
    Reach(Group, usize),
    /// Connect + upgrade + join of every listener (`connect.p99`).
    Connect,
}

/// What a metric reads from the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// The run is valid (the generator kept its schedule).
    Valid,
    /// The run passed every gate, default and explicit.
    Passed,
    /// Owed deliveries never received, all groups, per (listener, event).
    Loss,
    /// `Loss` over deliveries owed.
    LossRate,
    /// Actions that failed, all kinds.
    Errors,
    /// `Errors` over actions sent.
    ErrorsRate,
    /// Deliveries of events that were private.
    PrivateLeak,
    /// Deliveries beyond the first of an event at a listener.
    Duplicates,
    /// Deliveries with a lower `seq` than the one before, per listener.
    Reordered,
    /// Deliveries nobody was owed (duplicates, strays, other runs' events excluded).
    Excess,
    /// Frames a listener could not decode.
    DecodeErrors,
    ListenersJoined,
    ListenersFailed,
    ListenersClosed,
    /// Actions sent later than `--max-lag` after their intended start, all kinds.
    Late,
    /// The largest send lag of any action.
    MaxLag,
    /// Owed deliveries received once, per second, all groups.
    DeliveriesPerS,
    GroupLoss(Group),
    GroupLossRate(Group),
    GroupDuplicates(Group),
    GroupExcess(Group),
    GroupThroughput(Group),
    KindErrors(Kind),
    KindErrorsRate(Kind),
    KindThroughput(Kind),
    KindLate(Kind),
    Summary(Summarised, Stat),
}

/// One named metric of the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub unit: Unit,
    pub figure: Figure,
    /// The catalogue section it is listed under (`firehose-sim metrics`).
    pub section: String,
    pub about: String,
}

impl Metric {
    fn new(name: impl Into<String>, unit: Unit, figure: Figure, section: &str, about: impl Into<String>) -> Self {
        Self { name: name.into(), unit, figure, section: section.to_owned(), about: about.into() }
    }
}

/// The default gates every run is judged by unless a `--threshold` names a metric of
/// the same family (see [`family`]): no failed action, no lost delivery, no private
/// event delivered.
pub const DEFAULT_GATES: [&str; 3] = ["errors == 0", "loss == 0", "private_leak == 0"];

/// The default gate a threshold on `metric` replaces: a threshold on the same metric,
/// as a count or as a rate (`errors < 5` or `errors.rate < 1%` replaces `errors == 0`).
/// A threshold on a part (`actions.like.errors`, `loss.firehose`) adds to the default
/// and replaces nothing.
pub fn family(metric: &str) -> Option<&'static str> {
    match metric.strip_suffix(".rate").unwrap_or(metric) {
        "errors" => Some("errors"),
        "loss" => Some("loss"),
        "private_leak" => Some("private_leak"),
        _ => None,
    }
}

fn summary(out: &mut Vec<Metric>, prefix: &str, of: Summarised, section: &str, about: &str) {
    for stat in Stat::ALL {
        let what = if stat == Stat::Count { "values recorded".to_owned() } else { stat.name().to_owned() };
        out.push(Metric::new(
            format!("{prefix}.{}", stat.name()),
            stat.unit(),
            Figure::Summary(of, stat),
            section,
            format!("{about}: {what}"),
        ));
    }
}

/// Every metric a threshold, `compare` or `knee --slo` may name, in listing order.
pub fn catalogue() -> Vec<Metric> {
    let run = "run";
    let mut m = vec![
        Metric::new("valid", Unit::Flag, Figure::Valid, run, "the generator kept its schedule (else exit 3)"),
        Metric::new("passed", Unit::Flag, Figure::Passed, run, "every gate passed, default and explicit"),
        Metric::new("loss", Unit::Count, Figure::Loss, run, "owed deliveries never received, per (listener, event)"),
        Metric::new("loss.rate", Unit::Fraction, Figure::LossRate, run, "loss over deliveries owed"),
        Metric::new("errors", Unit::Count, Figure::Errors, run, "actions that failed, every kind"),
        Metric::new("errors.rate", Unit::Fraction, Figure::ErrorsRate, run, "errors over actions sent"),
        Metric::new("private_leak", Unit::Count, Figure::PrivateLeak, run, "deliveries of private events"),
        Metric::new(
            "duplicates",
            Unit::Count,
            Figure::Duplicates,
            run,
            "repeated deliveries of an event at a listener",
        ),
        Metric::new("reordered", Unit::Count, Figure::Reordered, run, "deliveries whose seq went back, per listener"),
        Metric::new("excess", Unit::Count, Figure::Excess, run, "deliveries nobody was owed (duplicates included)"),
        Metric::new("decode_errors", Unit::Count, Figure::DecodeErrors, run, "frames a listener could not decode"),
        Metric::new(
            "deliveries.throughput",
            Unit::PerSecond,
            Figure::DeliveriesPerS,
            run,
            "owed deliveries received once, per second, every group",
        ),
        Metric::new("late", Unit::Count, Figure::Late, run, "actions sent later than --max-lag, every kind"),
        Metric::new("max_lag", Unit::Latency, Figure::MaxLag, run, "largest send lag of any action"),
        Metric::new("listeners.joined", Unit::Count, Figure::ListenersJoined, "listeners", "listener sockets joined"),
        Metric::new(
            "listeners.failed",
            Unit::Count,
            Figure::ListenersFailed,
            "listeners",
            "listeners that never joined",
        ),
        Metric::new(
            "listeners.closed",
            Unit::Count,
            Figure::ListenersClosed,
            "listeners",
            "listener sockets or channels the target closed during the run",
        ),
    ];
    summary(&mut m, "connect", Summarised::Connect, "listeners", "connect + upgrade + join");
    for g in Group::ALL {
        let n = g.name();
        let section = format!("group {n}");
        m.push(Metric::new(format!("loss.{n}"), Unit::Count, Figure::GroupLoss(g), &section, "owed, never received"));
        m.push(Metric::new(
            format!("loss.{n}.rate"),
            Unit::Fraction,
            Figure::GroupLossRate(g),
            &section,
            "loss over owed",
        ));
        m.push(Metric::new(
            format!("duplicates.{n}"),
            Unit::Count,
            Figure::GroupDuplicates(g),
            &section,
            "repeated deliveries at a listener",
        ));
        m.push(Metric::new(format!("excess.{n}"), Unit::Count, Figure::GroupExcess(g), &section, "unowed deliveries"));
        m.push(Metric::new(
            format!("delivery.{n}.throughput"),
            Unit::PerSecond,
            Figure::GroupThroughput(g),
            &section,
            "owed deliveries received once, per second",
        ));
        summary(&mut m, &format!("delivery.{n}"), Summarised::Delivery(g), &section, "receipt − intended start");
        for (k, (mark, _)) in REACH_MARKS.iter().enumerate() {
            summary(
                &mut m,
                &format!("reach.{n}.{mark}"),
                Summarised::Reach(g, k),
                &section,
                &format!("time until {mark} % of an event's audience had it"),
            );
        }
    }
    for k in Kind::ALL {
        let n = k.name();
        let section = format!("action {n}");
        m.push(Metric::new(format!("actions.{n}.errors"), Unit::Count, Figure::KindErrors(k), &section, "failed"));
        m.push(Metric::new(
            format!("actions.{n}.errors.rate"),
            Unit::Fraction,
            Figure::KindErrorsRate(k),
            &section,
            "failed over sent",
        ));
        m.push(Metric::new(
            format!("actions.{n}.throughput"),
            Unit::PerSecond,
            Figure::KindThroughput(k),
            &section,
            "completed per second",
        ));
        m.push(Metric::new(
            format!("actions.{n}.late"),
            Unit::Count,
            Figure::KindLate(k),
            &section,
            "sent later than --max-lag",
        ));
        summary(
            &mut m,
            &format!("actions.{n}"),
            Summarised::Kind(k, KindPart::Corrected),
            &section,
            "completion − intended start",
        );
        summary(
            &mut m,
            &format!("actions.{n}.uncorrected"),
            Summarised::Kind(k, KindPart::Uncorrected),
            &section,
            "completion − actual send",
        );
    }
    m
}

/// The metric called `name`.
pub fn metric(name: &str) -> Option<Metric> {
    catalogue().into_iter().find(|m| m.name == name)
}

/// The few known names nearest to `name` (edit distance over the dotted name, with a
/// bonus for a shared prefix), best first: what "did you mean" offers.
pub fn nearest(name: &str, few: usize) -> Vec<String> {
    let mut scored: Vec<(usize, String)> = catalogue().into_iter().map(|m| (distance(name, &m.name), m.name)).collect();
    scored.sort();
    let best = scored.first().map_or(0, |s| s.0);
    scored.into_iter().take_while(|(d, _)| *d <= best + 3).take(few).map(|(_, n)| n).collect()
}

/// Levenshtein distance between `a` and `b`, by characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for g in Group::ALL {
            assert_eq!(Group::parse(g.name()), Some(g));
        }
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.name()), Some(k));
        }
        let names: Vec<String> = catalogue().into_iter().map(|m| m.name).collect();
        let unique: std::collections::BTreeSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "a metric name is listed twice");
        assert!(names.contains(&"delivery.firehose.p99".to_owned()));
        assert!(names.contains(&"actions.create_bookmark.p99".to_owned()));
        assert!(names.contains(&"reach.room.100.p99".to_owned()));
    }

    #[test]
    fn a_misspelt_name_gets_a_few_near_ones() {
        let near = nearest("delivery.firehos.p99", 5);
        assert_eq!(near.first().map(String::as_str), Some("delivery.firehose.p99"), "{near:?}");
        assert!(near.len() <= 5);
        let near = nearest("eror", 5);
        assert!(near.contains(&"errors".to_owned()), "{near:?}");
    }

    #[test]
    fn default_gates_are_replaced_by_their_family() {
        assert_eq!(family("errors.rate"), Some("errors"));
        assert_eq!(family("errors"), Some("errors"));
        assert_eq!(family("loss.rate"), Some("loss"));
        assert_eq!(family("actions.like.errors"), None, "a part adds to the default");
        assert_eq!(family("loss.firehose"), None);
        assert_eq!(family("loss.firehose.rate"), None);
        assert_eq!(family("private_leak"), Some("private_leak"));
        assert_eq!(family("delivery.firehose.p99"), None);
        assert_eq!(family("actions.like.p99"), None);
    }
}
