//! The reads part of a plan: anonymous and signed-in reads at their own open-model
//! rates — the newest bookmarks (`read_list`), a Zipf-hot tag's feed (`read_tag`), a
//! random bookmark (`read_random`) and chat search (`search`). `--read-rate R` sets
//! each of the four to R per second; a scenario sets each on its own
//! (`[actions.read_list] rate = …`), and a flag typed on the command line wins.

use serde::Serialize;
use toml::Spanned;

use crate::plan::args::RunArgs;
use crate::plan::layers::Layers;
use crate::plan::scenario::Scenario;
use crate::plan::{Origin, PlanError};
use crate::report::names::Kind;

/// The read kinds, in order.
pub const KINDS: [Kind; 4] = [Kind::ReadList, Kind::ReadTag, Kind::ReadRandom, Kind::Search];

/// Per read kind, its rate per second (0: off).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReadsPlan {
    pub list_rate_per_s: f64,
    pub tag_rate_per_s: f64,
    pub random_rate_per_s: f64,
    pub search_rate_per_s: f64,
}

impl ReadsPlan {
    pub fn rate(&self, kind: Kind) -> f64 {
        match kind {
            Kind::ReadList => self.list_rate_per_s,
            Kind::ReadTag => self.tag_rate_per_s,
            Kind::ReadRandom => self.random_rate_per_s,
            Kind::Search => self.search_rate_per_s,
            _ => 0.0,
        }
    }

    pub fn is_active(&self) -> bool {
        KINDS.iter().any(|&k| self.rate(k) > 0.0)
    }

    /// Agent `count`'s share: every rate divided.
    pub fn share(&self, count: u32) -> ReadsPlan {
        let per = |r: f64| r / f64::from(count.max(1));
        ReadsPlan {
            list_rate_per_s: per(self.list_rate_per_s),
            tag_rate_per_s: per(self.tag_rate_per_s),
            random_rate_per_s: per(self.random_rate_per_s),
            search_rate_per_s: per(self.search_rate_per_s),
        }
    }

    /// `--read-rate` over the scenario's `[actions.read_*]` / `[actions.search]` tables.
    pub fn from_layers(args: &RunArgs, scenario: Option<&Scenario>) -> Result<ReadsPlan, PlanError> {
        let l = Layers { args, scenario };
        let a = scenario.map(|s| &s.file.actions);
        fn file<'f>(
            t: Option<&'f Spanned<crate::plan::scenario::RateOnly>>,
            key: &'static str,
        ) -> Option<(&'static str, &'f Spanned<f64>)> {
            t.and_then(|t| t.get_ref().rate.as_ref()).map(|v| (key, v))
        }
        let typed = args.read_rate.unwrap_or(0.0);
        let mut rates = [0.0; 4];
        let tables = [
            file(a.and_then(|a| a.read_list.as_ref()), "actions.read_list.rate"),
            file(a.and_then(|a| a.read_tag.as_ref()), "actions.read_tag.rate"),
            file(a.and_then(|a| a.read_random.as_ref()), "actions.read_random.rate"),
            file(a.and_then(|a| a.search.as_ref()), "actions.search.rate"),
        ];
        for (slot, table) in rates.iter_mut().zip(tables) {
            let (rate, origin) = l.pick("read_rate", "read-rate", &typed, table);
            let given = args.given("read_rate") || matches!(origin, Origin::File(_));
            if given && !(rate.is_finite() && rate > 0.0) {
                return Err(PlanError::Rate { origin, value: rate });
            }
            *slot = rate;
        }
        let [list_rate_per_s, tag_rate_per_s, random_rate_per_s, search_rate_per_s] = rates;
        Ok(ReadsPlan { list_rate_per_s, tag_rate_per_s, random_rate_per_s, search_rate_per_s })
    }
}

impl std::fmt::Display for ReadsPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.is_active() {
            return Ok(());
        }
        let list: Vec<String> =
            KINDS.iter().filter(|&&k| self.rate(k) > 0.0).map(|&k| format!("{k} {}/s", self.rate(k))).collect();
        writeln!(f, "  reads             {}", list.join(", "))
    }
}
