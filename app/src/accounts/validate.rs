//! Account input, validated once at the edge: every problem is reported per field
//! (`Invalid::Fields`, a 422 at the HTTP edge), wrong JSON types included, before
//! anything is hashed or stored.

use serde_json::Value;

use crate::validation::{FieldErrors, Invalid};

pub const PASSWORD_MIN: usize = 12;
pub const PASSWORD_MAX: usize = 256;
pub const DISPLAY_NAME_MAX: usize = 80;
pub const EMAIL_MAX: usize = 254;
pub const TOKEN_NAME_MAX: usize = 100;
const USERNAME_BASE_MAX: usize = 24;

/// A registration that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Trimmed and lowercased.
    pub email: String,
    pub password: String,
    pub display_name: String,
    pub username: Option<String>,
}

/// `{email, password, display_name, username?}`.
pub fn registration(body: &Value) -> Result<Registration, Invalid> {
    let mut errors = FieldErrors::default();
    let email = string_field(body, "email", &mut errors).and_then(|e| email(e, &mut errors));
    let password = string_field(body, "password", &mut errors).and_then(|p| new_password(p, "password", &mut errors));
    let display_name = string_field(body, "display_name", &mut errors).and_then(|d| display_name(d, &mut errors));
    let username = match body.get("username") {
        None | Some(Value::Null) => None,
        Some(_) => username(body.get("username"), &mut errors),
    };
    match (email, password, display_name) {
        (Some(email), Some(password), Some(display_name)) if errors.is_empty() => {
            Ok(Registration { email, password, display_name, username })
        }
        _ => Err(Invalid::Fields(errors)),
    }
}

/// `{"username"}` or `{"user": {"username"}}` of `POST /api/users`.
pub fn new_user(body: &Value) -> Result<String, Invalid> {
    let mut errors = FieldErrors::default();
    let raw = body.get("user").and_then(|u| u.get("username")).or_else(|| body.get("username"));
    username(raw, &mut errors).ok_or(Invalid::Fields(errors))
}

/// `{email, password}`: only presence and type are checked, so a malformed email is
/// just another unknown one and gets the same answer as any failed login.
pub fn login(body: &Value) -> Result<(String, String), Invalid> {
    let mut errors = FieldErrors::default();
    let email = string_field(body, "email", &mut errors).map(|e| e.trim().to_lowercase());
    let password = string_field(body, "password", &mut errors).map(str::to_owned);
    match (email, password) {
        (Some(e), Some(p)) if errors.is_empty() => Ok((e, p)),
        _ => Err(Invalid::Fields(errors)),
    }
}

/// `{current_password, new_password}`.
pub fn password_change(body: &Value) -> Result<(String, String), Invalid> {
    let mut errors = FieldErrors::default();
    let current = string_field(body, "current_password", &mut errors).map(str::to_owned);
    let new =
        string_field(body, "new_password", &mut errors).and_then(|p| new_password(p, "new_password", &mut errors));
    match (current, new) {
        (Some(c), Some(n)) if errors.is_empty() => Ok((c, n)),
        _ => Err(Invalid::Fields(errors)),
    }
}

/// `{display_name}`.
pub fn profile(body: &Value) -> Result<String, Invalid> {
    let mut errors = FieldErrors::default();
    string_field(body, "display_name", &mut errors)
        .and_then(|d| display_name(d, &mut errors))
        .ok_or(Invalid::Fields(errors))
}

/// `{name}` of a new API token: 1–100 characters, no control characters.
pub fn token_name(body: &Value) -> Result<String, Invalid> {
    let mut errors = FieldErrors::default();
    let name = string_field(body, "name", &mut errors).and_then(|n| {
        let n = n.trim();
        if n.chars().count() > TOKEN_NAME_MAX {
            errors.add("name", format!("should be at most {TOKEN_NAME_MAX} characters"));
        } else if n.chars().any(char::is_control) {
            errors.add("name", "must not contain control characters");
        } else {
            return Some(n.to_owned());
        }
        None
    });
    name.ok_or(Invalid::Fields(errors))
}

