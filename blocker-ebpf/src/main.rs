//! vendorwall's kernel programs: `cgroup_sock_addr` hooks on connect4/6 and sendmsg4/6 that refuse
//! (EPERM) destinations found in the block tries and report every match on a ring buffer.
//!
//! Verdict order, checked only once a block-list prefix or a learned address matched:
//! allow-list (exceptions) -> exemption (an `[exempt]` cgroup, or an unexpired grant in
//! `EXEMPTIONS` for the cgroup or the process: allowed and reported as `exempted`) -> list
//! action (enforce or audit). An unlisted IPv4
//! destination costs two array reads (the /24 bitmap, the learned buckets); an unlisted IPv6
//! destination a binary search of the sorted pieces (two reads outside their span) and one
//! array read. Addresses are learned from DNS answers by
//! the `dns` module's ingress program.
//!
//! # Minimum kernel version
//! 5.8 (ring buffer, `bpf_ktime_get_boot_ns`); links need 5.7. The DNS learner needs 5.17.
#![no_std]
#![no_main]

mod dns;

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
    },
    macros::{cgroup_skb, cgroup_sock, cgroup_sock_addr, map},
    maps::{
        Array, HashMap, PerCpuArray, RingBuf,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{SkBuffContext, SockAddrContext, SockContext},
};
use aya_log_ebpf::debug;
use blocker_common::{
    Action, BlockEvent, COMM_LEN, COUNTER_SLOTS, Counter, Dense24Chunk, EXEMPT_CGROUP,
    EXEMPT_PROCESS, ExemptionKey, FAMILY_INET, FAMILY_INET6, Grant, HOST_V4_SEARCH_STEPS, Hook,
    Learned, ListRef, SEEN_V4_WORDS, SETTING_6TO4, SETTING_DRY_RUN, SETTING_NAT64, Settings,
    V6_SEARCH_STEPS, V6Piece, dense24_slot, dense24_value, host_v4_value, learned_slot_v4,
    learned_slot_v6, seen_v4_slot,
};

/// `BPF_F_NO_PREALLOC`: hash entries are allocated when written, so capacity costs nothing
/// until used.
pub(crate) const NO_PREALLOC: u32 = 1;
/// `BPF_F_MMAPABLE`: the daemon maps the array and writes the words in place.
const MMAPABLE: u32 = 1 << 10;

/// cgroup_sock_addr return values.
const ALLOW: i32 = 1;
const REFUSE: i32 = 0;

// The daemon sets every size at load time (`EbpfLoader::map_max_entries`); these are defaults.
// LPM tries are created with BPF_F_NO_PREALLOC, so a large max_entries costs nothing until used.
// IPv4 blocks live in three tiers by prefix length (see `block_v4`), behind a bitmap of the
// /24s any of them touches.
#[map]
static BLOCK_SEEN_V4: Array<u64> = Array::with_max_entries(SEEN_V4_WORDS, MMAPABLE);
#[map]
static BLOCK_HOSTS_SORTED_V4: Array<u64> = Array::with_max_entries(3, MMAPABLE);
#[map]
static BLOCK_NETS24_V4: HashMap<[u8; 4], ListRef> = HashMap::with_max_entries(1 << 20, NO_PREALLOC);
// One chunk (a miss for every address) unless the daemon makes it dense; see `block_v4`.
#[map]
static BLOCK_DENSE24_V4: Array<Dense24Chunk> = Array::with_max_entries(1, MMAPABLE);
#[map]
static BLOCK_TRIE_V4: LpmTrie<[u8; 4], ListRef> = LpmTrie::with_max_entries(1 << 20, 0);
/// Sorted disjoint pieces of the blocked IPv6 space, in two halves (see `block_v6`).
#[map]
static BLOCK_SORTED_V6: Array<V6Piece> = Array::with_max_entries(3, MMAPABLE);
#[map]
static ALLOW_V4: LpmTrie<[u8; 4], ListRef> = LpmTrie::with_max_entries(1 << 14, 0);
#[map]
static ALLOW_V6: LpmTrie<[u8; 16], ListRef> = LpmTrie::with_max_entries(1 << 14, 0);
#[map]
static EXEMPT_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(1 << 12, 0);
#[map]
static EXEMPTIONS: HashMap<ExemptionKey, Grant> = HashMap::with_max_entries(1 << 12, 0);
#[map]
pub(crate) static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 20, 0);
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

