//! Turning a kernel event into its [`EventRecord`]: the list and entry that matched, and who
//! tried (process fields read from /proc at event time); summaries of repeats; the aggregation
//! key.

use blocker_common::{Action, BlockEvent, Hook};

use super::{
    EventRecord,
    cache::ProcessCache,
    clock::rfc3339,
    decode::{comm, destination, protocol_name},
    window,
};
use crate::{kernel::domains::DomainTable, lists::ListSet, verdict::Translations};

/// Builds the record for `event`: the list the kernel's value names, the entry of that list
/// holding the destination (looked up as the kernel did, `translations` being the settings in
/// force), and the process's details (from /proc, through `cache`).
pub fn describe(
    event: &BlockEvent,
    lists: &ListSet,
    domains: &DomainTable,
    translations: Translations,
    exemptions: &[String],
    cache: &mut ProcessCache,
) -> EventRecord {
    let action = Action::from_u8(event.action);
    let dst = destination(event);
    let learned = event.domain_id != 0;
    let guard = Hook::from_u8(event.hook) == Some(Hook::SockCreate) || learned;
    // The kernel's value names the list; the userspace index names the exact entry of that
    // list and its source line. A raw-socket refusal has no destination, so no entry.
    let matched = (!guard)
        .then(|| lists.explain(event.list_id, dst, translations))
        .flatten();
    let list = lists.by_id(event.list_id);
    EventRecord {
        kind: "event",
        time: rfc3339(event.boot_ns),
        last: rfc3339(event.boot_ns),
        count: 1,
        repeat: false,
        action: match action {
            Some(Action::Audit) => "audited",
            Some(Action::Exempted) => "exempted",
            _ => "blocked",
        },
        // Slot 0 is the unconditional `[exempt]` section; n names the n-th `[[exemptions]]`.
        exemption: (action == Some(Action::Exempted)).then(|| match event.exemption {
            0 => "[exempt]".to_owned(),
            n => exemptions
                .get(usize::from(n) - 1)
                .cloned()
                .unwrap_or_else(|| format!("#{n}")),
        }),
        list: if guard && !learned {
            "raw-socket-guard".to_owned()
        } else {
            list.map_or_else(|| format!("#{}", event.list_id), |l| l.spec.name.clone())
        },
        vendor: list.and_then(|l| l.spec.vendor.clone()),
        prefix: matched.map(|m| m.prefix().to_string()),
        source: matched.map(|m| m.source()),
        domain: learned.then(|| {
            domains
                .get(&event.domain_id)
                .map_or_else(|| format!("#{}", event.domain_id), |(d, _)| d.to_string())
        }),
        learned_at: learned.then(|| rfc3339(event.learned_ns)),
        dst: dst.to_string(),
        port: event.port,
        protocol: protocol_name(event.protocol),
        hook: Hook::from_u8(event.hook).map_or("unknown", Hook::name),
        pid: event.pid,
        tid: event.tid,
        uid: event.uid,
        user: cache.user(event.uid),
        gid: event.gid,
        comm: comm(&event.comm),
        cgroup_id: event.cgroup_id,
        process: cache.process(event.pid),
        limited: None,
    }
}

/// The summary line for repeats of `first` within one aggregation window.
pub fn summary(repeats: window::Repeats<EventRecord>) -> EventRecord {
    EventRecord {
        time: rfc3339(repeats.first_boot_ns),
        last: rfc3339(repeats.last_boot_ns),
        count: repeats.count,
        repeat: true,
        ..repeats.template
    }
}

/// The aggregation key of a kernel event.
pub fn window_key(event: &BlockEvent) -> window::Key {
    window::Key {
        pid: event.pid,
        dst: destination(event),
        list_id: event.list_id,
        action: event.action,
    }
}
