//! The line formats of the file and socket sinks: vendorwall's own record (`record.rs`, the
//! default), Elastic Common Schema (`ecs`) and OCSF Network Activity (`ocsf`), so a SIEM takes
//! the lines without a parser of its own. Each is a pure mapping from the vendorwall record;
//! the README documents them field by field and the tests check them against the published
//! schema definitions (tests/fixtures/schemas/).

pub mod ecs;
pub mod ocsf;

use serde::Deserialize;
use serde_json::{Map, Value};

/// `[events] format`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LineFormat {
    #[default]
    Vendorwall,
    Ecs,
    Ocsf,
}

impl LineFormat {
    /// `line` (a vendorwall JSON record, or a `missed` line) in this format. A `missed` line
    /// and anything that is not a record pass unchanged: they are about the stream, not an
    /// event.
    pub fn convert(self, line: &str) -> String {
        if self == LineFormat::Vendorwall {
            return line.to_owned();
        }
        let Ok(Value::Object(record)) = serde_json::from_str::<Value>(line) else {
            return line.to_owned();
        };
        if record.get("type").and_then(Value::as_str) != Some("event") {
            return line.to_owned();
        }
        let mapped = match self {
            LineFormat::Ecs => ecs::from_record(&record),
            LineFormat::Ocsf => ocsf::from_record(&record),
            LineFormat::Vendorwall => Value::Object(record),
        };
        mapped.to_string()
    }
}

/// Helpers over a vendorwall record.
pub(crate) struct Fields<'a>(pub &'a Map<String, Value>);

impl Fields<'_> {
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn u64(&self, key: &str) -> Option<u64> {
        self.0.get(key).and_then(Value::as_u64)
    }

    pub fn value(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }
}

/// Drops null members (and objects left empty), recursively: absent is how both schemas say
/// "not known".
pub(crate) fn pruned(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, pruned(v)))
                .filter(|(_, v)| !v.is_null() && !matches!(v, Value::Object(m) if m.is_empty()))
                .collect(),
        ),
        other => other,
    }
}