#[cgroup_sock_addr(connect4)]
pub fn vw_connect4(ctx: SockAddrContext) -> i32 {
    verifier_safe(check_v4(&ctx, Hook::Connect4))
}

#[cgroup_sock_addr(sendmsg4)]
pub fn vw_sendmsg4(ctx: SockAddrContext) -> i32 {
    verifier_safe(check_v4(&ctx, Hook::Sendmsg4))
}

#[cgroup_sock_addr(connect6)]
pub fn vw_connect6(ctx: SockAddrContext) -> i32 {
    verifier_safe(check_v6(&ctx, Hook::Connect6))
}

#[cgroup_sock_addr(sendmsg6)]
pub fn vw_sendmsg6(ctx: SockAddrContext) -> i32 {
    verifier_safe(check_v6(&ctx, Hook::Sendmsg6))
}

/// Makes the exit value provably 0 or 1 for the verifier.
///
/// Since REFUSE/ALLOW equal Action::Enforce/Audit (0/1), LLVM returns the action byte itself; it
/// spills it to the stack as a u8, and the verifier (checked on 6.18) then sees a 0..=255 exit
/// value and rejects the program ("R0 has smax=255 should have been in [0, 1]"). The volatile
/// read hides the range from LLVM so the mask survives and bounds R0.
#[inline(always)]
fn verifier_safe(verdict: i32) -> i32 {
    // SAFETY: reading a local through a valid reference.
    unsafe { core::ptr::read_volatile(&verdict) & 1 }
}

/// Where the matched destination came from, for the event.
struct Destination {
    family: u8,
    addr: [u8; 16],
    port: u16,
}

#[inline(always)]
fn check_v4(ctx: &SockAddrContext, hook: Hook) -> i32 {
    bump(Counter::Checked);
    // SAFETY: the kernel hands cgroup_sock_addr programs a valid `bpf_sock_addr`.
    let (ip, port) = unsafe { ((*ctx.sock_addr).user_ip4, (*ctx.sock_addr).user_port) };
    // `user_ip4` holds the address in network order; its in-memory bytes are the key bytes.
    let ip = ip.to_ne_bytes();
    let found = match_v4(ip);
    if found.list.list_id == 0 {
        return ALLOW;
    }
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&ip);
    let dest = Destination {
        family: FAMILY_INET,
        addr,
        port: port_from_ctx(port),
    };
    if ALLOW_V4.get(Key::new(32, ip)).is_some() {
        return ALLOW;
    }
    verdict(ctx, hook, &found, &dest)
}

/// What a destination matched: a block-list prefix, or an address learned for a listed name
/// (`domain_id` non-zero). A zero `list_id` is no match (an `Option` would carry an
/// uninitialized payload the verifier rejects, see `block_v4`).
struct Match {
    list: ListRef,
    domain_id: u32,
    learned_ns: u64,
}

const NO_MATCH: Match = Match {
    list: ListRef::new(0, Action::Enforce),
    domain_id: 0,
    learned_ns: 0,
};

/// The prefix tiers first; the learned addresses when no prefix matched, or when the prefix's
/// list only audits and a learned name enforces (enforce wins over audit, as between lists).
#[inline(always)]
fn match_v4(ip: [u8; 4]) -> Match {
    let prefix = block_v4(ip).unwrap_or(ListRef::new(0, Action::Enforce));
    if prefix.list_id != 0 && prefix.action == Action::Enforce as u8 {
        return Match {
            list: prefix,
            ..NO_MATCH
        };
    }
    let learned = learned_v4(ip);
    prefer_learned(prefix, &learned)
}

