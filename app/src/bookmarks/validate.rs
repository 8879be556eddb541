//! `NewBookmark`: a bookmark request validated once at the edge. Every rule lives here;
//! a value of this type is known good.

use serde_json::{Map, Value};

use crate::validation::{FieldErrors, Invalid};

pub const MAX_TITLE: usize = 300;
pub const MAX_URL: usize = 2048;
pub const MAX_DESCRIPTION: usize = 10_000;
pub const MAX_TAGS: usize = 10;
pub const MAX_TAG: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBookmark {
    pub title: String,
    pub description: String,
    pub url: String,
    pub public: bool,
    pub tags: Vec<String>,
}

impl NewBookmark {
    /// Validates a request body `{"bookmark": {…}}`: `Invalid::Shape` when the envelope
    /// is wrong, `Invalid::Fields` with every failing field otherwise.
    pub fn from_body(body: &Value) -> Result<Self, Invalid> {
        let fields = match body.get("bookmark") {
            Some(Value::Object(fields)) => fields,
            Some(_) => return Err(Invalid::Shape("\"bookmark\" must be a JSON object".into())),
            None => return Err(Invalid::Shape("request body must contain a \"bookmark\" object".into())),
        };
        let mut errors = FieldErrors::default();
        let title = required_text(fields, "title", MAX_TITLE, &mut errors);
        let url = required_text(fields, "url", MAX_URL, &mut errors);
        if let Some(Err(msg)) = url.as_deref().map(check_url) {
            errors.add("url", msg);
        }
        let description = optional_text(fields, "description", MAX_DESCRIPTION, &mut errors);
        let public = match fields.get("public") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                errors.add("public", "must be true or false");
                true
            }
        };
        let tags = parse_tags(fields.get("tags"), &mut errors);
        match (title, url) {
            (Some(title), Some(url)) if errors.is_empty() => Ok(NewBookmark { title, description, url, public, tags }),
            _ => Err(Invalid::Fields(errors)),
        }
    }
}

fn required_text(fields: &Map<String, Value>, name: &str, max: usize, errors: &mut FieldErrors) -> Option<String> {
    match fields.get(name) {
        None | Some(Value::Null) => errors.add(name, "can't be blank"),
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                errors.add(name, "can't be blank");
            } else if s.chars().count() > max {
                errors.add(name, format!("should be at most {max} characters"));
            } else if s.chars().any(char::is_control) {
                errors.add(name, "must not contain control characters");
            } else {
                return Some(s.to_owned());
            }
        }
        Some(_) => errors.add(name, "must be a string"),
    }
    None
}

fn optional_text(fields: &Map<String, Value>, name: &str, max: usize, errors: &mut FieldErrors) -> String {
    match fields.get(name) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.chars().count() > max => {
            errors.add(name, format!("should be at most {max} characters"));
            String::new()
        }
        // Line breaks and tabs are text; NUL and other control characters are not.
        Some(Value::String(s)) if s.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) => {
            errors.add(name, "must not contain control characters other than line breaks and tabs");
            String::new()
        }
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(_) => {
            errors.add(name, "must be a string");
            String::new()
        }
    }
}

/// http or https with a host; nothing else (no `javascript:`, `data:`, `file:`).
fn check_url(raw: &str) -> Result<(), &'static str> {
    let parsed = url::Url::parse(raw).map_err(|_| "must be a valid URL")?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must use http or https");
    }
    match parsed.host_str() {
        Some(host) if !host.is_empty() => Ok(()),
        _ => Err("must have a host"),
    }
}

/// A tag as stored and used in topic names: trimmed, lowercased. `None` when it is
/// not an acceptable tag.
pub fn normalize_tag(raw: &str) -> Option<String> {
    let tag = raw.trim().to_lowercase();
    let ok = !tag.is_empty() && tag.chars().count() <= MAX_TAG && !tag.chars().any(|c| c.is_control() || c == ',');
    ok.then_some(tag)
}

/// Tags as a list of strings or one comma-separated string (what the browser extension
/// sends); blanks dropped, duplicates removed keeping the first.
fn parse_tags(value: Option<&Value>, errors: &mut FieldErrors) -> Vec<String> {
    let raw: Vec<&str> = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::String(s)) => s.split(',').collect(),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.push(s.as_str()),
                    _ => {
                        errors.add("tags", "must be a list of strings or a comma-separated string");
                        return Vec::new();
                    }
                }
            }
            out
        }
        Some(_) => {
            errors.add("tags", "must be a list of strings or a comma-separated string");
            return Vec::new();
        }
    };
    let mut tags: Vec<String> = Vec::new();
    for item in raw {
        if item.trim().is_empty() {
            continue;
        }
        match normalize_tag(item) {
            Some(tag) if !tags.contains(&tag) => tags.push(tag),
            Some(_) => {}
            None => {
                errors
                    .add("tags", format!("each tag must be at most {MAX_TAG} characters, without control characters"));
                return Vec::new();
            }
        }
    }
    if tags.len() > MAX_TAGS {
        errors.add("tags", format!("should have at most {MAX_TAGS} tags"));
        return Vec::new();
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(v: Value) -> NewBookmark {
        NewBookmark::from_body(&json!({ "bookmark": v })).unwrap()
    }

    fn field_errors(v: Value) -> String {
        match NewBookmark::from_body(&json!({ "bookmark": v })) {
            Err(Invalid::Fields(f)) => serde_json::to_string(&f).unwrap(),
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    #[test]
    fn tags_from_string_or_list_are_normalised() {
        let a = ok(json!({"title": "t", "url": "https://x.io", "tags": " Elixir, web ,ELIXIR,, "}));
        assert_eq!(a.tags, ["elixir", "web"]);
        let b = ok(json!({"title": "t", "url": "https://x.io", "tags": ["Web", " rust "]}));
        assert_eq!(b.tags, ["web", "rust"]);
        assert!(b.public);
        assert_eq!(b.description, "");
    }

    #[test]
    fn bad_fields_are_all_reported() {
        let e = field_errors(json!({"title": "", "url": "javascript:alert(1)", "public": "yes", "tags": [1]}));
        for field in ["title", "url", "public", "tags"] {
            assert!(e.contains(field), "{e}");
        }
        assert!(field_errors(json!({"title": "x".repeat(301), "url": "https://a.b"})).contains("300"));
        assert!(field_errors(json!({"title": "t", "url": "ftp://a.b"})).contains("http"));
        assert!(field_errors(json!({"title": "t", "url": "https://"})).contains("url"));
        let eleven: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        assert!(field_errors(json!({"title": "t", "url": "https://a.b", "tags": eleven})).contains("10"));
        assert!(field_errors(json!({"title": "t", "url": "https://a.b", "tags": ["x".repeat(51)]})).contains("50"));
    }

    #[test]
    fn unicode_counts_characters_not_bytes() {
        let title = "é".repeat(300);
        assert_eq!(ok(json!({"title": title, "url": "https://a.b"})).title.chars().count(), 300);
    }

    #[test]
    fn envelope_errors_are_400() {
        assert!(matches!(NewBookmark::from_body(&json!({})), Err(Invalid::Shape(_))));
        assert!(matches!(NewBookmark::from_body(&json!({"bookmark": []})), Err(Invalid::Shape(_))));
    }
}
