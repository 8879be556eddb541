//! Who listens to what: the topic of every listener, tag listeners spread over the
//! corpus's tags by popularity (seeded), and from that how many deliveries an event
//! with a given set of tags owes each group.

use std::collections::HashMap;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::plan::profile::{Profile, Topics};
use crate::report::names::Group;

pub const FIREHOSE_TOPIC: &str = "bookmarks:firehose";

/// One listener to open.
#[derive(Debug, Clone)]
pub struct Spec {
    pub index: usize,
    pub group: Group,
    /// Shared by every listener on the same topic (thousands of listeners per process).
    pub topic: Arc<str>,
    /// The tag of a tag listener (normalised).
    pub tag: Option<Box<str>>,
}

/// The listeners of a run and the size of each tag's audience.
#[derive(Debug, Clone)]
pub struct Audience {
    pub specs: Vec<Spec>,
    firehose: u32,
    per_tag: HashMap<String, u32>,
    /// Topic names (the target profile's; firehose's by default).
    topics: Topics,
}

impl Audience {
    /// `firehose` listeners on the firehose, then `tag_listeners` on tags drawn with
    /// probability proportional to `weights` (`(tag, weight)`, e.g. Zipf over popularity
    /// rank), deterministically from `seed`.
    pub fn new(firehose: u32, tag_listeners: u32, weights: &[(String, f64)], seed: u64) -> Self {
        let mut specs = Vec::with_capacity((firehose + tag_listeners) as usize);
        let firehose_topic: Arc<str> = FIREHOSE_TOPIC.into();
        for _ in 0..firehose {
            specs.push(Spec {
                index: specs.len(),
                group: Group::Firehose,
                topic: Arc::clone(&firehose_topic),
                tag: None,
            });
        }
        let mut per_tag: HashMap<String, u32> = HashMap::new();
        let mut tag_topics = interner();
        let total: f64 = weights.iter().map(|(_, w)| w.max(0.0)).sum();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7a67_7461_6773);
        for _ in 0..tag_listeners {
            let Some(tag) = pick(weights, total, rng.random::<f64>()) else { break };
            let tag = normalise(tag);
            *per_tag.entry(tag.clone()).or_default() += 1;
            specs.push(Spec {
                index: specs.len(),
                group: Group::Tag,
                topic: tag_topics(format!("bookmarks:tag:{tag}")),
                tag: Some(tag.clone().into()),
            });
        }
        Self { specs, firehose, per_tag, topics: Profile::firehose().topics.clone() }
    }

    /// The same listeners on the topic names of `topics` (a target profile's).
    pub fn with_topics(mut self, topics: &Topics) -> Self {
        let mut intern = interner();
        for spec in &mut self.specs {
            if spec.group == Group::Firehose {
                spec.topic = intern(topics.firehose.clone());
            } else if spec.group == Group::Tag {
                spec.topic = intern(topics.tag_topic(self.topics.tag_of(&spec.topic).unwrap_or_default()));
            }
        }
        self.topics = topics.clone();
        self
    }

    /// The tag a tag listener's topic names.
    pub fn tag_of<'t>(&self, topic: &'t str) -> &'t str {
        self.topics.tag_of(topic).unwrap_or(topic)
    }

    /// The same audience counting only the listeners for which `joined` holds: events
    /// owe nothing to a listener that never joined.
    pub fn joined_only(&self, joined: impl Fn(usize) -> bool) -> Self {
        let mut per_tag: HashMap<String, u32> = HashMap::new();
        let mut firehose = 0;
        for spec in self.specs.iter().filter(|s| joined(s.index)) {
            match &spec.tag {
                None => firehose += 1,
                Some(tag) => *per_tag.entry(tag.to_string()).or_default() += 1,
            }
        }
        Self { specs: self.specs.clone(), firehose, per_tag, topics: self.topics.clone() }
    }

    /// Deliveries a public event with `tags` (as the server returned them) owes each
    /// group, indexed by `Group as usize`.
    pub fn owed<'a>(&self, tags: impl IntoIterator<Item = &'a str>) -> [u32; 2] {
        let mut seen: Vec<String> = Vec::new();
        let mut tag = 0;
        for t in tags {
            let t = normalise(t);
            if !seen.contains(&t) {
                tag += self.per_tag.get(&t).copied().unwrap_or(0);
                seen.push(t);
            }
        }
        [self.firehose, tag]
    }

    /// Whether a public event with `tags` is owed to listener `spec`: every firehose
    /// listener, and the tag listeners of its tags.
    pub fn owes<'a>(spec: &Spec, tags: impl IntoIterator<Item = &'a str>) -> bool {
        match &spec.tag {
            None => true,
            Some(mine) => tags.into_iter().any(|t| normalise(t) == **mine),
        }
    }

    /// Listeners per tag, most listened first.
    pub fn tags(&self) -> Vec<(String, u32)> {
        let mut tags: Vec<_> = self.per_tag.iter().map(|(t, n)| (t.clone(), *n)).collect();
        tags.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        tags
    }
}