#[inline(always)]
fn prefer_learned(prefix: ListRef, learned: &Learned) -> Match {
    if learned.domain_id != 0 && (prefix.list_id == 0 || learned.action == Action::Enforce as u8) {
        return Match {
            list: ListRef {
                list_id: learned.list_id,
                action: learned.action,
                prefix_len: 0,
            },
            domain_id: learned.domain_id,
            learned_ns: learned.learned_ns,
        };
    }
    Match {
        list: prefix,
        ..NO_MATCH
    }
}

const NOT_LEARNED: Learned = Learned {
    list_id: 0,
    action: 0,
    _pad: 0,
    domain_id: 0,
    learned_ns: 0,
    expires_ns: 0,
};

/// The unexpired learned entry of `ip`, or a zeroed one. The bucket byte first: most
/// destinations are in no learned bucket and cost one inlined array read.
#[inline(always)]
fn learned_v4(ip: [u8; 4]) -> Learned {
    if !learned_bucket(learned_slot_v4(ip)) {
        return NOT_LEARNED;
    }
    // SAFETY: the key is plain bytes; the value is copied out at once.
    let entry = unsafe { dns::LEARNED_V4.get(&ip) }.map_or(NOT_LEARNED, |l| *l);
    unexpired(entry)
}

#[inline(always)]
fn learned_v6(ip: [u8; 16]) -> Learned {
    if !learned_bucket(learned_slot_v6(ip)) {
        return NOT_LEARNED;
    }
    // SAFETY: as in learned_v4.
    let entry = unsafe { dns::LEARNED_V6.get(&ip) }.map_or(NOT_LEARNED, |l| *l);
    unexpired(entry)
}

#[inline(always)]
fn learned_bucket((word, byte): (u32, u32)) -> bool {
    dns::LEARNED_SEEN
        .get(word)
        .is_some_and(|bytes| bytes[(byte & 7) as usize] != 0)
}

/// Expiry is the kernel's to enforce: an entry past its time stops applying even while the
/// daemon, which deletes it, is down.
#[inline(always)]
fn unexpired(entry: Learned) -> Learned {
    // SAFETY: helper without arguments.
    if entry.domain_id != 0 && entry.expires_ns > unsafe { bpf_ktime_get_boot_ns() } {
        entry
    } else {
        NOT_LEARNED
    }
}

#[inline(always)]
fn check_v6(ctx: &SockAddrContext, hook: Hook) -> i32 {
    bump(Counter::Checked);
    // SAFETY: as in check_v4. The verifier only accepts 4-byte loads of `user_ip6` words, so
    // read them one by one instead of copying the array.
    let (w0, w1, w2, w3, port) = unsafe {
        let sa = &*ctx.sock_addr;
        (
            sa.user_ip6[0],
            sa.user_ip6[1],
            sa.user_ip6[2],
            sa.user_ip6[3],
            sa.user_port,
        )
    };
    let mut addr = [0u8; 16];
    addr[0..4].copy_from_slice(&w0.to_ne_bytes());
    addr[4..8].copy_from_slice(&w1.to_ne_bytes());
    addr[8..12].copy_from_slice(&w2.to_ne_bytes());
    addr[12..16].copy_from_slice(&w3.to_ne_bytes());
    let dest = Destination {
        family: FAMILY_INET6,
        addr,
        port: port_from_ctx(port),
    };

    // The IPv4 address a v6 destination really reaches, where there is one.
    let embedded_v4 = if w0 == 0 && w1 == 0 && addr[8..12] == [0, 0, 0xff, 0xff] {
        // ::ffff:a.b.c.d — the socket talks IPv4 on the wire.
        Some([addr[12], addr[13], addr[14], addr[15]])
    } else if w0 == 0 && w1 == 0 && w2 == 0 && u32::from_be(w3) > 1 {
        // ::a.b.c.d (IPv4-compatible, deprecated; :: and ::1 excluded): some stacks and
        // tunnels still map it to IPv4, so treat it like the address it embeds.
        Some([addr[12], addr[13], addr[14], addr[15]])
    } else {
        embedded_by_translation(&addr)
    };
    if let Some(ip) = embedded_v4 {
        let found = match_v4(ip);
        if found.list.list_id != 0 {
            if ALLOW_V4.get(Key::new(32, ip)).is_some() {
                return ALLOW;
            }
            return verdict(ctx, hook, &found, &dest);
        }
    }

    let prefix = block_v6(&addr);
    let found = if prefix.list_id != 0 && prefix.action == Action::Enforce as u8 {
        Match {
            list: prefix,
            ..NO_MATCH
        }
    } else {
        prefer_learned(prefix, &learned_v6(addr))
    };
    if found.list.list_id == 0 {
        return ALLOW;
    }
    if ALLOW_V6.get(Key::new(128, addr)).is_some() {
        return ALLOW;
    }
    verdict(ctx, hook, &found, &dest)
}

