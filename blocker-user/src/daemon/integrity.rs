//! The integrity check: this generation's links must still be attached to our cgroup. Someone
//! detaching them (`bpftool link detach`) gets them attached again within one interval: the
//! loaded programs re-attached in place, or, if that fails, a new generation.

use tracing::{error, info};

use super::{Daemon, exempt};
use crate::kernel::inspect;

impl Daemon {
    /// Checks that this generation's links are attached to our cgroup; re-attaches them when
    /// someone detached them (in place, else a new generation). Also re-resolves exempt units, whose cgroups are
    /// recreated when they restart. Returns true when a new generation was established.
    pub fn check_integrity(&mut self) -> bool {
        let links = inspect::links(&self.enforcer.generation_dir());
        let broken: Vec<&str> = links
            .iter()
            .filter(|l| l.kernel.is_none_or(|k| k.cgroup_id != self.cgroup_id))
            .map(|l| l.program)
            .collect();
        self.links_attached = !links.is_empty() && broken.is_empty();
        let mut new_generation = false;
        if !broken.is_empty() {
            error!(
                "ENFORCEMENT TAMPERED WITH: links of {} are detached or missing; re-attaching",
                broken.join(", ")
            );
            let optional = super::establish::optional(&self.config);
            match self.enforcer.reattach(&self.cgroup_file, optional) {
                Ok(()) => {
                    self.state.reattachments += 1;
                    self.links_attached = true;
                    self.write_state();
                    info!("re-attached in place: {}", self.status_line());
                }
                Err(err) => {
                    error!("re-attaching in place failed ({err:#}); loading a new generation");
                    match self.reestablish(self.lists.kernel_set()) {
                        Ok(stats) => {
                            self.state.reattachments += 1;
                            new_generation = true;
                            self.record_sync(stats, Vec::new());
                            info!("re-attached: {}", self.status_line());
                        }
                        Err(err) => error!("re-attaching failed: {err:#}"),
                    }
                }
            }
        }
        if self.last_prune.elapsed() >= super::names::PRUNE_EVERY {
            self.prune_learned();
        }
        self.refresh_exemptions();
        let ids = exempt::resolve(&self.config.exempt);
        if ids != self.exempt_ids {
            self.exempt_ids = ids;
            match self.enforcer.sync_exempt(&self.exempt_ids) {
                Ok(stats) => info!("exempt cgroups re-resolved: {stats}"),
                Err(err) => error!("cannot update exempt cgroups: {err:#}"),
            }
        }
        new_generation
    }
}
