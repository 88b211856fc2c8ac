//! The per-CPU counters the programs keep (checked, blocked, audited, dropped events, ...),
//! summed over the CPUs.

use aya::maps::{MapData, PerCpuArray};
use blocker_common::{Counter, map_names};
use serde::Serialize;

use super::{Enforcer, KernelError};

/// Totals of the per-CPU counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub checked: u64,
    pub blocked: u64,
    pub audited: u64,
    pub events_dropped: u64,
    pub raw_sockets_refused: u64,
    pub egress_dropped: u64,
    /// DNS responses the learner read to the end.
    pub dns_responses: u64,
    /// DNS responses it skipped as malformed or beyond its limits.
    pub dns_malformed: u64,
    /// Addresses learned (or refreshed) from answers to listed names.
    pub learned: u64,
    /// Answers to listed names not learned: loopback, private, link-local.
    pub learned_refused: u64,
}

/// Sums each counter over the CPUs.
pub fn read_counters<T: std::borrow::Borrow<MapData>>(
    array: &PerCpuArray<T, u64>,
) -> Result<Counters, KernelError> {
    let name = map_names::COUNTERS;
    let total = |counter: Counter| -> Result<u64, KernelError> {
        let values = array
            .get(&(counter as u32), 0)
            .map_err(|source| KernelError::Map { name, source })?;
        Ok(values.iter().sum())
    };
    Ok(Counters {
        checked: total(Counter::Checked)?,
        blocked: total(Counter::Blocked)?,
        audited: total(Counter::Audited)?,
        events_dropped: total(Counter::EventsDropped)?,
        raw_sockets_refused: total(Counter::RawSocketsRefused)?,
        egress_dropped: total(Counter::EgressDropped)?,
        dns_responses: total(Counter::DnsResponses)?,
        dns_malformed: total(Counter::DnsMalformed)?,
        learned: total(Counter::Learned)?,
        learned_refused: total(Counter::LearnedRefused)?,
    })
}

impl Enforcer {
    /// Sums the per-CPU counters.
    pub fn counters(&self) -> Result<Counters, KernelError> {
        let name = map_names::COUNTERS;
        let map = self.ebpf.map(name).ok_or(KernelError::MissingMap(name))?;
        let array: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|source| KernelError::Map { name, source })?;
        read_counters(&array)
    }
}
