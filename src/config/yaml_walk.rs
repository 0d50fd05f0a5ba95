//! A small walker over a parsed YAML tree that collects every problem with its key path,
//! so a bad config is reported whole instead of one error at a time.

use serde_yaml::{Mapping, Value};
use std::fmt::Display;

/// One configuration problem, named by its key path (`router.listen[1]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Collects errors while sections are read.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<ConfigError>);

impl Errors {
    pub fn push(&mut self, path: impl Into<String>, message: impl Display) {
        self.0.push(ConfigError {
            path: path.into(),
            message: message.to_string(),
        });
    }
}

/// A mapping being read; keys not taken by the time [`Section::finish`] runs are errors.
pub struct Section<'a> {
    path: String,
    map: Option<&'a Mapping>,
    taken: Vec<&'static str>,
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

impl<'a> Section<'a> {
    /// A section at `path`; a missing or null value reads as an empty mapping.
    pub fn new(path: impl Into<String>, value: Option<&'a Value>, errors: &mut Errors) -> Self {
        let path = path.into();
        let map = match value {
            None | Some(Value::Null) => None,
            Some(Value::Mapping(map)) => Some(map),
            Some(other) => {
                errors.push(
                    &path,
                    format!("expected a mapping, found {}", type_name(other)),
                );
                None
            }
        };
        Section {
            path,
            map,
            taken: Vec::new(),
        }
    }

    /// Whether `key` is present (and not null), without marking it as read.
    pub fn has(&self, key: &str) -> bool {
        self.map
            .and_then(|m| m.get(key))
            .is_some_and(|v| !v.is_null())
    }

    pub fn key_path(&self, key: &str) -> String {
        format!("{}.{}", self.path, key)
    }

    /// The raw value of `key`, if present and not null.
    pub fn value(&mut self, key: &'static str) -> Option<&'a Value> {
        self.taken.push(key);
        match self.map?.get(key)? {
            Value::Null => None,
            value => Some(value),
        }
    }

    pub fn section(&mut self, key: &'static str, errors: &mut Errors) -> Section<'a> {
        let value = self.value(key);
        Section::new(self.key_path(key), value, errors)
    }

    pub fn string(&mut self, key: &'static str, errors: &mut Errors) -> Option<&'a str> {
        match self.value(key)? {
            Value::String(s) => Some(s.as_str()),
            other => {
                errors.push(
                    self.key_path(key),
                    format!("expected a string, found {}", type_name(other)),
                );
                None
            }
        }
    }

    pub fn bool(&mut self, key: &'static str, default: bool, errors: &mut Errors) -> bool {
        match self.value(key) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                errors.push(
                    self.key_path(key),
                    format!("expected true or false, found {}", type_name(other)),
                );
                default
            }
        }
    }

    /// A number of type `T` within `range`, or `default` when absent; `convert` rejects
    /// numbers of the wrong kind, `kind` names the expected kind in the error.
    fn number_in<T: PartialOrd + std::fmt::Display + Copy>(
        &mut self,
        key: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
        errors: &mut Errors,
        convert: fn(&serde_yaml::Number) -> Option<T>,
        kind: &str,
    ) -> T {
        match self.value(key) {
            None => default,
            Some(Value::Number(n)) => match convert(n) {
                Some(v) if range.contains(&v) => v,
                _ => {
                    let (low, high) = (range.start(), range.end());
                    errors.push(
                        self.key_path(key),
                        format!("must be {kind} from {low} to {high}"),
                    );
                    default
                }
            },
            Some(other) => {
                errors.push(
                    self.key_path(key),
                    format!("expected a number, found {}", type_name(other)),
                );
                default
            }
        }
    }

    /// An unsigned integer within `range`, or `default` when absent.
    pub fn u64_in(
        &mut self,
        key: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
        errors: &mut Errors,
    ) -> u64 {
        self.number_in(
            key,
            default,
            range,
            errors,
            serde_yaml::Number::as_u64,
            "a whole number",
        )
    }

    /// A number within `range`, or `default` when absent.
    pub fn f64_in(
        &mut self,
        key: &'static str,
        default: f64,
        range: std::ops::RangeInclusive<f64>,
        errors: &mut Errors,
    ) -> f64 {
        self.number_in(
            key,
            default,
            range,
            errors,
            serde_yaml::Number::as_f64,
            "a number",
        )
    }

    /// A list of strings, each parsed by `parse`; a bad item is reported as `key[i]`.
    pub fn list<T>(
        &mut self,
        key: &'static str,
        errors: &mut Errors,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        let path = self.key_path(key);
        let items = match self.value(key)? {
            Value::Sequence(items) => items,
            other => {
                errors.push(path, format!("expected a list, found {}", type_name(other)));
                return None;
            }
        };
        let mut parsed = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            match item {
                Value::String(s) => match parse(s) {
                    Ok(v) => parsed.push(v),
                    Err(message) => errors.push(item_path, message),
                },
                other => errors.push(
                    item_path,
                    format!("expected a string, found {}", type_name(other)),
                ),
            }
        }
        Some(parsed)
    }

    /// Reports every key of this mapping that no reader asked for.
    pub fn finish(self, errors: &mut Errors) {
        let Some(map) = self.map else { return };
        for key in map.keys() {
            let known = key.as_str().is_some_and(|k| self.taken.contains(&k));
            if !known {
                let name = match key {
                    Value::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                errors.push(format!("{}.{}", self.path, name), "unknown key");
            }
        }
    }
}
