//! The opt-in Prometheus endpoint: counts of blocked and audited attempts per list and unit,
//! kernel counters, lost events, list sizes and refresh state, map fill. Encoded by
//! prometheus-client (OpenMetrics text); served by `http.rs`.

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::UNIX_EPOCH,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{events::EventRecord, kernel::Counters, lists::ListSet};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListUnit {
    pub list: String,
    pub unit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExemptionLabel {
    pub exemption: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListLabel {
    pub list: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MapLabel {
    pub map: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: String,
}

/// Every metric; clones share the same values.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    blocked: Family<ListUnit, Counter>,
    audited: Family<ListUnit, Counter>,
    checked: Counter,
    kernel_blocked: Counter,
    kernel_audited: Counter,
    events_dropped: Counter,
    events_missed: Family<SinkLabel, Counter>,
    entries: Family<ListLabel, Gauge>,
    aggregated: Family<ListLabel, Gauge>,
    last_refresh: Family<ListLabel, Gauge<f64, AtomicU64>>,
    last_refresh_success: Family<ListLabel, Gauge>,
    skipped_lines: Family<ListLabel, Gauge>,
    enforced: Family<ListLabel, Gauge>,
    map_fill: Family<MapLabel, Gauge>,
    map_capacity: Family<MapLabel, Gauge>,
    reattachments: Gauge,
    enforcing: Gauge,
    refresh_interval: Gauge,
    dns_responses: Counter,
    dns_malformed: Counter,
    learned: Counter,
    learned_refused: Counter,
    learner: Gauge,
    listed_domains: Gauge,
    exempted: Family<ExemptionLabel, Counter>,
    exemption_expiry: Family<ExemptionLabel, Gauge>,
    exemptions_expired: Counter,
    history_stored: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vendorwall");
        let m = Self {
            registry: Arc::new(Registry::default()),
            blocked: Family::default(),
            audited: Family::default(),
            checked: Counter::default(),
            kernel_blocked: Counter::default(),
            kernel_audited: Counter::default(),
            events_dropped: Counter::default(),
            events_missed: Family::default(),
            entries: Family::default(),
            aggregated: Family::default(),
            last_refresh: Family::default(),
            last_refresh_success: Family::default(),
            skipped_lines: Family::default(),
            enforced: Family::default(),
            map_fill: Family::default(),
            map_capacity: Family::default(),
            reattachments: Gauge::default(),
            enforcing: Gauge::default(),
            refresh_interval: Gauge::default(),
            dns_responses: Counter::default(),
            dns_malformed: Counter::default(),
            learned: Counter::default(),
            learned_refused: Counter::default(),
            learner: Gauge::default(),
            listed_domains: Gauge::default(),
            exempted: Family::default(),
            exemption_expiry: Family::default(),
            exemptions_expired: Counter::default(),
            history_stored: Counter::default(),
        };
        registry.register(
            "exempted",
            "Listed destinations let through by an exemption, by exemption (from events)",
            m.exempted.clone(),
        );
        registry.register(
            "exemption_expiry_timestamp_seconds",
            "When each configured exemption expires",
            m.exemption_expiry.clone(),
        );
        registry.register(
            "exemptions_expired",
            "Exemptions that expired while the daemon ran",
            m.exemptions_expired.clone(),
        );
        registry.register(
            "history_stored",
            "Event lines written to the history database",
            m.history_stored.clone(),
        );
        registry.register(
            "dns_responses",
            "DNS responses the learner read to the end",
            m.dns_responses.clone(),
        );
        registry.register(
            "dns_malformed",
            "DNS responses the learner skipped as malformed or beyond its limits",
            m.dns_malformed.clone(),
        );
        registry.register(
            "learned",
            "Addresses learned or refreshed from DNS answers to listed names",
            m.learned.clone(),
        );
        registry.register(
            "learned_refused",
            "Loopback, private or link-local answers to listed names not learned",
            m.learned_refused.clone(),
        );
        registry.register(
            "dns_learner",
            "1 when the DNS learner is attached, 0 when it is off or the kernel cannot run it",
            m.learner.clone(),
        );
        registry.register(
            "listed_domains",
            "Listed domain names the learner matches",
            m.listed_domains.clone(),
        );
        registry.register(
            "blocked",
            "Refused connection attempts by list and systemd unit (from events)",
            m.blocked.clone(),
        );
        registry.register(
            "audited",
            "Audited (allowed) matches by list and systemd unit (from events)",
            m.audited.clone(),
        );
        registry.register(
            "checked",
            "Connection attempts the kernel programs checked",
            m.checked.clone(),
        );
        registry.register(
            "kernel_blocked",
            "Attempts the kernel refused (kernel counter)",
            m.kernel_blocked.clone(),
        );
        registry.register(
            "kernel_audited",
            "Matches the kernel audited (kernel counter)",
            m.kernel_audited.clone(),
        );
        registry.register(
            "events_dropped",
            "Events lost because the kernel ring buffer was full",
            m.events_dropped.clone(),
        );
        registry.register(
            "events_missed",
            "Event lines a slow sink missed",
            m.events_missed.clone(),
        );
        registry.register(
            "list_entries",
            "Prefixes per list as loaded",
            m.entries.clone(),
        );
        registry.register(
            "list_aggregated_entries",
            "Prefixes per list after aggregation",
            m.aggregated.clone(),
        );
        registry.register(
            "list_last_refresh_timestamp_seconds",
            "When each list was last fetched successfully",
            m.last_refresh.clone(),
        );
        registry.register(
            "list_last_refresh_success",
            "1 when the list's last refresh succeeded",
            m.last_refresh_success.clone(),
        );
        registry.register(
            "list_skipped_lines",
            "Malformed lines skipped in each list's content in force",
            m.skipped_lines.clone(),
        );
        registry.register(
            "list_enforced",
            "1 when the list has content in force, 0 when it failed to load and has none",
            m.enforced.clone(),
        );
        registry.register(
            "map_entries",
            "Entries in each kernel map",
            m.map_fill.clone(),
        );
        registry.register(
            "map_capacity",
            "Capacity of each kernel map",
            m.map_capacity.clone(),
        );
        registry.register(
            "reattachments",
            "Times detached links were found and re-attached",
            m.reattachments.clone(),
        );
        registry.register(
            "enforcing",
            "1 when every program of the current generation is attached to the cgroup",
            m.enforcing.clone(),
        );
        registry.register(
            "refresh_interval_seconds",
            "The configured list refresh interval, to judge a list's age by",
            m.refresh_interval.clone(),
        );
        Self {
            registry: Arc::new(registry),
            ..m
        }
    }

    /// Counts a published event line (a summary line counts all its attempts).
    pub fn observe_event(&self, record: &EventRecord) {
        let labels = ListUnit {
            list: record.list.clone(),
            unit: record.process.unit.clone().unwrap_or_default(),
        };
        let family = match record.action {
            "audited" => &self.audited,
            "exempted" => {
                let exemption = record.exemption.clone().unwrap_or_default();
                self.exempted
                    .get_or_create(&ExemptionLabel { exemption })
                    .inc_by(record.count);
                return;
            }
            _ => &self.blocked,
        };
        family.get_or_create(&labels).inc_by(record.count);
    }

    /// The configured exemptions' expiries (replacing the previous set) and how many expired
    /// since the last call.
    pub fn observe_exemptions(&self, expiries: &[(String, i64)], newly_expired: u64) {
        self.exemption_expiry.clear();
        for (id, at) in expiries {
            self.exemption_expiry
                .get_or_create(&ExemptionLabel {
                    exemption: id.clone(),
                })
                .set(*at);
        }
        self.exemptions_expired.inc_by(newly_expired);
    }

    pub fn observe_history_stored(&self, lines: u64) {
        self.history_stored.inc_by(lines);
    }

    pub fn observe_missed(&self, sink: &str, count: u64) {
        self.events_missed
            .get_or_create(&SinkLabel { sink: sink.into() })
            .inc_by(count);
    }

    /// Brings the kernel counters up to `now` (they only grow; `last` is what was seen before).
    pub fn observe_kernel(&self, last: &Counters, now: &Counters) {
        self.checked
            .inc_by(now.checked.saturating_sub(last.checked));
        self.kernel_blocked
            .inc_by(now.blocked.saturating_sub(last.blocked));
        self.kernel_audited
            .inc_by(now.audited.saturating_sub(last.audited));
        self.events_dropped
            .inc_by(now.events_dropped.saturating_sub(last.events_dropped));
        self.dns_responses
            .inc_by(now.dns_responses.saturating_sub(last.dns_responses));
        self.dns_malformed
            .inc_by(now.dns_malformed.saturating_sub(last.dns_malformed));
        self.learned
            .inc_by(now.learned.saturating_sub(last.learned));
        self.learned_refused
            .inc_by(now.learned_refused.saturating_sub(last.learned_refused));
    }

    /// Whether the learner runs and how many names it matches.
    pub fn set_names(&self, learning: bool, domains: usize) {
        self.learner.set(i64::from(learning));
        self.listed_domains
            .set(i64::try_from(domains).unwrap_or(i64::MAX));
    }

    pub fn observe_lists(&self, lists: &ListSet) {
        for list in lists.lists() {
            let label = ListLabel {
                list: list.spec.name.clone(),
            };
            self.entries
                .get_or_create(&label)
                .set(list.entries.len() as i64);
            self.aggregated
                .get_or_create(&label)
                .set(list.aggregated as i64);
            if let Some(at) = list.refreshed_at {
                let secs = at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                self.last_refresh.get_or_create(&label).set(secs);
            }
            self.last_refresh_success
                .get_or_create(&label)
                .set(i64::from(list.last_error.is_none()));
            self.skipped_lines
                .get_or_create(&label)
                .set(i64::try_from(list.skipped_lines).unwrap_or(i64::MAX));
            self.enforced.get_or_create(&label).set(1);
        }
        for failed in lists.failed() {
            let label = ListLabel {
                list: failed.spec.name.clone(),
            };
            self.enforced.get_or_create(&label).set(0);
            self.last_refresh_success.get_or_create(&label).set(0);
        }
    }

    pub fn observe_map(&self, map: &str, entries: usize, capacity: u32) {
        let label = MapLabel { map: map.into() };
        self.map_fill.get_or_create(&label).set(entries as i64);
        self.map_capacity
            .get_or_create(&label)
            .set(i64::from(capacity));
    }

    /// Whether enforcement is in place, and the refresh interval lists' ages compare against.
    pub fn set_enforcing(&self, enforcing: bool, refresh_interval: std::time::Duration) {
        self.enforcing.set(i64::from(enforcing));
        self.refresh_interval
            .set(i64::try_from(refresh_interval.as_secs()).unwrap_or(i64::MAX));
    }

    pub fn set_reattachments(&self, n: u64) {
        self.reattachments.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
