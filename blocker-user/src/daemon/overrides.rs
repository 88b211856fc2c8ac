//! `vendorwall run`'s command-line overrides of the config file.

use crate::{
    cli::{GlobalArgs, RunArgs},
    config::{Config, ConfigError},
};

/// Reads the config and applies `run`'s command-line overrides.
pub fn effective_config(global: &GlobalArgs, args: &RunArgs) -> Result<Config, ConfigError> {
    let mut config = global.config()?;
    if let Some(cgroup) = &args.cgroup {
        config.cgroup = Some(cgroup.clone());
    }
    if let Some(dir) = &args.lists.blocklists {
        config.blocklists_dir = dir.clone();
    }
    if let Some(dir) = &args.cache_dir {
        config.cache_dir = dir.clone();
    }
    if let Some(n) = args.max_v4 {
        config.maps.block_v4 = n;
    }
    if let Some(n) = args.max_v6 {
        config.maps.block_v6 = n;
    }
    config.dry_run |= args.dry_run;
    config.nat64 |= args.nat64;
    config.six_to_four |= args.six_to_four;
    config.guard_raw_sockets |= args.guard_raw_sockets;
    config.egress_backstop |= args.egress_backstop;
    config
        .exempt
        .cgroups
        .extend(args.exempt_cgroup.iter().cloned());
    Ok(config)
}
