//! One `[[exemptions]]` entry as configured, validated before anything is applied: an id, a
//! reason and an expiry are required; the scope (units, cgroups, executables) must name
//! something.

use std::{path::PathBuf, time::SystemTime};

use serde::{Deserialize, Deserializer, Serialize};

/// A justified exemption.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    /// Short unique name, reported in events (`exemption`) and by `vendorwall exemptions`.
    pub id: String,
    /// Why it exists (required): the function it serves, e.g. a regulator's own testing.
    pub reason: String,
    /// Who approved it.
    #[serde(default)]
    pub approved_by: Option<String>,
    /// The change or risk-acceptance ticket.
    #[serde(default)]
    pub ticket: Option<String>,
    /// When it stops applying (required): an RFC 3339 time with an offset
    /// (`2027-03-31T17:00:00+10:00`), or a date, which means through the end of that day, UTC.
    pub expires: Expiry,
    /// systemd units whose processes it covers (with every cgroup below the unit's).
    #[serde(default)]
    pub units: Vec<String>,
    /// cgroup v2 directories it covers (with every cgroup below).
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
    /// Executables (absolute paths) whose running processes it covers.
    #[serde(default)]
    pub executables: Vec<PathBuf>,
    /// Names of the lists it exempts from; empty: every list.
    #[serde(default)]
    pub lists: Vec<String>,
}

/// When an exemption ends, as configured and as a point in time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// As written in the config.
    pub text: String,
    pub at: SystemTime,
}

impl Expiry {
    /// Parses an RFC 3339 time with an offset, or a date (through its end, UTC). A time without
    /// an offset is refused: whose midnight it means would depend on the host's zone.
    pub fn parse(text: &str) -> Result<Self, String> {
        let at = if let Ok(date) = text.parse::<jiff::civil::Date>()
            && !text.contains(['T', 't', ' '])
        {
            let next = date
                .tomorrow()
                .map_err(|e| format!("{text:?}: {e}"))?
                .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                .map_err(|e| format!("{text:?}: {e}"))?;
            next.timestamp()
        } else {
            text.parse::<jiff::Timestamp>().map_err(|_| {
                format!(
                    "{text:?} is not a date (2027-03-31) or an RFC 3339 time with an offset \
                     (2027-03-31T17:00:00+10:00)"
                )
            })?
        };
        Ok(Self {
            text: text.to_owned(),
            at: SystemTime::try_from(at).map_err(|e| format!("{text:?}: {e}"))?,
        })
    }

    /// Whether it is over at `now`.
    pub fn passed(&self, now: SystemTime) -> bool {
        self.at <= now
    }
}

impl<'de> Deserialize<'de> for Expiry {
    /// Takes a string or a TOML date / date-time (`expires = 2027-03-31`).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Toml(toml::value::Datetime),
        }
        let text = match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text,
            Raw::Toml(datetime) => datetime.to_string(),
        };
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Expiry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// Checks every exemption; the error names the entry (`exemptions[2]`) and the key.
pub fn validate(exemptions: &[Exemption]) -> Result<(), (String, String)> {
    let mut seen = std::collections::HashSet::new();
    for (i, e) in exemptions.iter().enumerate() {
        let key = |field: &str| format!("exemptions[{i}].{field}");
        if e.id.trim().is_empty() || e.id.chars().any(|c| c.is_control() || c == '"') {
            return Err((key("id"), "must be a non-empty name".into()));
        }
        if !seen.insert(e.id.as_str()) {
            return Err((key("id"), format!("{:?} is used twice", e.id)));
        }
        if e.reason.trim().is_empty() {
            return Err((
                key("reason"),
                "is required: say why the exemption exists".into(),
            ));
        }
        if e.units.is_empty() && e.cgroups.is_empty() && e.executables.is_empty() {
            return Err((
                key("units"),
                "an exemption needs units, cgroups or executables to cover".into(),
            ));
        }
        if let Some(exe) = e.executables.iter().find(|p| !p.is_absolute()) {
            return Err((
                key("executables"),
                format!("{} is not an absolute path", exe.display()),
            ));
        }
        if let Some(cgroup) = e.cgroups.iter().find(|p| !p.is_absolute()) {
            return Err((
                key("cgroups"),
                format!("{} is not an absolute path", cgroup.display()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(t: SystemTime) -> u64 {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
    }

    #[test]
    fn a_date_lasts_through_its_day_and_offsets_are_honoured() {
        let date = Expiry::parse("2027-03-31").expect("date");
        assert_eq!(unix(date.at), 1_806_537_600, "2027-04-01T00:00:00Z");
        let sydney = Expiry::parse("2027-03-31T17:00:00+10:00").expect("time");
        assert_eq!(unix(sydney.at), 1_806_476_400, "2027-03-31T07:00:00Z");
        assert!(Expiry::parse("2027-03-31T17:00:00").is_err(), "no offset");
        assert!(Expiry::parse("next tuesday").is_err());
        assert!(Expiry::parse("2027-02-30").is_err());
    }

    fn parse(text: &str) -> Result<Vec<Exemption>, String> {
        #[derive(Deserialize)]
        struct File {
            exemptions: Vec<Exemption>,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        validate(&file.exemptions).map_err(|(k, m)| format!("{k}: {m}"))?;
        Ok(file.exemptions)
    }

    #[test]
    fn reason_expiry_and_scope_are_required() {
        let ok = parse(
            "[[exemptions]]\nid = \"lab\"\nreason = \"malware analysis\"\n\
             expires = 2027-03-31\nunits = [\"lab.service\"]\n",
        )
        .expect("valid");
        assert_eq!(ok[0].expires.text, "2027-03-31");
        let no_expiry = parse("[[exemptions]]\nid = \"a\"\nreason = \"r\"\nunits = [\"u\"]\n");
        assert!(no_expiry.expect_err("expiry").contains("expires"));
        let no_reason = parse(
            "[[exemptions]]\nid = \"a\"\nreason = \" \"\nexpires = \"2027-01-01\"\n\
             units = [\"u\"]\n",
        );
        assert!(
            no_reason
                .expect_err("reason")
                .contains("exemptions[0].reason")
        );
        let no_scope =
            parse("[[exemptions]]\nid = \"a\"\nreason = \"r\"\nexpires = \"2027-01-01\"\n");
        assert!(no_scope.expect_err("scope").contains("units"));
        let twice = parse(
            "[[exemptions]]\nid = \"a\"\nreason = \"r\"\nexpires = \"2027-01-01\"\nunits = [\"u\"]\n\
             [[exemptions]]\nid = \"a\"\nreason = \"r\"\nexpires = \"2027-01-01\"\nunits = [\"v\"]\n",
        );
        assert!(twice.expect_err("dup").contains("exemptions[1].id"));
        let relative = parse(
            "[[exemptions]]\nid = \"a\"\nreason = \"r\"\nexpires = \"2027-01-01\"\n\
             executables = [\"bin/x\"]\n",
        );
        assert!(relative.expect_err("path").contains("absolute"));
    }
}
