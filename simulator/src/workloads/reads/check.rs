//! Whether a read's 2xx answer is what it asked for. A list is `{"data": [bookmark…]}`
//! with at most `limit` bookmarks, a tag feed the same with the tag on every bookmark,
//! a random read `{"data": bookmark}`, a search `{"data": [hit…]}`; every bookmark and
//! hit has an integer `id`. Anonymous reads never see a private bookmark. Anything else
//! is an error of the read, named by [`Problem::name`].

use serde_json::Value;

/// What a read expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect<'a> {
    List { limit: u32 },
    Tag { tag: &'a str, limit: u32 },
    One,
    Search,
}

/// Why an answer is not what was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Not the JSON shape of the answer.
    Body,
    /// A tag feed's bookmark without the tag.
    WrongTag,
    /// A private bookmark in an anonymous read.
    PrivateItem,
}

impl Problem {
    /// The error kind in reports.
    pub fn name(self) -> &'static str {
        match self {
            Problem::Body => "body",
            Problem::WrongTag => "wrong_tag",
            Problem::PrivateItem => "private_item",
        }
    }
}

/// Checks a 2xx `body` against `expect`: how many items it carried.
pub fn check(expect: Expect<'_>, body: &[u8]) -> Result<usize, Problem> {
    let json: Value = serde_json::from_slice(body).map_err(|_| Problem::Body)?;
    let data = json.get("data").ok_or(Problem::Body)?;
    match expect {
        Expect::One => bookmark(data, None).map(|()| 1),
        Expect::List { limit } => bookmarks(data, limit, None),
        Expect::Tag { tag, limit } => bookmarks(data, limit, Some(tag)),
        Expect::Search => {
            let hits = data.as_array().ok_or(Problem::Body)?;
            if hits.iter().all(|h| h.get("id").is_some_and(Value::is_i64)) {
                Ok(hits.len())
            } else {
                Err(Problem::Body)
            }
        }
    }
}

fn bookmarks(data: &Value, limit: u32, tag: Option<&str>) -> Result<usize, Problem> {
    let items = data.as_array().ok_or(Problem::Body)?;
    if items.len() > limit as usize {
        return Err(Problem::Body);
    }
    for item in items {
        bookmark(item, tag)?;
    }
    Ok(items.len())
}

fn bookmark(item: &Value, tag: Option<&str>) -> Result<(), Problem> {
    if !item.get("id").is_some_and(Value::is_i64) {
        return Err(Problem::Body);
    }
    if item.get("public").and_then(Value::as_bool) == Some(false) {
        return Err(Problem::PrivateItem);
    }
    if let Some(tag) = tag {
        let tags = item.get("tags").and_then(Value::as_array).ok_or(Problem::Body)?;
        let wanted = tag.trim().to_lowercase();
        if !tags.iter().filter_map(Value::as_str).any(|t| t.trim().to_lowercase() == wanted) {
            return Err(Problem::WrongTag);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: Expect<'static> = Expect::List { limit: 2 };

    #[test]
    fn answers_of_the_right_shape_pass_with_their_item_count() {
        let two =
            br#"{"data":[{"id":1,"public":true,"tags":["rust"]},{"id":2,"tags":["Rust","go"]}],"next_before_id":2}"#;
        assert_eq!(check(LIST, two), Ok(2));
        assert_eq!(check(Expect::Tag { tag: "rust", limit: 2 }, two), Ok(2));
        assert_eq!(check(LIST, br#"{"data":[]}"#), Ok(0));
        assert_eq!(check(Expect::One, br#"{"data":{"id":5,"public":true}}"#), Ok(1));
        assert_eq!(check(Expect::Search, br#"{"data":[{"id":9,"snippet":"x"}],"meta":{}}"#), Ok(1));
    }

    #[test]
    fn anything_else_is_named() {
        let body = Err(Problem::Body);
        assert_eq!(check(LIST, b"<html>not found</html>"), body);
        assert_eq!(check(LIST, br#"{"items":[]}"#), body);
        assert_eq!(check(LIST, br#"{"data":{"id":1}}"#), body);
        assert_eq!(check(LIST, br#"{"data":[{"id":"1"}]}"#), body);
        assert_eq!(check(LIST, br#"{"data":[{"id":1},{"id":2},{"id":3}]}"#), body, "more than the limit");
        assert_eq!(check(Expect::One, br#"{"data":[]}"#), body);
        assert_eq!(check(Expect::Search, br#"{"data":[{"snippet":"x"}]}"#), body);
        let go = br#"{"data":[{"id":1,"tags":["go"]}]}"#;
        assert_eq!(check(Expect::Tag { tag: "rust", limit: 5 }, go), Err(Problem::WrongTag));
        assert_eq!(check(Expect::Tag { tag: "rust", limit: 5 }, br#"{"data":[{"id":1}]}"#), body);
        assert_eq!(check(Expect::One, br#"{"data":{"id":1,"public":false}}"#), Err(Problem::PrivateItem));
        assert_eq!(Problem::WrongTag.name(), "wrong_tag");
    }
}
