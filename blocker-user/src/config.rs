//! The daemon's configuration: one TOML file (default `/etc/vendorwall/config.toml`), with
//! built-in defaults when it is absent. Unknown keys and bad values are errors that name the key
//! and the file. Every field is documented in the README's configuration reference.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use ipnet::IpNet;
use serde::Deserialize;

/// Where the config is read from when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/vendorwall/config.toml";
/// Place of the shipped lists installed from source (`cargo xtask install`, /usr/local).
pub const DEFAULT_BLOCKLISTS_DIR: &str = "/usr/local/share/vendorwall/blocklists";
/// Place of the shipped lists installed by the Debian package (/usr).
pub const PACKAGED_BLOCKLISTS_DIR: &str = "/usr/share/vendorwall/blocklists";

/// The shipped lists beside the running binary: the package's `/usr/sbin/vendorwall` reads
/// [`PACKAGED_BLOCKLISTS_DIR`], anything else (a source install, a build tree)
/// [`DEFAULT_BLOCKLISTS_DIR`].
pub fn default_blocklists_dir() -> PathBuf {
    let packaged = std::env::current_exe().is_ok_and(|exe| exe.starts_with("/usr/sbin"));
    if packaged {
        PACKAGED_BLOCKLISTS_DIR.into()
    } else {
        DEFAULT_BLOCKLISTS_DIR.into()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("invalid config {}: {key}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// What a list does when a destination matches it.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ListAction {
    /// Refuse (EPERM) and log.
    #[default]
    Enforce,
    /// Allow and log as "audited".
    Audit,
}

impl From<ListAction> for blocker_common::Action {
    fn from(action: ListAction) -> Self {
        match action {
            ListAction::Enforce => Self::Enforce,
            ListAction::Audit => Self::Audit,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// cgroup v2 directory to attach to; the hierarchy's root when absent.
    pub cgroup: Option<PathBuf>,
    /// Directory holding the vendor manifests (`*.toml`) and their prefix files.
    pub blocklists_dir: PathBuf,
    /// Lists to enforce. When empty, every shipped manifest marked `default = true`.
    pub lists: Vec<ListConfig>,
    /// Prefixes that always win over blocks.
    pub exceptions: Exceptions,
    /// Processes never refused (unconditional; prefer `[[exemptions]]`, which expire).
    pub exempt: Exempt,
    /// Justified exemptions: reason, approval, expiry (enforced in the kernel), scope, lists.
    pub exemptions: Vec<crate::exemptions::Exemption>,
    /// Warn this long before an exemption expires.
    #[serde(with = "humantime_serde")]
    pub exemption_warning: Duration,
    /// Durable event history (SQLite under the state directory).
    pub history: crate::history::HistoryConfig,
    /// How often sources are fetched again (URL and ASN sources; local files are also watched).
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Shortest accepted IPv4 prefix length; shorter ones are refused unless `allow_short_prefixes`.
    pub min_prefix_len_v4: u8,
    /// Shortest accepted IPv6 prefix length.
    pub min_prefix_len_v6: u8,
    /// Accept `0.0.0.0/0`, `::/0` and prefixes shorter than the minimums.
    pub allow_short_prefixes: bool,
    /// A refresh that would remove more than this fraction of a list's entries is refused.
    pub max_shrink: f64,
    /// Audit every list (log, never refuse).
    pub dry_run: bool,
    /// Check the IPv4 embedded in NAT64 `64:ff9b::/96` destinations.
    pub nat64: bool,
    /// Check the IPv4 embedded in 6to4 `2002::/16` destinations.
    #[serde(rename = "6to4")]
    pub six_to_four: bool,
    /// Refuse raw sockets (SOCK_RAW) in non-exempt cgroups.
    pub guard_raw_sockets: bool,
    /// Drop egress packets to enforced ranges, whatever socket sent them.
    pub egress_backstop: bool,
    /// Where programs, links and maps are pinned (on a bpffs).
    pub pin_dir: PathBuf,
    /// Last good copies of remote sources.
    pub cache_dir: PathBuf,
    /// Runtime files: pid, state, event socket.
    pub run_dir: PathBuf,
    pub maps: MapsConfig,
    pub http: HttpConfig,
    pub asn: AsnConfig,
    pub events: EventsConfig,
    pub metrics: MetricsConfig,
    pub names: NamesConfig,
    /// How often the daemon checks that its links are still attached (and re-resolves exempt
    /// units). Watchdog pings follow systemd's WATCHDOG_USEC instead.
    #[serde(with = "humantime_serde")]
    pub integrity_check_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cgroup: None,
            blocklists_dir: default_blocklists_dir(),
            lists: Vec::new(),
            exceptions: Exceptions::default(),
            exempt: Exempt::default(),
            exemptions: Vec::new(),
            exemption_warning: Duration::from_secs(14 * 24 * 3600),
            history: crate::history::HistoryConfig::default(),
            refresh_interval: Duration::from_secs(6 * 3600),
            min_prefix_len_v4: 8,
            min_prefix_len_v6: 16,
            allow_short_prefixes: false,
            max_shrink: 0.5,
            dry_run: false,
            nat64: false,
            six_to_four: false,
            guard_raw_sockets: false,
            egress_backstop: false,
            pin_dir: "/sys/fs/bpf/vendorwall".into(),
            cache_dir: "/var/lib/vendorwall".into(),
            run_dir: "/run/vendorwall".into(),
            maps: MapsConfig::default(),
            http: HttpConfig::default(),
            asn: AsnConfig::default(),
            events: EventsConfig::default(),
            metrics: MetricsConfig::default(),
            names: NamesConfig::default(),
            integrity_check_interval: Duration::from_secs(2),
        }
    }
}

/// One list: a shipped manifest by name or path, or sources given here.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListConfig {
    /// Name in logs, events and `vendorwall lists`. Defaults to the manifest's name.
    pub name: Option<String>,
    /// A manifest name in `blocklists_dir` (e.g. `kaspersky`) or a path to one.
    pub manifest: Option<String>,
    /// Files, folders (every `*.netset`, `*.txt`, `*.ipset` inside), `http(s)://` URLs.
    pub sources: Vec<String>,
    /// Autonomous systems whose announced prefixes are fetched from the ASN endpoint.
    pub asns: Vec<u32>,
    pub action: ListAction,
    /// Skip the shrink guard for this list.
    pub allow_shrink: bool,
    /// The files' format: `auto` (detected per file), `columns`, `ipset`, `csv`,
    /// `spamhaus-json`.
    pub format: crate::lists::Format,
    /// Domain names whose DNS answers are learned and blocked (each matches itself and every
    /// name below it), added to the manifest's.
    pub domains: Vec<String>,
    /// Files (or URLs) of domain names: one a line, `#` comments, hosts-file lines accepted.
    pub domain_sources: Vec<String>,
    /// Learn answers in loopback, private, link-local and unspecified ranges too.
    pub learn_private: bool,
    /// A malformed line fails the list (which then keeps its last good content) instead of
    /// being skipped and counted.
    pub strict: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Exceptions {
    /// Prefixes never refused, whatever list names them.
    pub prefixes: Vec<IpNet>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Exempt {
    /// cgroup v2 directories whose own processes are never refused (not their children).
    pub cgroups: Vec<PathBuf>,
    /// systemd units (e.g. `forensics.service`) whose processes are never refused; resolved to
    /// their cgroup and re-resolved when the unit restarts.
    pub units: Vec<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MapsConfig {
    pub block_v4: u32,
    pub block_v6: u32,
    pub allow_v4: u32,
    pub allow_v6: u32,
    pub exempt_cgroups: u32,
    /// Entries of `[[exemptions]]` in the kernel: (cgroup or process) x list.
    pub exemptions: u32,
    /// Ring buffer size in bytes: a power of two, a multiple of the page size.
    pub events_bytes: u32,
    /// Listed domain names the learner can hold.
    pub domains: u32,
    /// Addresses learned from DNS answers, per family; beyond it the least recently used
    /// are evicted.
    pub learned: u32,
}

impl Default for MapsConfig {
    fn default() -> Self {
        Self {
            block_v4: 1 << 21,
            block_v6: 1 << 19,
            allow_v4: 1 << 14,
            allow_v6: 1 << 14,
            exempt_cgroups: 1 << 12,
            exemptions: 1 << 14,
            events_bytes: 1 << 22,
            domains: 1 << 16,
            learned: 1 << 14,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Largest accepted response body.
    pub max_bytes: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_bytes: 64 << 20,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AsnConfig {
    /// RIPEstat-compatible announced-prefixes endpoint; `resource=AS<n>` is appended.
    pub endpoint: String,
}

impl Default for AsnConfig {
    fn default() -> Self {
        Self {
            endpoint: "https://stat.ripe.net/data/announced-prefixes/data.json".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Write events as JSON lines on stdout.
    pub stdout: bool,
    /// The line format of stdout, the file and the socket: `vendorwall` (the documented
    /// record), `ecs` (Elastic Common Schema) or `ocsf` (OCSF Network Activity).
    pub format: crate::events::formats::LineFormat,
    /// Send events to journald natively, with `VENDORWALL_*` fields, instead of JSON lines on
    /// stdout. Unset: when stdout is the journal (as under systemd).
    pub journal: Option<bool>,
    /// Also append events to this file.
    pub file: Option<PathBuf>,
    /// Repeats of the same (process, destination, list) inside this window become one line.
    #[serde(with = "humantime_serde")]
    pub aggregate_window: Duration,
    /// Events kept in memory for `vendorwall events` without `--follow`.
    pub keep: usize,
    /// Event lines a second, over all users (0: no limit). Attempts beyond it are summarised
    /// per process and list, once a second, with exact counts.
    pub max_lines_per_second: u32,
    /// Event lines a second for one uid (0: no limit), so one user cannot use up the total.
    pub max_lines_per_second_per_uid: u32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            stdout: true,
            format: crate::events::formats::LineFormat::Vendorwall,
            journal: None,
            file: None,
            aggregate_window: Duration::from_secs(10),
            keep: 1000,
            max_lines_per_second: 200,
            max_lines_per_second_per_uid: 50,
        }
    }
}

/// The DNS learner: addresses of listed domain names learned from DNS answers in the kernel.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamesConfig {
    /// Attach the learner (when the kernel can run it: Linux 5.17 or newer).
    pub learn: bool,
    /// A learned address is blocked at least this long after the last answer that carried it
    /// (applications keep answers longer than their TTL).
    #[serde(with = "humantime_serde")]
    pub learned_min_ttl: Duration,
    /// ... and at most this long, whatever TTL the answer claims.
    #[serde(with = "humantime_serde")]
    pub learned_max_ttl: Duration,
    /// Resolve every listed name at start and reload, so the first connection is refused even
    /// when the answer was cached before vendorwall started.
    pub warm_start: bool,
    /// Where warm-start queries go: `system` (the nameservers of /etc/resolv.conf) or an
    /// address such as `127.0.0.53:53`.
    pub resolver: Resolver,
    /// Flush systemd-resolved's cache at start and reload (when it runs), so answers it cached
    /// before vendorwall started are asked again, through the learner.
    pub flush_resolved: bool,
}

impl Default for NamesConfig {
    fn default() -> Self {
        Self {
            learn: true,
            learned_min_ttl: Duration::from_secs(3600),
            learned_max_ttl: Duration::from_secs(24 * 3600),
            warm_start: true,
            resolver: Resolver::System,
            flush_resolved: true,
        }
    }
}

/// Where the daemon's own queries go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Resolver {
    #[default]
    System,
    Address(SocketAddr),
}

impl<'de> Deserialize<'de> for Resolver {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == "system" {
            return Ok(Self::System);
        }
        let addr = text
            .parse::<SocketAddr>()
            .or_else(|_| {
                text.parse::<std::net::IpAddr>()
                    .map(|ip| SocketAddr::new(ip, 53))
            })
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "{text:?} is neither \"system\" nor an address (ip or ip:port)"
                ))
            })?;
        Ok(Self::Address(addr))
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the Prometheus endpoint (e.g. `127.0.0.1:9876`); off when absent.
    pub listen: Option<SocketAddr>,
}

impl Config {
    /// Reads `path`; when `required` is false and the file does not exist, returns the defaults.
    pub fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(Self::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::parse(path, &text)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: path.to_owned(),
            message: err.to_string().trim_end().replace('\n', " "),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            message,
        };
        if self.min_prefix_len_v4 > 32 {
            return Err(invalid("min_prefix_len_v4", "must be at most 32".into()));
        }
        if self.min_prefix_len_v6 > 128 {
            return Err(invalid("min_prefix_len_v6", "must be at most 128".into()));
        }
        if !(0.0..=1.0).contains(&self.max_shrink) {
            return Err(invalid("max_shrink", "must be between 0 and 1".into()));
        }
        // Every duration within bounds the timers can hold: zero would panic a tokio interval,
        // and a deadline past what an Instant can hold would panic the first tick.
        const DAY: u64 = 24 * 3600;
        for (key, value, min, max) in [
            (
                "refresh_interval",
                self.refresh_interval,
                Duration::from_secs(1),
                Duration::from_secs(366 * DAY),
            ),
            (
                "integrity_check_interval",
                self.integrity_check_interval,
                Duration::from_millis(100),
                Duration::from_secs(DAY),
            ),
            (
                "http.timeout",
                self.http.timeout,
                Duration::from_secs(1),
                Duration::from_secs(DAY),
            ),
            (
                "names.learned_min_ttl",
                self.names.learned_min_ttl,
                Duration::from_secs(1),
                Duration::from_secs(30 * DAY),
            ),
            (
                "names.learned_max_ttl",
                self.names.learned_max_ttl,
                Duration::from_secs(1),
                Duration::from_secs(30 * DAY),
            ),
            (
                "events.aggregate_window",
                self.events.aggregate_window,
                Duration::ZERO,
                Duration::from_secs(DAY),
            ),
        ] {
            if value < min || value > max {
                return Err(invalid(
                    key,
                    format!(
                        "{} is out of range: {} to {}",
                        humantime::format_duration(value),
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                ));
            }
        }
        let ring = self.maps.events_bytes;
        if !ring.is_power_of_two() || ring < 4096 {
            return Err(invalid(
                "maps.events_bytes",
                format!("{ring} is not a power of two of at least 4096"),
            ));
        }
        for (key, size) in [
            ("maps.block_v4", self.maps.block_v4),
            ("maps.block_v6", self.maps.block_v6),
            ("maps.allow_v4", self.maps.allow_v4),
            ("maps.allow_v6", self.maps.allow_v6),
            ("maps.exempt_cgroups", self.maps.exempt_cgroups),
            ("maps.exemptions", self.maps.exemptions),
            ("maps.domains", self.maps.domains),
            ("maps.learned", self.maps.learned),
        ] {
            if size == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        crate::exemptions::spec::validate(&self.exemptions)
            .map_err(|(key, message)| invalid(&key, message))?;
        self.history
            .validate()
            .map_err(|(key, message)| invalid(&key, message))?;
        if self.names.learned_max_ttl < self.names.learned_min_ttl {
            return Err(invalid(
                "names.learned_max_ttl",
                "must be at least names.learned_min_ttl".into(),
            ));
        }
        if let Resolver::Address(addr) = &self.names.resolver
            && addr.port() == 0
        {
            return Err(invalid("names.resolver", "port 0".into()));
        }
        for (i, list) in self.lists.iter().enumerate() {
            let key = format!("lists[{i}]");
            if list.manifest.is_none()
                && list.sources.is_empty()
                && list.asns.is_empty()
                && list.domains.is_empty()
                && list.domain_sources.is_empty()
            {
                return Err(invalid(
                    &key,
                    "needs a manifest, sources, asns, domains or domain_sources".into(),
                ));
            }
            for (j, name) in list.domains.iter().enumerate() {
                if let Err(err) = crate::names::Domain::parse(name) {
                    return Err(invalid(&format!("{key}.domains[{j}]"), err.to_string()));
                }
            }
            if list.manifest.is_none() && list.name.is_none() {
                return Err(invalid(
                    &format!("{key}.name"),
                    "required without a manifest".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_out_of_range_are_errors_naming_the_key() {
        for (text, key) in [
            (
                "integrity_check_interval = \"0s\"",
                "integrity_check_interval",
            ),
            ("refresh_interval = \"500ms\"", "refresh_interval"),
            ("refresh_interval = \"1000000000y\"", "refresh_interval"),
            ("[http]\ntimeout = \"0s\"", "http.timeout"),
            (
                "[events]\naggregate_window = \"400d\"",
                "events.aggregate_window",
            ),
        ] {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        parse("integrity_check_interval = \"100ms\"\n[events]\naggregate_window = \"0s\"")
            .expect("the bounds themselves are valid");
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/vendorwall/config.toml"), text)
    }

    /// packaging/config.toml documents every key commented out: with the comment markers
    /// removed it must be a valid config (a top-level key after a table would land in it).
    #[test]
    fn the_packaged_config_uncommented_is_valid() {
        let text: String = include_str!("../../packaging/config.toml")
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with('[')
                        || rest.split_once(" = ").is_some_and(|(key, _)| {
                            key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        }) =>
                {
                    rest
                }
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let config = parse(&text).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(config.integrity_check_interval, Duration::from_secs(2));
        assert_eq!(config.lists.len(), 4);
        assert_eq!(config.lists[3].domain_sources.len(), 1);
        assert!(config.names.warm_start);
        assert_eq!(config.exemptions.len(), 1);
        assert_eq!(config.exemptions[0].expires.text, "2027-03-31");
        assert!(config.history.enabled);
    }

    #[test]
    fn names_settings_are_checked() {
        let err = parse("[[lists]]\nname = \"n\"\ndomains = [\"com\"]\n").expect_err("a TLD");
        assert!(err.to_string().contains("lists[0].domains[0]"), "{err}");
        let err = parse("[names]\nlearned_min_ttl = \"2h\"\nlearned_max_ttl = \"1h\"\n")
            .expect_err("max below min");
        assert!(err.to_string().contains("names.learned_max_ttl"), "{err}");
        let err = parse("[names]\nresolver = \"nowhere\"\n").expect_err("bad resolver");
        assert!(err.to_string().contains("nowhere"), "{err}");
        let config = parse("[names]\nresolver = \"127.0.0.53\"\n").expect("an address");
        assert_eq!(
            config.names.resolver,
            Resolver::Address("127.0.0.53:53".parse().expect("addr"))
        );
    }

    #[test]
    fn empty_config_is_the_defaults() {
        let config = parse("").expect("empty is valid");
        assert_eq!(config.maps, MapsConfig::default());
        assert!(config.lists.is_empty());
        assert_eq!(config.refresh_interval, Duration::from_secs(6 * 3600));
    }

    #[test]
    fn a_full_example_parses() {
        let config = parse(
            r#"
            refresh_interval = "30m"
            min_prefix_len_v4 = 12
            6to4 = true
            [[lists]]
            manifest = "kaspersky"
            [[lists]]
            name = "extra"
            sources = ["/etc/vendorwall/extra.netset", "https://example.org/drop.txt"]
            asns = [200107]
            action = "audit"
            [exceptions]
            prefixes = ["77.74.176.10/32"]
            [exempt]
            units = ["forensics.service"]
            [maps]
            block_v4 = 100000
            [metrics]
            listen = "127.0.0.1:9876"
            "#,
        )
        .expect("valid");
        assert_eq!(config.refresh_interval, Duration::from_secs(1800));
        assert!(config.six_to_four);
        assert_eq!(config.lists[1].action, ListAction::Audit);
        assert_eq!(config.maps.block_v4, 100000);
        assert_eq!(config.maps.block_v6, MapsConfig::default().block_v6);
    }

    #[test]
    fn unknown_keys_and_bad_values_name_key_and_file() {
        let err = parse("refresh_intervall = \"1h\"\n").expect_err("unknown key");
        let text = err.to_string();
        assert!(text.contains("/etc/vendorwall/config.toml"), "{text}");
        assert!(text.contains("refresh_intervall"), "{text}");

        let err = parse("[[lists]]\nname = \"x\"\nsources = [\"a\"]\naction = \"block\"\n")
            .expect_err("bad action");
        assert!(err.to_string().contains("block"), "{err}");

        let err = parse("max_shrink = 2.0\n").expect_err("out of range");
        assert!(err.to_string().contains("max_shrink"), "{err}");

        let err = parse("[maps]\nevents_bytes = 5000\n").expect_err("not a power of two");
        assert!(err.to_string().contains("maps.events_bytes"), "{err}");

        let err = parse("[[lists]]\nname = \"x\"\n").expect_err("no source");
        assert!(err.to_string().contains("lists[0]"), "{err}");
    }

    #[test]
    fn a_missing_optional_file_gives_defaults_but_a_required_one_fails() {
        let missing = Path::new("/nonexistent/vendorwall.toml");
        assert!(Config::load(missing, false).is_ok());
        let err = Config::load(missing, true).expect_err("required");
        assert!(err.to_string().contains("/nonexistent/vendorwall.toml"));
    }
}
