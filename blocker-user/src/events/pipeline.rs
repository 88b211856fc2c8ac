//! From kernel events to every consumer: aggregate repeats, enrich first occurrences, count them
//! in the metrics, and publish them to the hub that feeds stdout, the file and the socket.

use std::{fs::OpenOptions, time::Instant};

use anyhow::Context as _;
use blocker_common::BlockEvent;

use super::{
    EventRecord,
    budget::{Budget, Limits},
    describe,
    hub::Hub,
    sinks::{metrics::Metrics, stop::Stop, writer::spawn_writer},
    summary,
    window::{Admission, Window},
    window_key,
};
use crate::{
    config::EventsConfig, history::sink::HistorySink, lists::ListSet, verdict::Translations,
};

pub struct Pipeline {
    pub hub: Hub,
    pub metrics: Metrics,
    window: Window<EventRecord>,
    budget: Budget,
    cache: super::cache::ProcessCache,
    /// Every sink thread (stdout, file, journal, history), by sink name.
    writers: Vec<(&'static str, std::thread::JoinHandle<()>)>,
    /// Tells the sink threads that the daemon stops.
    stop: Stop,
    /// The ids of `[[exemptions]]`, in slot order, to name the one an event carries.
    exemptions: Vec<String>,
}

impl Pipeline {
    /// Starts the sink threads the config asks for. `history`, when given, is the database
    /// writer; a database that cannot be opened is logged and left out (enforcement and the
    /// other sinks do not depend on it).
    pub fn start(
        config: &EventsConfig,
        history: Option<HistorySink>,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let hub = Hub::new(config.keep);
        let mut writers = Vec::new();
        let stop = Stop::default();
        if let Some(history) = history {
            let path = history.path.clone();
            let (m, stored) = (metrics.clone(), metrics.clone());
            match history.spawn(
                hub.subscribe(),
                stop.clone(),
                move |n| m.observe_missed("history", n),
                move |n| stored.observe_history_stored(n),
            ) {
                Ok(writer) => writers.push(("history", writer)),
                Err(err) => tracing::error!(
                    "event history off: {err} (events still go to the other sinks; {})",
                    path.display()
                ),
            }
        }
        let journal = config
            .journal
            .unwrap_or_else(super::sinks::journal::stdout_is_journal);
        if journal {
            let m = metrics.clone();
            writers.push((
                "journal",
                super::sinks::journal::spawn_journal(hub.subscribe(), stop.clone(), move |n| {
                    m.observe_missed("journal", n)
                }),
            ));
        } else if config.stdout {
            let m = metrics.clone();
            writers.push((
                "stdout",
                spawn_writer(
                    hub.subscribe(),
                    std::io::stdout(),
                    "stdout",
                    config.format,
                    stop.clone(),
                    move |n| m.observe_missed("stdout", n),
                ),
            ));
        }
        if let Some(path) = &config.file {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("failed to create {}", dir.display()))?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("failed to open the event file {}", path.display()))?;
            let m = metrics.clone();
            writers.push((
                "file",
                spawn_writer(
                    hub.subscribe(),
                    std::io::BufWriter::new(file),
                    "file",
                    config.format,
                    stop.clone(),
                    move |n| m.observe_missed("file", n),
                ),
            ));
        }
        Ok(Self {
            hub,
            metrics,
            window: Window::new(config.aggregate_window),
            budget: Budget::new(Limits {
                total: config.max_lines_per_second,
                per_uid: config.max_lines_per_second_per_uid,
            }),
            cache: {
                let mut cache = super::cache::ProcessCache::default();
                cache.index_packages();
                cache
            },
            writers,
            stop,
            exemptions: Vec::new(),
        })
    }

    /// The exemption ids events are named by (after a start or reload).
    pub fn set_exemptions(&mut self, ids: Vec<String>) {
        self.exemptions = ids;
    }

    /// Takes one kernel event: reported now if it is the first of its window, else counted.
    /// `translations` are the settings in force, to name the entry of an embedded IPv4 match.
    pub fn ingest(
        &mut self,
        event: &BlockEvent,
        lists: &ListSet,
        domains: &crate::kernel::domains::DomainTable,
        translations: Translations,
        now: Instant,
    ) {
        let cache = &mut self.cache;
        let exemptions = &self.exemptions;
        let admission = self
            .window
            .admit(window_key(event), event.boot_ns, now, || {
                describe(event, lists, domains, translations, exemptions, cache)
            });
        if let Admission::Report = admission {
            let record = describe(
                event,
                lists,
                domains,
                translations,
                &self.exemptions,
                &mut self.cache,
            );
            self.publish_within_budget(&record, now);
        }
    }

    /// Reports a connection the daemon terminated because its peer became blocked.
    pub fn terminated(&mut self, t: &crate::daemon::Termination) {
        let process = match t.pid {
            Some(pid) => self.cache.process(pid),
            None => super::ProcessInfo {
                process_gone: true,
                ..super::ProcessInfo::default()
            },
        };
        let comm = t
            .pid
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok())
            .map(|c| c.trim_end().to_owned())
            .unwrap_or_default();
        let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
        let tcp = t.socket.protocol == libc::IPPROTO_TCP as u8;
        let record = EventRecord {
            kind: "event",
            time: now.clone(),
            last: now,
            count: 1,
            repeat: false,
            action: "terminated",
            exemption: None,
            list: t.list.clone(),
            vendor: t.vendor.clone(),
            prefix: Some(t.prefix.clone()),
            source: Some(t.source.clone()),
            domain: None,
            learned_at: None,
            dst: t.socket.peer.ip().to_string(),
            port: t.socket.peer.port(),
            protocol: if tcp { "tcp".into() } else { "udp".into() },
            hook: "established",
            pid: t.pid.unwrap_or(0),
            tid: t.pid.unwrap_or(0),
            uid: t.socket.uid,
            user: self.cache.user(t.socket.uid),
            gid: 0,
            comm,
            cgroup_id: t.socket.cgroup_id.unwrap_or(0),
            process,
            limited: None,
        };
        self.publish(&record);
    }

    /// Publishes the summaries of windows that closed, and of attempts beyond the budget.
    pub fn tick(&mut self, now: Instant) {
        self.cache.expire(now);
        for repeats in self.window.expire(now) {
            self.publish_within_budget(&summary(repeats), now);
        }
        for limited in self.budget.summaries() {
            self.publish(&limited);
        }
    }

    /// Publishes an attempt's line if the budget allows, else counts it into a summary.
    fn publish_within_budget(&mut self, record: &EventRecord, now: Instant) {
        if self.budget.admit(record, now) {
            self.publish(record);
        }
    }

    fn publish(&self, record: &EventRecord) {
        self.metrics.observe_event(record);
        self.hub.publish(record);
    }

    /// Publishes every open summary, closes the hub and waits for the sinks to write everything.
    /// Other clones of the hub (socket clients) must be gone for the sinks to finish.
    pub fn finish(mut self) {
        let now = Instant::now();
        for repeats in self.window.flush() {
            self.publish_within_budget(&summary(repeats), now);
        }
        for limited in self.budget.summaries() {
            self.publish(&limited);
        }
        drop(self.hub);
        // Each sink writes what is queued within the stop budget and counts the rest as
        // missed; one stuck in a write (a pipe nobody reads, a dead disk) is left behind.
        self.stop.request();
        self.stop.join_all(self.writers);
    }
}
