//! Reading a snapshot document: JSON (or YAML, converted to JSON) into per-entity raw slices,
//! so that one malformed entity can be quarantined without rejecting the document.

use super::{compile, Snapshot};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Why a whole document was rejected (the previous snapshot stays in service).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not valid JSON: {0}")]
    Json(serde_json::Error),
    #[error("not valid YAML: {0}")]
    Yaml(serde_yaml::Error),
    #[error("not a snapshot document: {0}")]
    Shape(serde_json::Error),
}

/// The document's top level, each entity still unparsed.
#[derive(Debug, Deserialize)]
pub struct Document<'a> {
    #[serde(default)]
    pub version: Option<serde_json::Value>,
    #[serde(default, borrow)]
    pub regions: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    pub subnets: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    pub server_groups: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    pub servers: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    pub linear_channels: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    pub tv_streams: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    pub programs: Vec<&'a RawValue>,
    #[serde(default, borrow)]
    pub program_records: Vec<&'a RawValue>,
}

impl Document<'_> {
    /// The version as text; numbers are accepted and written out.
    pub fn version_text(&self) -> Option<String> {
        match self.version.as_ref()? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

/// Text is JSON when its first non-blank character opens an object; anything else is YAML.
fn looks_like_json(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{')
}

/// Turns YAML (or JSON) bytes into JSON text; JSON input is returned as is.
pub fn to_json_text(bytes: &[u8]) -> Result<std::borrow::Cow<'_, str>, LoadError> {
    if looks_like_json(bytes) {
        return match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.into()),
            Err(_) => Err(LoadError::Json(serde::de::Error::custom("not UTF-8"))),
        };
    }
    let value: serde_json::Value = serde_yaml::from_slice(bytes).map_err(LoadError::Yaml)?;
    Ok(serde_json::to_string(&value)
        .map_err(LoadError::Json)?
        .into())
}

/// Parses JSON text into a [`Document`]; the top level must be an object.
pub fn parse_document(json: &str) -> Result<Document<'_>, LoadError> {
    if !looks_like_json(json.as_bytes()) {
        // serde would fill the fields of a derived struct from an array by position.
        return Err(LoadError::Shape(serde::de::Error::custom(
            "the top level must be a JSON object with entity arrays",
        )));
    }
    serde_json::from_str(json).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            LoadError::Json(e)
        } else {
            LoadError::Shape(e)
        }
    })
}

/// Parses and compiles a snapshot from file or HTTP body bytes.
pub fn load_snapshot(bytes: &[u8], source: &str) -> Result<Snapshot, LoadError> {
    let json = to_json_text(bytes)?;
    let document = parse_document(&json)?;
    Ok(compile(&document, source))
}