/// `SOCK_RAW`, as the kernel numbers it.
const SOCK_RAW: u32 = 3;

/// Optional guard: a process in a non-exempt cgroup may not create a raw IPv4/IPv6 socket, with
/// which it could hand-craft packets the address hooks never see.
#[cgroup_sock(sock_create)]
pub fn vw_sock_create(ctx: SockContext) -> i32 {
    // SAFETY: the kernel hands cgroup_sock programs a valid `bpf_sock`.
    let (family, kind, protocol) =
        unsafe { ((*ctx.sock).family, (*ctx.sock).type_, (*ctx.sock).protocol) };
    if kind != SOCK_RAW {
        return ALLOW;
    }
    // SAFETY: helper without arguments.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // A raw socket reaches every list: only an exemption from all of them keeps it.
    if exemption(cgroup_id, 0, true) != NOT_EXEMPT {
        return ALLOW;
    }
    bump(Counter::RawSocketsRefused);
    let dest = Destination {
        family: family as u8,
        addr: [0; 16],
        port: 0,
    };
    emit_event(
        Hook::SockCreate,
        &NO_MATCH,
        Action::Enforce,
        0,
        cgroup_id,
        protocol as u8,
        &dest,
    );
    verifier_safe(REFUSE)
}

/// Optional backstop: drops egress packets whose destination is in an enforced block list,
/// whatever socket sent them (raw sockets included). Verdicts: 1 pass, 0 drop.
#[cgroup_skb(egress)]
pub fn vw_egress(ctx: SkBuffContext) -> i32 {
    verifier_safe(egress_verdict(&ctx))
}

#[inline(always)]
fn egress_verdict(ctx: &SkBuffContext) -> i32 {
    let Ok(first) = ctx.load::<u8>(0) else {
        return ALLOW;
    };
    let listed = match first >> 4 {
        4 => {
            let Ok(dst) = ctx.load::<[u8; 4]>(16) else {
                return ALLOW;
            };
            enforced_v4(dst)
        }
        6 => {
            let Ok(dst) = ctx.load::<[u8; 16]>(24) else {
                return ALLOW;
            };
            if dst[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] {
                enforced_v4([dst[12], dst[13], dst[14], dst[15]])
            } else {
                let found = block_v6(&dst);
                found.list_id != 0
                    && found.action == Action::Enforce as u8
                    && ALLOW_V6.get(Key::new(128, dst)).is_none()
            }
        }
        _ => false,
    };
    if !listed {
        return ALLOW;
    }
    // SAFETY: the context is a valid __sk_buff for this program type.
    let cgroup_id = unsafe { aya_ebpf::helpers::bpf_skb_cgroup_id(ctx.skb.skb) };
    // Softirq context may run this for another task: only cgroup exemptions from every list
    // count here, never a process's.
    if exemption(cgroup_id, 0, false) != NOT_EXEMPT
        || SETTINGS
            .get(0)
            .is_some_and(|s| s.flags & SETTING_DRY_RUN != 0)
    {
        return ALLOW;
    }
    bump(Counter::EgressDropped);
    REFUSE
}

#[inline(always)]
fn enforced_v4(dst: [u8; 4]) -> bool {
    block_v4(dst).is_some_and(|l| l.action == Action::Enforce as u8)
        && ALLOW_V4.get(Key::new(32, dst)).is_none()
}