/// `{"upload_id"}` of `PUT /api/accounts/me/avatar`: an integer (whose upload it is,
/// and whether it is an image, the store checks).
pub fn avatar(body: &Value) -> Result<i64, Invalid> {
    body.get("upload_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| Invalid::field("upload_id", "must be the id of one of your uploads"))
}

/// Usernames: 3–32 characters of `a-z`, `0-9` and `_` (what `POST /api/users` accepts).
pub fn username(raw: Option<&Value>, errors: &mut FieldErrors) -> Option<String> {
    match raw {
        None | Some(Value::Null) => errors.add("username", "can't be blank"),
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                errors.add("username", "can't be blank");
            } else if !(3..=32).contains(&s.chars().count()) {
                errors.add("username", "should be 3 to 32 characters");
            } else if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                errors.add("username", "may contain only a-z, 0-9 and _");
            } else {
                return Some(s.to_owned());
            }
        }
        Some(_) => errors.add("username", "must be a string"),
    }
    None
}

/// A username base from an email's local part: lowercased, runs of anything outside
/// `a-z0-9` become one `_`, at most 24 characters (room for a `_<n>` suffix), at least 3.
pub fn username_from_email(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default();
    let mut base = String::new();
    for c in local.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            base.push(c);
        } else if !base.is_empty() && !base.ends_with('_') {
            base.push('_');
        }
        if base.len() >= USERNAME_BASE_MAX {
            break;
        }
    }
    let mut base = base.trim_end_matches('_').to_owned();
    if base.len() < 3 {
        base = if base.is_empty() { "user".to_owned() } else { format!("{base}_user") };
    }
    base
}

/// The field as a string; records "can't be blank" / "must be a string" otherwise.
fn string_field<'a>(body: &'a Value, field: &str, errors: &mut FieldErrors) -> Option<&'a str> {
    match body.get(field) {
        None | Some(Value::Null) => errors.add(field, "can't be blank"),
        Some(Value::String(s)) if s.trim().is_empty() => errors.add(field, "can't be blank"),
        Some(Value::String(s)) => return Some(s),
        Some(_) => errors.add(field, "must be a string"),
    }
    None
}

fn new_password(p: &str, field: &str, errors: &mut FieldErrors) -> Option<String> {
    let n = p.chars().count();
    if n < PASSWORD_MIN {
        errors.add(field, format!("should be at least {PASSWORD_MIN} characters"));
    } else if n > PASSWORD_MAX {
        errors.add(field, format!("should be at most {PASSWORD_MAX} characters"));
    } else {
        // Not trimmed: every character the user typed counts.
        return Some(p.to_owned());
    }
    None
}

fn display_name(d: &str, errors: &mut FieldErrors) -> Option<String> {
    let d = d.trim();
    if d.chars().count() > DISPLAY_NAME_MAX {
        errors.add("display_name", format!("should be at most {DISPLAY_NAME_MAX} characters"));
    } else if d.chars().any(char::is_control) {
        errors.add("display_name", "must not contain control characters");
    } else {
        // Stored as text; whatever renders it later escapes it.
        return Some(d.to_owned());
    }
    None
}

