//! Parsing of path and query parameters shared by the JSON API, with the same 400
//! messages everywhere.

use super::ApiError;

/// `limit`: absent → `default`; otherwise an integer from 1 to `max`.
pub fn limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    match raw {
        None => Ok(default),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!("limit must be an integer from 1 to {max}"))),
        },
    }
}

/// A numeric id from the path; `what` names it in the error ("bookmark", "upload").
pub fn path_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().map_err(|_| ApiError::BadRequest(format!("{what} id must be an integer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_ids() {
        assert_eq!(limit(None, 20, 100).unwrap(), 20);
        assert_eq!(limit(Some("100"), 20, 100).unwrap(), 100);
        for bad in ["0", "101", "-1", "x", ""] {
            assert!(matches!(limit(Some(bad), 20, 100), Err(ApiError::BadRequest(m)) if m.contains("1 to 100")));
        }
        assert_eq!(path_id("42", "bookmark").unwrap(), 42);
        assert!(
            matches!(path_id("abc", "upload"), Err(ApiError::BadRequest(m)) if m == "upload id must be an integer")
        );
    }
}