/// The longest blocked IPv4 prefix holding `ip`, across the three tiers: hosts (/32, sorted
/// array), /24 networks (hash, or one byte each in the dense array) and every other length
/// (trie, whose values carry their prefix length).
/// A /32 is the longest possible match; a trie match longer than /24 beats a /24; otherwise a
/// /24 beats whatever shorter prefix the trie found. The bitmap first: most destinations are
/// in no listed /24 and cost one inlined array read.
#[inline(always)]
fn block_v4(ip: [u8; 4]) -> Option<ListRef> {
    let (word, mask) = seen_v4_slot(ip);
    if !BLOCK_SEEN_V4
        .get(word)
        .is_some_and(|bits| *bits & mask != 0)
    {
        return None;
    }
    if let Some(host) = host_v4(ip) {
        return Some(host);
    }
    // A zeroed value (list 0, never used) stands for "no trie match": an `Option` here would
    // carry an uninitialized payload that LLVM spills and the verifier rejects ("!read_ok").
    let trie = BLOCK_TRIE_V4
        .get(Key::new(32, ip))
        .map_or(ListRef::new(0, Action::Enforce), |t| *t);
    if trie.prefix_len > 24 {
        return Some(trie);
    }
    // A set with hundreds of thousands of /24s keeps them as one byte each in the dense
    // array, and the hash is empty; otherwise the array has one chunk and this misses.
    let (chunk, byte) = dense24_slot(ip);
    if let Some(chunk) = BLOCK_DENSE24_V4.get(chunk) {
        if let Some(net) = dense24_value(chunk[byte & 0xff]) {
            return Some(net);
        }
        return (trie.list_id != 0).then_some(trie);
    }
    let net24 = [ip[0], ip[1], ip[2], 0];
    if let Some(net) = unsafe { BLOCK_NETS24_V4.get(&net24) } {
        return Some(*net);
    }
    (trie.list_id != 0).then_some(trie)
}