/// A deliberately modest shape check — one `@`, a local part, a dotted domain, no
/// spaces — since only a confirmation email could prove an address anyway.
fn email(raw: &str, errors: &mut FieldErrors) -> Option<String> {
    let e = raw.trim().to_lowercase();
    let valid_shape = e.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && local.len() <= 64
            && !domain.contains('@')
            && domain.contains('.')
            && domain.split('.').all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'))
    });
    if e.chars().count() > EMAIL_MAX {
        errors.add("email", format!("should be at most {EMAIL_MAX} characters"));
    } else if !valid_shape || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errors.add("email", "must have the @ sign, a domain and no spaces");
    } else {
        return Some(e);
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(err: Invalid) -> Value {
        match err {
            Invalid::Fields(f) => json!(f),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn registration_normalizes_email_and_keeps_the_password_verbatim() {
        let r = registration(&json!({
            "email": "  Alice@Example.COM ", "password": " twelve chars ", "display_name": " Alice "
        }))
        .unwrap();
        assert_eq!(r.email, "alice@example.com");
        assert_eq!(r.password, " twelve chars ");
        assert_eq!(r.display_name, "Alice");
        assert_eq!(r.username, None);
    }

    #[test]
    fn every_bad_field_is_reported() {
        let f = fields(
            registration(&json!({"email": "nope", "password": "short", "display_name": "", "username": "A!"}))
                .unwrap_err(),
        );
        for field in ["email", "password", "display_name", "username"] {
            assert!(f.get(field).is_some(), "{field} in {f}");
        }
        let f = fields(registration(&json!({"email": 1, "password": [], "display_name": {}})).unwrap_err());
        assert_eq!(f["email"], json!(["must be a string"]));
        assert_eq!(f["password"], json!(["must be a string"]));
        assert_eq!(f["display_name"], json!(["must be a string"]));
    }

    #[test]
    fn new_users_and_avatars() {
        assert_eq!(new_user(&json!({"username": " alice "})).unwrap(), "alice");
        assert_eq!(new_user(&json!({"user": {"username": "bob_2"}, "username": "x"})).unwrap(), "bob_2");
        assert_eq!(fields(new_user(&json!({"username": "A!"})).unwrap_err())["username"].as_array().unwrap().len(), 1);
        assert_eq!(avatar(&json!({"upload_id": 7})).unwrap(), 7);
        for bad in [json!({}), json!({"upload_id": "7"}), json!({"upload_id": 7.5}), json!({"upload_id": u64::MAX})] {
            assert!(fields(avatar(&bad).unwrap_err()).get("upload_id").is_some(), "{bad}");
        }
    }

    #[test]
    fn password_bounds() {
        let ok = |p: &str| registration(&json!({"email": "a@b.co", "password": p, "display_name": "A"})).is_ok();
        assert!(!ok(&"x".repeat(11)));
        assert!(ok(&"x".repeat(12)));
        assert!(ok(&"é".repeat(256)));
        assert!(!ok(&"x".repeat(257)));
    }

    #[test]
    fn email_shapes() {
        let check = |e: &str| email(e, &mut FieldErrors::default());
        assert_eq!(check("a.b+c@sub.example.org").as_deref(), Some("a.b+c@sub.example.org"));
        for bad in ["plain", "@example.com", "a@", "a@b", "a@@b.com", "a b@c.com", "a@b..com", "a@.b.com", "a@b.com."] {
            assert_eq!(check(bad), None, "{bad}");
        }
        assert_eq!(check(&format!("{}@example.com", "a".repeat(65))), None);
    }

    #[test]
    fn usernames_derived_from_emails() {
        assert_eq!(username_from_email("alice@example.com"), "alice");
        assert_eq!(username_from_email("Alice.Smith+news@example.com"), "alice_smith_news");
        assert_eq!(username_from_email("al@example.com"), "al_user");
        assert_eq!(username_from_email("...@example.com"), "user");
        assert_eq!(username_from_email("Ünïcode@example.com"), "n_code");
        let long = username_from_email(&format!("{}@example.com", "x".repeat(60)));
        assert_eq!(long.len(), 24);
        let mut errors = FieldErrors::default();
        for email in ["a@x.io", "-.-@x.io", "ab.cd.ef.gh.ij.kl.mn.op.qr@x.io", "ÅÄÖ@x.io"] {
            let base = username_from_email(email);
            assert!(username(Some(&json!(format!("{base}_1234567"))), &mut errors).is_some(), "{email} → {base}");
        }
    }
}
