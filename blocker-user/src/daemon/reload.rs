//! Reloading: re-read the config and the lists, and apply only the difference. A part that
//! fails keeps what was in force and is reported as a [`ReloadError`].

use std::time::Instant;

use tracing::{error, info};

use super::{
    Daemon, establish,
    establish::{EstablishError, exceptions, settings},
    exempt, family_counts, ms,
};
use crate::{
    config::{Config, ConfigError},
    kernel::{diff::SyncStats, pins},
    lists::{ListError, ListSpec, aggregate::KernelSet, selection, selection::SelectionError},
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

impl Daemon {
    /// Re-reads the lists (and the config when `config` is given) and applies the difference.
    /// Errors leave the previous content in force; they are logged and kept in the state.
    /// Returns true when a new generation replaced the old one (the caller re-opens events).
    pub fn reload(
        &mut self,
        config: Option<Result<Config, ConfigError>>,
        specs: Option<Result<Vec<ListSpec>, SelectionError>>,
    ) -> bool {
        let started_ns = super::state::unix_ns();
        let mut errors = Vec::new();
        let mut new_generation = false;
        if let Some(result) = config {
            match result {
                Ok(config) => self.config = self.keep_fixed(config, &mut errors),
                Err(err) => errors.push(ReloadError::Config(err)),
            }
        }
        if let Some(result) = specs {
            match result {
                Ok(specs) => self.specs = specs,
                Err(err) => errors.push(ReloadError::Selection(err)),
            }
        }
        let fetcher = selection::fetcher(&self.config);
        let guards = selection::guards(&self.config);
        let phase = Instant::now();
        let refreshed = self.lists.refresh(&self.specs, &fetcher, &guards);
        self.state.timings.lists_ms = ms(phase.elapsed());
        match refreshed {
            Ok((lists, list_errors)) => {
                errors.extend(list_errors.into_iter().map(ReloadError::List));
                self.lists = lists;
                super::report::log_lists(&self.lists);
            }
            Err(err) => errors.push(ReloadError::List(err)),
        }
        self.exempt_ids = exempt::resolve(&self.config.exempt);
        let sizes_changed = pins::map_specs(&self.config.maps).iter().any(|spec| {
            spec.mismatch(&self.enforcer.generation_dir().join(spec.name))
                .is_some()
        });
        let phase = Instant::now();
        let desired = self.lists.kernel_set();
        let counts = family_counts(&desired);
        self.state.timings.aggregate_ms = ms(phase.elapsed());
        self.state.reloads += 1;
        self.state.last_reload_started_ns = started_ns;
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
        self.watched = self.snapshot_watched();
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
            &self.cgroup_file,
            self.log_level,
        )?;
        self.enforcer = enforcer;
        Ok(stats)
    }
}