/// The listed host `ip`, by binary search in the active half of the sorted hosts (element 0
/// says where it starts; its first element is its length). A fixed number of steps, so the
/// verifier sees a bounded loop.
#[inline(always)]
fn host_v4(ip: [u8; 4]) -> Option<ListRef> {
    let base = *BLOCK_HOSTS_SORTED_V4.get(0)? as u32;
    if base == 0 {
        return None;
    }
    let len = *BLOCK_HOSTS_SORTED_V4.get(base)? as u32;
    let want = u32::from_be_bytes(ip) as u64;
    let (mut lo, mut hi) = (0u32, len);
    for _ in 0..HOST_V4_SEARCH_STEPS {
        if lo >= hi {
            return None;
        }
        let mid = lo + (hi - lo) / 2;
        let entry = *BLOCK_HOSTS_SORTED_V4.get(base + 1 + mid)?;
        let addr = entry >> 32;
        if addr == want {
            return Some(host_v4_value(entry));
        }
        if addr < want {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    None
}

/// The blocked IPv6 piece holding `addr` (its value; a zeroed one, list 0, when none does),
/// by binary search in the active half of the sorted pieces: the last piece starting at or
/// before `addr`, which holds it or nothing does (pieces are disjoint). Addresses outside the
/// span of the set (::1, link-local and ULA with lists of global prefixes) stop after two
/// reads. A fixed number of steps, so the verifier sees a bounded loop.
#[inline(always)]
fn block_v6(addr: &[u8; 16]) -> ListRef {
    const NONE: ListRef = ListRef::new(0, Action::Enforce);
    let Some(header) = BLOCK_SORTED_V6.get(0) else {
        return NONE;
    };
    let base = header.hi as u32;
    if base == 0 {
        return NONE;
    }
    let Some(half) = BLOCK_SORTED_V6.get(base) else {
        return NONE;
    };
    let len = half.hi as u32;
    let hi = u64::from_be_bytes([
        addr[0], addr[1], addr[2], addr[3], addr[4], addr[5], addr[6], addr[7],
    ]);
    let lo = u64::from_be_bytes([
        addr[8], addr[9], addr[10], addr[11], addr[12], addr[13], addr[14], addr[15],
    ]);
    if len == 0 {
        return NONE;
    }
    // The span: before the first piece, or at or after the last one's start, the answer
    // needs no search.
    match BLOCK_SORTED_V6.get(base + 1) {
        Some(first) if !first.starts_after(hi, lo) => {}
        _ => return NONE,
    }
    let Some(last) = BLOCK_SORTED_V6.get(base + len) else {
        return NONE;
    };
    if !last.starts_after(hi, lo) {
        return if last.holds(hi, lo) { last.value } else { NONE };
    }
    // Pieces [0, lo_i) start at or before `addr`, [hi_i, len) after it; the first is known
    // to start before, the last after.
    let (mut lo_i, mut hi_i) = (1u32, len - 1);
    for _ in 0..V6_SEARCH_STEPS {
        if lo_i >= hi_i {
            break;
        }
        let mid = lo_i + (hi_i - lo_i) / 2;
        let Some(piece) = BLOCK_SORTED_V6.get(base + 1 + mid) else {
            return NONE;
        };
        if piece.starts_after(hi, lo) {
            hi_i = mid;
        } else {
            lo_i = mid + 1;
        }
    }
    match BLOCK_SORTED_V6.get(base + lo_i) {
        Some(piece) if piece.holds(hi, lo) => piece.value,
        _ => NONE,
    }
}

/// The IPv4 address embedded by NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`), when the daemon
/// enabled that translation in `SETTINGS`.
#[inline(always)]
fn embedded_by_translation(addr: &[u8; 16]) -> Option<[u8; 4]> {
    // The address test comes first: ordinary IPv6 destinations skip the settings lookup.
    let (flag, embedded) = if addr[..12] == [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] {
        (SETTING_NAT64, [addr[12], addr[13], addr[14], addr[15]])
    } else if addr[0] == 0x20 && addr[1] == 0x02 {
        (SETTING_6TO4, [addr[2], addr[3], addr[4], addr[5]])
    } else {
        return None;
    };
    let flags = SETTINGS.get(0).map_or(0, |s| s.flags);
    (flags & flag != 0).then_some(embedded)
}

/// A block-list prefix or learned address matched and no exception applies: decide, count and
/// report.
#[inline(always)]
fn verdict(ctx: &SockAddrContext, hook: Hook, found: &Match, dest: &Destination) -> i32 {
    let list = found.list;
    // SAFETY: helper without arguments, always valid in this program type.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the kernel gives a valid `bpf_sock_addr`; `protocol` is readable on these hooks.
    let protocol = unsafe { (*ctx.sock_addr).protocol };
    let exempted = exemption(cgroup_id, list.list_id, true);
    if exempted != NOT_EXEMPT {
        // Every use of an exemption is reported, so an auditor sees who still reaches the vendor.
        bump(Counter::Exempted);
        emit_event(
            hook,
            found,
            Action::Exempted,
            exempted as u16,
            cgroup_id,
            protocol as u8,
            dest,
        );
        return ALLOW;
    }
    let dry_run = SETTINGS
        .get(0)
        .is_some_and(|s| s.flags & SETTING_DRY_RUN != 0);
    let action = if dry_run || list.action == Action::Audit as u8 {
        Action::Audit
    } else {
        Action::Enforce
    };
    bump(match action {
        Action::Audit => Counter::Audited,
        _ => Counter::Blocked,
    });
    emit_event(hook, found, action, 0, cgroup_id, protocol as u8, dest);
    debug!(
        ctx,
        "vendorwall: {} hook={} list={} port={}",
        match action {
            Action::Audit => "audited",
            _ => "refused",
        },
        hook as u8,
        list.list_id,
        dest.port
    );
    match action {
        Action::Audit => ALLOW,
        _ => REFUSE,
    }
}

/// No exemption covers the caller (a `u32`, not an `Option`: see `block_v4`).
const NOT_EXEMPT: u32 = u32::MAX;

/// The exemption covering the caller for `list_id`: its slot (0 for an `[exempt]` cgroup), or
/// [`NOT_EXEMPT`]. The cgroup first, then (when `process`) the calling process; for each, the
/// exemption from this list, then one from every list. An entry past its expiry counts for
/// nothing, so an exemption ends on time even while the daemon is down.
#[inline(always)]
fn exemption(cgroup_id: u64, list_id: u16, process: bool) -> u32 {
    // SAFETY: the key is a plain u64 and the value is only tested for presence.
    if unsafe { EXEMPT_CGROUPS.get(&cgroup_id) }.is_some() {
        return 0;
    }
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let cgroup = grant(
        ExemptionKey::new(EXEMPT_CGROUP, cgroup_id, list_id),
        now,
        None,
    );
    if cgroup != NOT_EXEMPT || list_id == 0 && !process {
        return cgroup;
    }
    let all = grant(ExemptionKey::new(EXEMPT_CGROUP, cgroup_id, 0), now, None);
    if all != NOT_EXEMPT || !process {
        return all;
    }
    let tgid = bpf_get_current_pid_tgid() >> 32;
    let comm = bpf_get_current_comm().unwrap_or([0u8; COMM_LEN]);
    let own = grant(
        ExemptionKey::new(EXEMPT_PROCESS, tgid, list_id),
        now,
        Some(&comm),
    );
    if own != NOT_EXEMPT {
        return own;
    }
    grant(ExemptionKey::new(EXEMPT_PROCESS, tgid, 0), now, Some(&comm))
}

#[inline(always)]
fn grant(key: ExemptionKey, now: u64, comm: Option<&[u8; COMM_LEN]>) -> u32 {
    // SAFETY: the key is plain bytes; the value is read at once.
    let Some(grant) = (unsafe { EXEMPTIONS.get(&key) }) else {
        return NOT_EXEMPT;
    };
    if grant.expires_ns <= now {
        return NOT_EXEMPT;
    }
    if let Some(comm) = comm
        && !same_comm(comm, &grant.comm)
    {
        return NOT_EXEMPT;
    }
    u32::from(grant.slot)
}

/// Whether two `comm`s are equal, compared as two words.
#[inline(always)]
fn same_comm(a: &[u8; COMM_LEN], b: &[u8; COMM_LEN]) -> bool {
    let word = |c: &[u8; COMM_LEN], i: usize| {
        u64::from_ne_bytes([
            c[i],
            c[i + 1],
            c[i + 2],
            c[i + 3],
            c[i + 4],
            c[i + 5],
            c[i + 6],
            c[i + 7],
        ])
    };
    word(a, 0) == word(b, 0) && word(a, 8) == word(b, 8)
}

#[inline(always)]
fn emit_event(
    hook: Hook,
    found: &Match,
    action: Action,
    exemption: u16,
    cgroup_id: u64,
    protocol: u8,
    dest: &Destination,
) {
    let Some(mut entry) = EVENTS.reserve::<BlockEvent>(0) else {
        // Nothing lost silently: the daemon reports this counter.
        bump(Counter::EventsDropped);
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    let comm = bpf_get_current_comm().unwrap_or([0u8; COMM_LEN]);
    entry.write(BlockEvent {
        // SAFETY: helper without arguments.
        boot_ns: unsafe { bpf_ktime_get_boot_ns() },
        cgroup_id,
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        addr: dest.addr,
        port: dest.port,
        family: dest.family,
        protocol,
        hook: hook as u8,
        action: action as u8,
        list_id: found.list.list_id,
        comm,
        domain_id: found.domain_id,
        exemption,
        _pad: 0,
        learned_ns: found.learned_ns,
    });
    entry.submit(0);
}

/// `user_port` holds the port in network order in its low 16 bits.
#[inline(always)]
fn port_from_ctx(user_port: u32) -> u16 {
    u16::from_be(user_port as u16)
}

#[inline(always)]
pub(crate) fn bump(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot; cgroup_sock_addr programs run with migration disabled, so no
        // other writer can touch this CPU's copy concurrently.
        unsafe { *slot += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// bpf_get_current_comm, the ring buffer and aya-log's helpers are available to GPL-compatible
// programs only.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