/// Zipf weights (1/rank) for tags listed most popular first.
pub fn zipf_weights(tags_by_rank: impl IntoIterator<Item = String>) -> Vec<(String, f64)> {
    tags_by_rank.into_iter().enumerate().map(|(rank, tag)| (tag, 1.0 / (rank as f64 + 1.0))).collect()
}

fn pick(weights: &[(String, f64)], total: f64, u: f64) -> Option<&str> {
    if total <= 0.0 {
        return None;
    }
    let mut target = u * total;
    for (tag, w) in weights {
        target -= w.max(0.0);
        if target < 0.0 {
            return Some(tag);
        }
    }
    weights.last().map(|(t, _)| t.as_str())
}

/// Tags as the server normalises them: trimmed, lowercase.
pub fn normalise(tag: &str) -> String {
    tag.trim().to_lowercase()
}

/// Turns topic names into shared ones: every listener on a topic holds the same `Arc`.
fn interner() -> impl FnMut(String) -> Arc<str> {
    let mut seen: HashMap<String, Arc<str>> = HashMap::new();
    move |topic| Arc::clone(seen.entry(topic).or_insert_with_key(|t| t.as_str().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights() -> Vec<(String, f64)> {
        zipf_weights(["Rust", "elixir", "go", "zig"].map(String::from))
    }

    #[test]
    fn tag_listeners_follow_popularity_deterministically() {
        let a = Audience::new(3, 400, &weights(), 42);
        let b = Audience::new(3, 400, &weights(), 42);
        assert_eq!(a.tags(), b.tags());
        assert_eq!(a.specs.len(), 403);
        assert_eq!(&*a.specs[0].topic, FIREHOSE_TOPIC);
        assert_eq!(a.specs[3].group, Group::Tag);
        let tags = a.tags();
        assert_eq!(tags[0].0, "rust", "the most popular tag, lowercased: {tags:?}");
        assert!(tags[0].1 > tags.last().unwrap().1);
        assert!(a.specs.iter().enumerate().all(|(i, s)| s.index == i));
        // One topic name per topic, shared by its listeners (memory per listener).
        assert!(Arc::ptr_eq(&a.specs[0].topic, &a.specs[2].topic));
        let same_tag = a.specs.iter().skip(3).filter(|s| s.topic == a.specs[3].topic).collect::<Vec<_>>();
        assert!(same_tag.len() > 1 && same_tag.iter().all(|s| Arc::ptr_eq(&s.topic, &a.specs[3].topic)));
    }

    #[test]
    fn owed_counts_each_matching_tag_once() {
        let a = Audience::new(5, 100, &weights(), 1);
        let per: HashMap<_, _> = a.tags().into_iter().collect();
        let rust = per["rust"];
        let go = per.get("go").copied().unwrap_or(0);
        assert_eq!(a.owed(["rust", " RUST", "go", "cobol"]), [5, rust + go]);
        assert_eq!(a.owed([]), [5, 0]);
        assert_eq!(Audience::new(2, 10, &[], 1).owed(["rust"]), [2, 0]);
        let only_even = a.joined_only(|i| i % 2 == 0);
        assert_eq!(only_even.owed([])[0], 3);
        let none = a.joined_only(|_| false);
        assert_eq!(none.owed(["rust", "go", "elixir", "zig"]), [0, 0]);
    }
}
