//! How a delivery is traced back to the request that caused it: the request's index
//! rides in the bookmark URL's fragment, `#sim-<run>-<i>`. The server stores and
//! broadcasts the URL untouched, so no extra field or server cooperation is needed, and
//! the run id keeps a second simulator (or a previous run) on the same server from being
//! mistaken for this one.

/// Tags and untags URLs for one run.
#[derive(Debug, Clone)]
pub struct Correlator {
    /// `#sim-<run>-`
    prefix: String,
    /// Indices at or past this are not ours.
    requests: u64,
}

impl Correlator {
    pub fn new(run_id: &str, requests: u64) -> Self {
        Self { prefix: format!("#sim-{run_id}-"), requests }
    }

    /// `url` without any fragment, plus this run's fragment for request `i`.
    pub fn tag(&self, url: &str, i: u64) -> String {
        let base = url.split_once('#').map_or(url, |(base, _)| base);
        format!("{base}{}{i}", self.prefix)
    }

    /// The request index carried by `url`, if it is one of this run's.
    pub fn index(&self, url: &str) -> Option<u64> {
        let at = url.rfind(&self.prefix)?;
        let i: u64 = url[at + self.prefix.len()..].parse().ok()?;
        (i < self.requests).then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_strip_existing_fragments() {
        let c = Correlator::new("ab12", 100);
        let url = c.tag("https://example.com/a?b=1#section", 42);
        assert_eq!(url, "https://example.com/a?b=1#sim-ab12-42");
        assert_eq!(c.index(&url), Some(42));
        assert_eq!(c.index(&c.tag("https://example.com", 0)), Some(0));
    }

    #[test]
    fn foreign_urls_are_not_ours() {
        let c = Correlator::new("ab12", 100);
        assert_eq!(c.index("https://example.com/"), None);
        assert_eq!(c.index("https://example.com/#sim-zz99-3"), None);
        assert_eq!(c.index("https://example.com/#sim-ab12-100"), None);
        assert_eq!(c.index("https://example.com/#sim-ab12-x"), None);
    }
}
