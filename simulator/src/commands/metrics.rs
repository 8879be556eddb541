//! `firehose-sim metrics`: every metric a `--threshold`, `--slo` or `compare` may name,
//! grouped by what it measures, with its unit and meaning (the `report::names`
//! catalogue, printed).

use std::fmt::Write as _;

use crate::report::names::{self, Unit};

/// `firehose-sim metrics` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Only metrics whose name contains this (e.g. `firehose`, `p99`, `errors`).
    pub filter: Option<String>,
}

/// The catalogue as text, one section per group of metrics.
pub fn render(filter: Option<&str>) -> String {
    let mut o = String::new();
    let mut section = String::new();
    for m in names::catalogue().into_iter().filter(|m| filter.is_none_or(|f| m.name.contains(f))) {
        if m.section != section {
            section.clone_from(&m.section);
            let _ = writeln!(o, "\n{section}");
        }
        let unit = match m.unit {
            Unit::Latency => "ms (give ms, s or us)",
            Unit::Count => "count",
            Unit::PerSecond => "per second",
            Unit::Fraction => "fraction (give 0.1% or 0.001)",
            Unit::Flag => "true/false (== or !=)",
        };
        let _ = writeln!(o, "  {:<36} {:<28} {}", m.name, unit, m.about);
    }
    let _ = writeln!(
        o,
        "\ndefault gates, each replaced by a --threshold on a metric of its family: {}",
        names::DEFAULT_GATES.join(", ")
    );
    o
}

/// Prints the catalogue; exit 0.
pub fn main(args: &MetricsArgs) -> u8 {
    crate::report::terminal::print(&render(args.filter.as_deref()));
    crate::report::exit::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_listed_by_section_with_units() {
        let all = render(None);
        assert!(all.contains("\ngroup firehose\n"), "{all}");
        assert!(all.contains("delivery.firehose.p99"));
        assert!(all.contains("ms (give ms, s or us)"));
        let some = render(Some("room_presence"));
        assert!(some.contains("actions.room_presence.p99") && !some.contains("delivery.firehose"), "{some}");
    }
}
