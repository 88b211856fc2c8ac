//! Attaching a loaded generation to the cgroup and pinning its links, so enforcement outlives
//! the daemon; then retiring every older generation.

use std::{fs::File, path::PathBuf};

use aya::programs::{
    CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock, CgroupSockAddr, ProgramError,
    links::{FdLink, LinkError},
};
use blocker_common::program_names;

use super::{Enforcer, KernelError, OptionalPrograms, load::program, pins};

impl Enforcer {
    /// Attaches every hook to `cgroup` and pins the links in this generation. BPF links are
    /// always multi-attach: programs attached below run too, and any refusal refuses.
    pub fn attach(&mut self, cgroup: &File, optional: OptionalPrograms) -> Result<(), KernelError> {
        let dir = self.generation_dir();
        // Optional guards first: when the address hooks are attached, everything is in place.
        // `Single` means "no flags": the kernel refuses any flag on a cgroup bpf_link_create
        // (EINVAL, seen on 6.18) because links are implicitly BPF_F_ALLOW_MULTI. aya only falls
        // back to flag-based prog_attach before 5.7, older than we support.
        const NO_FLAGS: CgroupAttachMode = CgroupAttachMode::Single;
        if optional.raw_sockets {
            let name = program_names::SOCK_CREATE;
            let p = program::<CgroupSock>(&mut self.ebpf, name)?;
            let link = p.attach(cgroup, NO_FLAGS).and_then(|id| p.take_link(id));
            pin_link(link, name, &dir)?;
        }
        if optional.egress {
            let name = program_names::EGRESS;
            let p = program::<CgroupSkb>(&mut self.ebpf, name)?;
            let link = p
                .attach(cgroup, CgroupSkbAttachType::Egress, NO_FLAGS)
                .and_then(|id| p.take_link(id));
            pin_link(link, name, &dir)?;
        }
        if optional.learner && self.learner.is_ok() {
            let name = program_names::DNS_INGRESS;
            let p = program::<CgroupSkb>(&mut self.ebpf, name)?;
            let link = p
                .attach(cgroup, CgroupSkbAttachType::Ingress, NO_FLAGS)
                .and_then(|id| p.take_link(id));
            pin_link(link, name, &dir)?;
        }
        for name in pins::PROGRAMS {
            let p = program::<CgroupSockAddr>(&mut self.ebpf, name)?;
            let link = p.attach(cgroup, NO_FLAGS).and_then(|id| p.take_link(id));
            pin_link(link, name, &dir)?;
        }
        Ok(())
    }

    /// Attaches this generation's programs again, in place: for links someone detached. No
    /// program is loaded or verified again (that is what makes it quick, most of all on slow
    /// machines), and each new link's pin replaces the old one. A still-attached link is
    /// replaced the same way; for that moment both run, which only refuses twice.
    pub fn reattach(
        &mut self,
        cgroup: &File,
        optional: OptionalPrograms,
    ) -> Result<(), KernelError> {
        self.attach(cgroup, optional)
    }

    /// Unpins every other generation (after [`Self::attach`]): their links detach now that this
    /// generation enforces. Returns the files removed.
    pub fn retire_others(&self) -> Result<Vec<PathBuf>, KernelError> {
        Ok(self.pins.retire_all_but(self.adoption.generation)?)
    }
}

/// Pins a freshly attached link in the generation directory, so it outlives this process.
/// Pinned beside the final name, then renamed over it: re-attaching in place replaces a
/// detached link's pin in one step (its old link goes with it), and a crash in between leaves
/// the old pin, never none.
fn pin_link<L>(
    link: Result<L, ProgramError>,
    name: &'static str,
    dir: &std::path::Path,
) -> Result<(), KernelError>
where
    FdLink: TryFrom<L, Error = LinkError>,
{
    let link = link.map_err(|source| KernelError::Attach { name, source })?;
    let link = FdLink::try_from(link).map_err(|source| KernelError::NotALink { name, source })?;
    let path = dir.join(pins::link_file(name));
    // bpffs refuses names with a dot in them.
    let fresh = dir.join(format!("{}_new", pins::link_file(name)));
    let _ = std::fs::remove_file(&fresh);
    link.pin(&fresh).map_err(|source| KernelError::PinLink {
        name,
        path: fresh.clone(),
        source,
    })?;
    std::fs::rename(&fresh, &path).map_err(|source| KernelError::ReplacePin { path, source })
}
