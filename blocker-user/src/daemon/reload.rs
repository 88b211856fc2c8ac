//! Reloading: re-read the config and the lists, and apply only the difference. A part that
//! fails keeps what was in force and is reported as a [`ReloadError`].

use std::{sync::Arc, time::Instant};

use tracing::{error, info};

use super::{
    Daemon, establish,
    establish::{EstablishError, exceptions, settings},
    exempt, family_counts, ms, watch,
};
use crate::{
    config::{Config, ConfigError},
    kernel::{diff::SyncStats, pins},
    lists::{
        ListError, ListSet, ListSpec, aggregate::KernelSet, selection, selection::SelectionError,
    },
};

/// What went wrong in one reload; each keeps the previous state of what it names in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("config not reloaded")]
    Config(#[source] ConfigError),
    #[error("list selection not reloaded")]
    Selection(#[source] SelectionError),
    #[error(transparent)]
    List(#[from] ListError),
    #[error("`{0}` changed: takes effect on restart")]
    NeedsRestart(&'static str),
    #[error("kernel sync failed")]
    Sync(#[source] EstablishError),
}

/// A reload's inputs, checked on the event loop; [`ReloadJob::build`] does the slow part
/// (fetching, parsing, aggregating) on a blocking thread, so the loop keeps checking integrity,
/// draining events and pinging the watchdog while a URL takes its time.
pub struct ReloadJob {
    config: Config,
    specs: Vec<ListSpec>,
    /// The lists in force: a list that fails to load keeps this content.
    previous: Arc<ListSet>,
    errors: Vec<ReloadError>,
    started_ns: u64,
    /// The list files as they were when the job began: an edit made while it runs is noticed
    /// by the next watch tick.
    watched: watch::Snapshot,
    /// The names in force: a list whose domain source fails keeps these.
    previous_names: Arc<crate::names::DomainSet>,
}

/// What a [`ReloadJob`] built: everything the short kernel apply needs.
pub struct Built {
    config: Config,
    specs: Vec<ListSpec>,
    /// `None` when the lists could not be reloaded at all: those in force stay.
    lists: Option<Arc<ListSet>>,
    desired: KernelSet,
    errors: Vec<ReloadError>,
    lists_ms: f64,
    aggregate_ms: f64,
    started_ns: u64,
    watched: watch::Snapshot,
    names: super::names::NamesBuilt,
}

impl ReloadJob {
    /// Fetches, parses and aggregates. Touches nothing the daemon shares.
    pub fn build(self) -> Built {
        let Self {
            config,
            specs,
            previous,
            mut errors,
            started_ns,
            watched,
            previous_names,
        } = self;
        let names = super::names::build(&config, &specs, &previous_names);
        let fetcher = selection::fetcher(&config);
        let guards = selection::guards(&config);
        let phase = Instant::now();
        let mut lists = match previous.refresh(&specs, &fetcher, &guards) {
            Ok((lists, list_errors)) => {
                errors.extend(list_errors.into_iter().map(ReloadError::List));
                Some(lists)
            }
            Err(err) => {
                errors.push(ReloadError::List(err));
                None
            }
        };
        let lists_ms = ms(phase.elapsed());
        let phase = Instant::now();
        let desired = match lists.as_mut() {
            Some(lists) => lists.kernel_set_counted(),
            None => previous.kernel_set(),
        };
        let aggregate_ms = ms(phase.elapsed());
        let lists = lists.map(Arc::new);
        if let Some(lists) = &lists {
            // Beside the kernel sync that follows: only explaining a verdict needs it.
            lists.index_in_background();
        }
        Built {
            config,
            specs,
            lists,
            desired,
            errors,
            lists_ms,
            aggregate_ms,
            started_ns,
            watched,
            names,
        }
    }
}

impl Daemon {
    /// Begins a reload of the lists (and of the config when `config` is given): takes the new
    /// config and selection (or records why not, keeping the running ones) and returns the
    /// job to build off the loop, then hand to [`Self::finish_reload`].
    pub fn begin_reload(
        &self,
        config: Option<Result<Config, ConfigError>>,
        specs: Option<Result<Vec<ListSpec>, SelectionError>>,
    ) -> ReloadJob {
        let started_ns = super::state::unix_ns();
        let mut errors = Vec::new();
        let config = match config {
            Some(Ok(config)) => self.keep_fixed(config, &mut errors),
            Some(Err(err)) => {
                errors.push(ReloadError::Config(err));
                self.config.clone()
            }
            None => self.config.clone(),
        };
        let specs = match specs {
            Some(Ok(specs)) => specs,
            Some(Err(err)) => {
                errors.push(ReloadError::Selection(err));
                self.specs.clone()
            }
            None => self.specs.clone(),
        };
        ReloadJob {
            watched: watch::snapshot(&specs),
            config,
            specs,
            previous: self.lists.clone(),
            previous_names: self.names.clone(),
            errors,
            started_ns,
        }
    }

    /// Applies what a job built: the short part that touches the kernel and shared state.
    /// Errors leave the previous content in force; they are logged and kept in the state.
    /// Returns true when a new generation replaced the old one (the caller re-opens events).
    pub fn finish_reload(&mut self, built: Built) -> bool {
        let Built {
            config,
            specs,
            lists,
            desired,
            mut errors,
            lists_ms,
            aggregate_ms,
            started_ns,
            watched,
            names,
        } = built;
        self.config = config;
        self.specs = specs;
        if let Some(lists) = lists {
            self.lists = lists;
            super::report::log_lists(&self.lists);
        }
        self.state.timings.lists_ms = lists_ms;
        self.state.timings.aggregate_ms = aggregate_ms;
        self.exempt_ids = exempt::resolve(&self.config.exempt);
        let hashes = crate::kernel::sizing::HashSizes::for_sync(
            &desired,
            &self.lists.failed_ids(),
            (self.config.maps.block_v4, self.config.maps.block_v6),
            self.enforcer.dense24(),
        );
        let sizes_changed = pins::map_specs(&self.config.maps, &hashes)
            .iter()
            .any(|spec| {
                spec.mismatch(&self.enforcer.generation_dir().join(spec.name))
                    .is_some()
            });
        let counts = family_counts(&desired);
        self.state.reloads += 1;
        self.state.last_reload_started_ns = started_ns;
        let mut new_generation = false;
        let phase = Instant::now();
        let result = if sizes_changed {
            info!("map sizes changed: migrating to a new generation");
            self.reestablish(desired).inspect(|_| new_generation = true)
        } else {
            self.sync_in_place(desired)
        };
        self.state.timings.sync_ms = ms(phase.elapsed());
        if result.is_ok() {
            self.kernel_counts = counts;
            self.apply_names(names);
            // The new config's exemptions, and the old ones' entries gone (a new generation
            // may have created the map afresh: written before its attach from the old set).
            self.refresh_exemptions();
            if new_generation {
                self.record_learner();
            }
            self.sweep_established();
        }
        match result {
            Ok(stats) => self.record_sync(stats, errors),
            Err(err) => {
                errors.push(ReloadError::Sync(err));
                self.state.errors = errors
                    .iter()
                    .map(|e| crate::lists::error_chain(e))
                    .collect();
                self.write_state();
            }
        }
        for err in &self.state.errors {
            error!("{err}");
        }
        self.watched = watched;
        new_generation
    }

    /// Where the daemon is attached and pinned only changes with a restart: a reload keeps the
    /// running values (re-pinning elsewhere would strand the old generation out of `unload`'s
    /// reach) and says so.
    fn keep_fixed(&self, mut new: Config, errors: &mut Vec<ReloadError>) -> Config {
        let running = &self.config;
        if new.cgroup != running.cgroup {
            errors.push(ReloadError::NeedsRestart("cgroup"));
            new.cgroup.clone_from(&running.cgroup);
        }
        if new.pin_dir != running.pin_dir {
            errors.push(ReloadError::NeedsRestart("pin_dir"));
            new.pin_dir.clone_from(&running.pin_dir);
        }
        if new.run_dir != running.run_dir {
            errors.push(ReloadError::NeedsRestart("run_dir"));
            new.run_dir.clone_from(&running.run_dir);
        }
        new
    }

    fn sync_in_place(&mut self, desired: KernelSet) -> Result<SyncStats, EstablishError> {
        self.enforcer.set_settings(settings(&self.config))?;
        let mut stats = self
            .enforcer
            .sync_block(desired, &self.lists.failed_ids())?;
        stats += self.enforcer.sync_allow(&exceptions(&self.config))?;
        stats += self.enforcer.sync_exempt(&self.exempt_ids)?;
        Ok(stats)
    }

    /// Builds a new generation (new programs, maps reused where they fit) and retires the old.
    pub(super) fn reestablish(&mut self, desired: KernelSet) -> Result<SyncStats, EstablishError> {
        let (enforcer, stats) = establish(
            &self.config,
            desired,
            &self.lists.failed_ids(),
            &self.exempt_ids,
            &self.exemptions.desired,
            &self.cgroup_file,
            self.log_level,
        )?;
        self.enforcer = enforcer;
        self.links_attached = true;
        Ok(stats)
    }
}
