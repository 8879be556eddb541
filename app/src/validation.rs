//! Validation outcomes in domain terms, shared by the modules that validate input at
//! the edge (`bookmarks::validate`, `accounts::validate`, …): per-field messages
//! (`FieldErrors`) and the error a validator returns (`Invalid`). Nothing here knows
//! HTTP: `crate::http` turns an `Invalid` into a 400 or a 422 (`From<Invalid> for
//! ApiError`), and the pages into a form with its messages.

use std::collections::BTreeMap;

use serde::Serialize;

/// Per-field validation messages, in field order.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.entry(field.to_owned()).or_default().push(message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The messages of `field` (empty when it has none).
    pub fn get(&self, field: &str) -> &[String] {
        self.0.get(field).map_or(&[], Vec::as_slice)
    }

    /// `Ok(value)` when no field failed, else the failures as `Invalid::Fields`.
    pub fn into_result<T>(self, value: Option<T>) -> Result<T, Invalid> {
        match value {
            Some(value) if self.is_empty() => Ok(value),
            _ => Err(Invalid::Fields(self)),
        }
    }
}

/// Why a request's input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Not the shape expected (e.g. no `"bookmark"` object): nothing to check field by
    /// field. HTTP 400.
    #[error("{0}")]
    Shape(String),
    /// Fields that broke their rules, each with its messages. HTTP 422.
    #[error("validation failed")]
    Fields(FieldErrors),
}

impl Invalid {
    /// One field that broke its rule.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::default();
        errors.add(field, message);
        Invalid::Fields(errors)
    }
}
