//! Establishing a generation: load it, fill its maps as a diff against what it reuses, attach
//! it, and only then unpin the older generations. Also what the kernel's settings slot and
//! exception tries hold for a config.

use std::{collections::HashMap, fs::File, path::PathBuf};

use blocker_common::{Action, ListRef, SETTING_6TO4, SETTING_DRY_RUN, SETTING_NAT64, Settings};
use ipnet::IpNet;
use tracing::info;

use crate::{
    config::Config,
    kernel::{Enforcer, KernelError, OptionalPrograms, diff::SyncStats},
    lists::aggregate::KernelSet,
};

/// Why a generation could not be established. Whatever was in force before stays in force.
/// (Kernel errors are boxed: aya's load errors are large, and this travels by value.)
#[derive(Debug, thiserror::Error)]
pub enum EstablishError {
    #[error("failed to load the programs into {}", pin_dir.display())]
    Load {
        pin_dir: PathBuf,
        #[source]
        source: Box<KernelError>,
    },
    #[error("failed to fill the block maps")]
    Fill(#[source] Box<KernelError>),
    #[error("failed to attach")]
    Attach(#[source] Box<KernelError>),
    #[error(transparent)]
    Kernel(Box<KernelError>),
}

impl From<KernelError> for EstablishError {
    fn from(err: KernelError) -> Self {
        Self::Kernel(Box::new(err))
    }
}

pub fn settings(config: &Config) -> Settings {
    let mut flags = 0;
    if config.nat64 {
        flags |= SETTING_NAT64;
    }
    if config.six_to_four {
        flags |= SETTING_6TO4;
    }
    if config.dry_run {
        flags |= SETTING_DRY_RUN;
    }
    let secs = |d: std::time::Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    Settings {
        flags,
        learned_min_ttl_s: secs(config.names.learned_min_ttl),
        learned_max_ttl_s: secs(config.names.learned_max_ttl),
        _pad: 0,
    }
}

/// Exceptions as the allow tries hold them (list id 0: not a list).
pub fn exceptions(config: &Config) -> HashMap<IpNet, ListRef> {
    config
        .exceptions
        .prefixes
        .iter()
        .map(|net| (net.trunc(), ListRef::new(0, Action::Enforce)))
        .collect()
}

/// The optional programs `config` asks for.
pub fn optional(config: &Config) -> OptionalPrograms {
    OptionalPrograms {
        raw_sockets: config.guard_raw_sockets,
        egress: config.egress_backstop,
        learner: config.names.learn,
    }
}

/// Prepares a new generation, fills it as a diff against what it reuses, attaches it, then
/// unpins every older generation.
pub fn establish(
    config: &Config,
    desired: KernelSet,
    keep: &[u16],
    exempt_ids: &[u64],
    grants: &std::collections::HashMap<blocker_common::ExemptionKey, blocker_common::Grant>,
    cgroup_file: &File,
    log_level: u8,
) -> Result<(Enforcer, SyncStats), EstablishError> {
    let dense_now = crate::kernel::pins::PinRoot::existing(&config.pin_dir)
        .is_some_and(|pins| pins.dense24_in_force());
    let hashes = crate::kernel::sizing::HashSizes::for_sync(
        &desired,
        keep,
        (config.maps.block_v4, config.maps.block_v6),
        dense_now,
    );
    let mut enforcer =
        Enforcer::prepare(&config.pin_dir, config.maps, hashes, log_level).map_err(|source| {
            EstablishError::Load {
                pin_dir: config.pin_dir.clone(),
                source: Box::new(source),
            }
        })?;
    let adoption = enforcer.adoption().clone();
    if let Some(previous) = adoption.previous {
        info!(
            "adopting generation {previous} as {}: reused {:?}, created {:?}",
            adoption.generation, adoption.reused, adoption.created
        );
    }
    enforcer.set_settings(settings(config))?;
    let mut stats = enforcer
        .sync_block(desired, keep)
        .map_err(|e| EstablishError::Fill(Box::new(e)))?;
    stats += enforcer.sync_allow(&exceptions(config))?;
    stats += enforcer.sync_exempt(exempt_ids)?;
    stats += enforcer.sync_exemptions(grants)?;
    enforcer
        .attach(cgroup_file, optional(config))
        .map_err(|e| EstablishError::Attach(Box::new(e)))?;
    let retired = enforcer.retire_others()?;
    if !retired.is_empty() {
        info!("retired {} pins of older generations", retired.len());
    }
    Ok((enforcer, stats))
}
