//! What each read asks for, drawn from the run's own seed and the read's index alone (a
//! stateless hash, so a choice never depends on firing order and runs repeat): the tag
//! of a tag-feed read, Zipf over the corpus tags by popularity, and the words of a
//! search, one or two consecutive words of a corpus chat line.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::plan::seeded::Zipf;
use crate::plan::seeded::splitmix64;

const TAG_SALT: u64 = 0x7265_6164_5f74_6167;
const SEARCH_SALT: u64 = 0x7365_6172_6368_7121;
/// Shortest word worth searching for.
const MIN_WORD: usize = 3;

/// The choices of one run's reads.
#[derive(Debug, Clone)]
pub struct Picks {
    seed: u64,
    /// Most popular first.
    tags: Vec<String>,
    zipf: Zipf,
    /// The searchable words of each chat line that has any.
    lines: Vec<Vec<String>>,
}

impl Picks {
    /// Choices from `seed` over `tags` (most popular first) and `chat_lines`.
    pub fn new(seed: u64, tags: &[String], chat_lines: &[String]) -> Self {
        let lines: Vec<Vec<String>> = chat_lines.iter().map(|l| words(l)).filter(|w| !w.is_empty()).collect();
        Self { seed, tags: tags.to_vec(), zipf: Zipf::new(tags.len()), lines }
    }

    pub fn has_tags(&self) -> bool {
        !self.tags.is_empty()
    }

    pub fn has_words(&self) -> bool {
        !self.lines.is_empty()
    }

    fn rng(&self, salt: u64, i: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(splitmix64(self.seed ^ salt ^ splitmix64(i)))
    }

    /// The tag read `i` of the tag feed asks for.
    pub fn tag(&self, i: u64) -> Option<&str> {
        if self.tags.is_empty() {
            return None;
        }
        let rank = self.zipf.sample(&mut self.rng(TAG_SALT, i)) as usize;
        self.tags.get(rank).map(String::as_str)
    }

    /// The words search `i` asks for.
    pub fn query(&self, i: u64) -> Option<String> {
        let mut rng = self.rng(SEARCH_SALT, i);
        let line = self.lines.get(rng.random_range(0..self.lines.len().max(1)))?;
        let n = if line.len() > 1 && rng.random_bool(0.5) { 2 } else { 1 };
        let start = rng.random_range(0..=line.len() - n);
        Some(line[start..start + n].join(" "))
    }
}

/// The words of a chat line worth searching for: letters and digits only (punctuation
/// around them trimmed), at least [`MIN_WORD`] long, lowercased, no @mentions.
pub fn words(line: &str) -> Vec<String> {
    line.split_whitespace()
        .filter(|w| !w.starts_with('@'))
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| w.chars().count() >= MIN_WORD && w.chars().all(char::is_alphanumeric))
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picks(seed: u64) -> Picks {
        let tags: Vec<String> = ["pics", "worldnews", "technology", "rust"].map(String::from).to_vec();
        let lines: Vec<String> =
            ["@someone told you so!", "Am I the only one who didn't know this?", "ok", "Great, thanks."]
                .map(String::from)
                .to_vec();
        Picks::new(seed, &tags, &lines)
    }

    #[test]
    fn words_are_plain_searchable_terms() {
        assert_eq!(words("@electric_wizard told you so"), ["told", "you"]);
        assert_eq!(words("Am I the only one who didn't know this?"), ["the", "only", "one", "who", "know", "this"]);
        assert!(words("ok :) 10/10").is_empty());
        assert_eq!(words("Café, déjà-vu 2024!"), ["café", "2024"]);
    }

    #[test]
    fn choices_repeat_per_index_and_follow_popularity() {
        let (a, b) = (picks(3), picks(3));
        for i in 0..200 {
            assert_eq!(a.tag(i), b.tag(i));
            assert_eq!(a.query(i), b.query(i));
        }
        let other = picks(4);
        assert!((0..50).any(|i| other.query(i) != a.query(i)), "another seed, other choices");
        let hot = (0..4000).filter(|&i| a.tag(i) == Some("pics")).count();
        let cold = (0..4000).filter(|&i| a.tag(i) == Some("rust")).count();
        // Zipf(1) over 4: 48 % and 12 %.
        assert!((1750..2100).contains(&hot) && (350..600).contains(&cold), "{hot} {cold}");
        for i in 0..500 {
            let q = a.query(i).unwrap();
            let n = q.split(' ').count();
            assert!((1..=2).contains(&n), "{q}");
            assert!(q.split(' ').all(|w| w.len() >= MIN_WORD && !w.starts_with('@')), "{q}");
        }
        let two = (0..500).filter(|&i| a.query(i).unwrap().contains(' ')).count();
        assert!(two > 100, "some searches use two words: {two}");
    }

    #[test]
    fn nothing_to_pick_from_picks_nothing() {
        let empty = Picks::new(1, &[], &["ok".into()]);
        assert!(!empty.has_tags() && !empty.has_words());
        assert_eq!(empty.tag(0), None);
        assert_eq!(empty.query(0), None);
    }
}
