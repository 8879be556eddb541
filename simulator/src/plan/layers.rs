//! Flags over a scenario file: a value typed on the command line wins, then the file's,
//! then the flag's default; each value keeps where it came from, so an error can name
//! the flag or the file's line:column and key. Every part of the plan layers its values
//! through this one rule.

use toml::Spanned;

use crate::plan::Origin;
use crate::plan::args::RunArgs;
use crate::plan::scenario::Scenario;

/// The command line and the scenario file (if any) of one run.
pub struct Layers<'a> {
    pub args: &'a RunArgs,
    pub scenario: Option<&'a Scenario>,
}

impl Layers<'_> {
    /// `id` is the clap id (field name), `flag` the flag as typed, `from_flag` its value
    /// (typed or default), `file` the file's key and value if written there.
    pub fn pick<T: Clone>(
        &self,
        id: &str,
        flag: &'static str,
        from_flag: &T,
        file: Option<(&str, &Spanned<T>)>,
    ) -> (T, Origin) {
        match (self.scenario, file) {
            (Some(scenario), Some((key, value))) if !self.args.given(id) => {
                (value.get_ref().clone(), Origin::File(Box::new(scenario.place(key, value.span()))))
            }
            _ => (from_flag.clone(), Origin::Flag(flag)),
        }
    }

    /// Whether the value was written somewhere (a typed flag, or a key present in the
    /// file).
    pub fn written(&self, id: &str, in_file: bool) -> bool {
        self.args.given(id) || (in_file && self.scenario.is_some())
    }
}
