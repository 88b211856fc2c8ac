//! A listed domain name: validated, lower case, and its form as the kernel's `DOMAINS` key.

use std::fmt;

use blocker_common::{DOMAIN_KEY_LEN, DomainKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("empty name")]
    Empty,
    #[error("{0:?} is not ASCII: give internationalised names in their xn-- form")]
    NotAscii(String),
    #[error("{0:?} has an empty label")]
    EmptyLabel(String),
    #[error("{name:?}: label {label:?} is longer than 63 bytes")]
    LongLabel { name: String, label: String },
    #[error("{name:?}: {ch:?} is not a letter, digit, '-' or '_'")]
    BadChar { name: String, ch: char },
    #[error("{0:?} is a single label: it would match every name under a top-level domain")]
    SingleLabel(String),
    #[error(
        "{name:?} takes {len} bytes in DNS form, more than the {DOMAIN_KEY_LEN} the learner holds"
    )]
    TooLong { name: String, len: usize },
}

/// A domain name as listed: matches itself and every name below it, label by label.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// Accepts `Example.COM`, `example.com.` and `*.example.com` (all the same name).
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let trimmed = text.trim();
        let trimmed = trimmed.strip_prefix("*.").unwrap_or(trimmed);
        let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if trimmed.is_empty() {
            return Err(DomainError::Empty);
        }
        if !trimmed.is_ascii() {
            return Err(DomainError::NotAscii(trimmed.to_owned()));
        }
        let name = trimmed.to_ascii_lowercase();
        let mut labels = 0;
        for label in name.split('.') {
            if label.is_empty() {
                return Err(DomainError::EmptyLabel(name));
            }
            if label.len() > 63 {
                return Err(DomainError::LongLabel {
                    label: label.to_owned(),
                    name,
                });
            }
            if let Some(ch) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            {
                return Err(DomainError::BadChar { name, ch });
            }
            labels += 1;
        }
        if labels < 2 {
            return Err(DomainError::SingleLabel(name));
        }
        // Wire form: a length byte per label plus its bytes, i.e. the text's length plus one.
        let len = name.len() + 1;
        if len > DOMAIN_KEY_LEN {
            return Err(DomainError::TooLong { name, len });
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The kernel's key: length-prefixed labels, zero-padded, as the learner builds it from a
    /// name in a DNS message.
    pub fn key(&self) -> DomainKey {
        let mut wire = [0u8; DOMAIN_KEY_LEN];
        let mut at = 0;
        for label in self.0.split('.') {
            // Lengths were checked by `parse`: labels <= 63, the whole <= DOMAIN_KEY_LEN.
            wire[at] = label.len() as u8;
            wire[at + 1..at + 1 + label.len()].copy_from_slice(label.as_bytes());
            at += 1 + label.len();
        }
        DomainKey { wire }
    }

    /// The name a kernel key holds, when it is a valid one.
    pub fn from_key(key: &DomainKey) -> Option<Self> {
        let mut labels = Vec::new();
        let mut at = 0;
        while at < DOMAIN_KEY_LEN && key.wire[at] != 0 {
            let len = usize::from(key.wire[at]);
            let label = key.wire.get(at + 1..at + 1 + len)?;
            labels.push(std::str::from_utf8(label).ok()?);
            at += 1 + len;
        }
        Self::parse(&labels.join(".")).ok()
    }

    /// Whether `name` is this domain or below it (`a.example.com` is below `example.com`,
    /// `notexample.com` is not).
    pub fn covers(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name == self.0
            || name
                .strip_suffix(self.0.as_str())
                .is_some_and(|head| head.ends_with('.'))
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Domain {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_checked() {
        assert_eq!(
            Domain::parse("*.Upd.Kaspersky.COM.").map(|d| d.to_string()),
            Ok("upd.kaspersky.com".into())
        );
        assert!(matches!(
            Domain::parse("com"),
            Err(DomainError::SingleLabel(_))
        ));
        assert!(matches!(
            Domain::parse("a..com"),
            Err(DomainError::EmptyLabel(_))
        ));
        assert!(matches!(
            Domain::parse("bad name.com"),
            Err(DomainError::BadChar { .. })
        ));
        assert!(matches!(
            Domain::parse("ka\u{17e}.com"),
            Err(DomainError::NotAscii(_))
        ));
        let long = format!("{}.com", "a".repeat(60));
        assert!(matches!(
            Domain::parse(&long),
            Err(DomainError::TooLong { .. })
        ));
    }

    #[test]
    fn the_key_is_dns_wire_form_and_reads_back() {
        let domain = Domain::parse("kaspersky.com").expect("valid");
        let key = domain.key();
        assert_eq!(&key.wire[..15], b"\x09kaspersky\x03com\0");
        assert!(key.wire[15..].iter().all(|&b| b == 0));
        assert_eq!(Domain::from_key(&key), Some(domain));
    }

    #[test]
    fn a_domain_covers_the_names_below_it_label_by_label() {
        let domain = Domain::parse("kaspersky.com").expect("valid");
        assert!(domain.covers("kaspersky.com"));
        assert!(domain.covers("DNL-05.geo.Kaspersky.com."));
        assert!(!domain.covers("notkaspersky.com"));
        assert!(!domain.covers("kaspersky.com.evil.net"));
    }
}
