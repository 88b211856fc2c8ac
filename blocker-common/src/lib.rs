//! Types shared by vendorwall's kernel programs (`blocker-ebpf`) and its daemon (`blocker-user`).
//!
//! Everything here is `#[repr(C)]` with explicit padding so that both sides agree byte for byte
//! on map keys, map values and ring-buffer events. The `user` feature adds `aya::Pod` impls so the
//! daemon can read and write these types through aya's map APIs.
#![no_std]

/// Names of the maps in the eBPF object, so both sides spell them the same way.
pub mod map_names {
    /// LPM trie of blocked IPv4 prefixes other than /24 and /32: key `[u8; 4]` (network order),
    /// value [`super::ListRef`] with its `prefix_len` set.
    /// (Named apart from the single trie of earlier versions, so an upgrade creates it fresh
    /// instead of adopting a trie that still holds /24s and hosts.)
    pub const BLOCK_TRIE_V4: &str = "BLOCK_TRIE_V4";
    /// Blocked IPv4 hosts (/32) in one array of `u64`: element 0 is the index where the
    /// active half starts (0 before the first write: a length of 0); each half is a length
    /// and that many [`super::host_v4_entry`]s sorted by address, which the programs
    /// binary-search. 8 bytes a host where a hash costs about 90; the daemon rewrites the
    /// inactive half whole and then points element 0 at it, so a host listed before and
    /// after a write is found throughout.
    pub const BLOCK_HOSTS_V4: &str = "BLOCK_HOSTS_SORTED_V4";
    /// Hash of blocked IPv4 /24 networks: key `[u8; 4]` (last byte 0), value [`super::ListRef`].
    pub const BLOCK_NETS24_V4: &str = "BLOCK_NETS24_V4";
    /// Array of [`super::DENSE24_CHUNKS`] + 1 chunks of 256 bytes, one byte per IPv4 /24
    /// ([`super::dense24_byte`]), used instead of `BLOCK_NETS24_V4` when a list set holds so
    /// many /24s that a hash costs more than the 16 MiB of one byte each. Chunk `i + 1` holds
    /// the /24s of the /16 `i`; a set kept in the hash gets a one-chunk array, so every index
    /// the program asks for misses and it reads the hash instead.
    pub const BLOCK_DENSE24_V4: &str = "BLOCK_DENSE24_V4";
    /// Array of `u64` words, one bit per IPv4 /24 ([`super::SEEN_V4_WORDS`] words): set when
    /// any blocked IPv4 entry overlaps that /24. An unset bit answers "not listed" with one
    /// array read, before any hash or trie lookup. Memory-mappable, so the daemon writes it
    /// in place.
    pub const BLOCK_SEEN_V4: &str = "BLOCK_SEEN_V4";
    /// Blocked IPv6 prefixes in one array of [`super::V6Piece`]s, laid out as
    /// `BLOCK_HOSTS_V4` is: element 0's `hi` is the index where the active half starts (0
    /// before the first write), each half is a length (in its first element's `hi`) and that
    /// many disjoint pieces sorted by address, which the programs binary-search. Nested
    /// prefixes are cut into disjoint pieces (the longest prefix wins, as in a trie), each
    /// carrying the value of the listed prefix it came from. Why not an LPM trie: an insert
    /// walks the trie and costs over a microsecond at a million entries; the array is written
    /// in one batch. (Named apart from the trie of earlier versions, so an upgrade creates it
    /// fresh.)
    pub const BLOCK_V6: &str = "BLOCK_SORTED_V6";
    /// LPM trie of IPv4 exceptions that always win over blocks: value [`super::ListRef`].
    pub const ALLOW_V4: &str = "ALLOW_V4";
    /// LPM trie of IPv6 exceptions.
    pub const ALLOW_V6: &str = "ALLOW_V6";
    /// Hash of cgroup ids (u64) whose processes are never refused: value `u8` (unused, 1).
    pub const EXEMPT_CGROUPS: &str = "EXEMPT_CGROUPS";
    /// Hash of justified exemptions (`[[exemptions]]`): key [`super::ExemptionKey`] (a cgroup
    /// or a process, and a list or 0 for every list), value [`super::Grant`], which carries the
    /// expiry the programs compare with the boot clock.
    pub const EXEMPTIONS: &str = "EXEMPTIONS";
    /// One-slot array holding [`super::Settings`].
    pub const SETTINGS: &str = "SETTINGS";
    /// Ring buffer of [`super::BlockEvent`].
    pub const EVENTS: &str = "EVENTS";
    /// Per-CPU array of `u64` counters indexed by [`super::Counter`].
    pub const COUNTERS: &str = "COUNTERS";
    /// Hash of listed domain names: key [`super::DomainKey`] (the name in DNS wire form,
    /// lower case, zero-padded), value [`super::DomainRef`]. The DNS learner looks up every
    /// suffix of an answered name here.
    pub const DOMAINS: &str = "DOMAINS";
    /// LRU hash of IPv4 addresses learned from DNS answers to listed names: key `[u8; 4]`,
    /// value [`super::Learned`].
    pub const LEARNED_V4: &str = "LEARNED_V4";
    /// LRU hash of learned IPv6 addresses: key `[u8; 16]`, value [`super::Learned`].
    pub const LEARNED_V6: &str = "LEARNED_V6";
    /// Array of `[u8; 8]`: one byte per bucket of learned addresses ([`super::learned_slot_v4`],
    /// [`super::learned_slot_v6`]), set by the learner and never cleared while pinned, so an
    /// address in no learned bucket costs one array read on the connect path.
    pub const LEARNED_SEEN: &str = "LEARNED_SEEN";
}

/// Names of the programs in the eBPF object.
pub mod program_names {
    pub const CONNECT4: &str = "vw_connect4";
    pub const CONNECT6: &str = "vw_connect6";
    pub const SENDMSG4: &str = "vw_sendmsg4";
    pub const SENDMSG6: &str = "vw_sendmsg6";
    /// Optional: refuses raw sockets for non-exempt cgroups.
    pub const SOCK_CREATE: &str = "vw_sock_create";
    /// Optional: drops egress packets to blocked ranges (raw sockets, anything the address
    /// hooks do not see).
    pub const EGRESS: &str = "vw_egress";
    /// The DNS learner (cgroup_skb ingress): learns the addresses of listed names from DNS
    /// answers. Needs `bpf_loop` (Linux 5.17).
    pub const DNS_INGRESS: &str = "vw_dns_ingress";
}

/// What the kernel does when a destination matches a list.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Refuse the connection (the caller sees EPERM) and emit an event.
    Enforce = 0,
    /// Allow the connection but emit an event saying it would have been refused.
    Audit = 1,
    /// In events only: allowed because an exemption covers the caller.
    Exempted = 2,
}

impl Action {
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::Enforce),
            1 => Some(Self::Audit),
            2 => Some(Self::Exempted),
            _ => None,
        }
    }
}

/// Value stored in the block and allow tries: which list the prefix came from and what to do.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListRef {
    /// Index of the list in the daemon's list table; 0 is never used so a zeroed value is invalid.
    pub list_id: u16,
    /// An [`Action`] as `u8`.
    pub action: u8,
    /// In the IPv4 trie: the length of the prefix the value is stored under, so the program
    /// can tell whether the trie's match is longer than a /24 from `BLOCK_NETS24_V4`; in an
    /// IPv6 piece, the listed prefix's length. 0 everywhere else.
    pub prefix_len: u8,
}

impl ListRef {
    pub const fn new(list_id: u16, action: Action) -> Self {
        Self {
            list_id,
            action: action as u8,
            prefix_len: 0,
        }
    }

    /// The same reference, tagged with the length of the prefix it is stored under.
    pub const fn with_prefix_len(self, prefix_len: u8) -> Self {
        Self { prefix_len, ..self }
    }
}

/// The most hosts one half of `BLOCK_HOSTS_V4` holds: the programs' binary search
/// takes [`HOST_V4_SEARCH_STEPS`] steps, enough for this many.
pub const HOSTS_V4_MAX: u32 = 1 << 22;

/// Steps of the hosts' binary search: each halves the range, 23 cover 2^23 - 1 entries.
pub const HOST_V4_SEARCH_STEPS: u32 = 23;

// The search's steps cover a full half.
const _: () = assert!(HOSTS_V4_MAX < 1 << HOST_V4_SEARCH_STEPS);

/// A host as `BLOCK_HOSTS_V4` holds it: the address (`u32::from_be_bytes` of its
/// network-order bytes) in the high half, so entries sort by address, and the value packed
/// in the low half.
#[inline(always)]
pub const fn host_v4_entry(addr: u32, value: ListRef) -> u64 {
    (addr as u64) << 32 | (value.list_id as u64) << 16 | (value.action as u64) << 8
}

/// The value of a [`host_v4_entry`].
#[inline(always)]
pub const fn host_v4_value(entry: u64) -> ListRef {
    ListRef {
        list_id: (entry >> 16) as u16,
        action: (entry >> 8) as u8,
        prefix_len: 0,
    }
}

/// One piece of the blocked IPv6 space in `BLOCK_V6`: the addresses whose first `len` bits
/// are those of `hi:lo` (the address as two big-endian halves, so pieces sort by address).
/// `value.prefix_len` is the length of the listed prefix the piece was cut from (the piece is
/// that prefix itself unless a longer listed prefix was cut out of it).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V6Piece {
    pub hi: u64,
    pub lo: u64,
    pub value: ListRef,
    pub len: u8,
    pub _pad: [u8; 3],
}

impl V6Piece {
    /// An element holding only a number in `hi`: the header (active half) and each half's
    /// length.
    pub const fn header(n: u64) -> Self {
        Self {
            hi: n,
            lo: 0,
            value: ListRef {
                list_id: 0,
                action: 0,
                prefix_len: 0,
            },
            len: 0,
            _pad: [0; 3],
        }
    }

    /// Whether the address `hi:lo` lies in this piece.
    #[inline(always)]
    pub const fn holds(&self, hi: u64, lo: u64) -> bool {
        let len = self.len as u32;
        if len == 0 {
            return true;
        }
        if len <= 64 {
            return (hi ^ self.hi) >> (64 - len) == 0;
        }
        hi == self.hi && (lo ^ self.lo) >> (128 - len) == 0
    }

    /// Whether this piece starts after the address `hi:lo`.
    #[inline(always)]
    pub const fn starts_after(&self, hi: u64, lo: u64) -> bool {
        self.hi > hi || (self.hi == hi && self.lo > lo)
    }
}

/// The most pieces one half of `BLOCK_V6` holds: the programs' binary search takes
/// [`V6_SEARCH_STEPS`] steps, enough for this many.
pub const V6_PIECES_MAX: u32 = 1 << 22;

/// Steps of the IPv6 binary search.
pub const V6_SEARCH_STEPS: u32 = 23;

const _: () = assert!(V6_PIECES_MAX < 1 << V6_SEARCH_STEPS);

/// The /16s whose /24s `BLOCK_DENSE24_V4` holds in dense form (every one).
pub const DENSE24_CHUNKS: u32 = 1 << 16;

/// A /16's 256 /24s in `BLOCK_DENSE24_V4`, one [`dense24_byte`] each.
pub type Dense24Chunk = [u8; 256];

/// The chunk of `BLOCK_DENSE24_V4` holding the /24 of `addr`, and the byte in it.
#[inline(always)]
pub const fn dense24_slot(addr: [u8; 4]) -> (u32, usize) {
    (
        1 + ((addr[0] as u32) << 8 | addr[1] as u32),
        addr[2] as usize,
    )
}

/// The highest list id a dense /24 byte can name: seven bits, beside the action's one.
pub const DENSE24_MAX_LIST: u16 = 127;

/// A /24's value as its dense byte: `list_id << 1 | audit`, 0 for "not listed". `None` when
/// it has no byte form (a list id above [`DENSE24_MAX_LIST`] or 0, an action other than
/// enforce or audit): such a set stays in the hash.
#[inline(always)]
pub const fn dense24_byte(value: ListRef) -> Option<u8> {
    if value.list_id == 0 || value.list_id > DENSE24_MAX_LIST || value.action > Action::Audit as u8
    {
        return None;
    }
    Some((value.list_id as u8) << 1 | value.action)
}

/// The value a dense /24 byte stands for; `None` for 0 (not listed).
#[inline(always)]
pub const fn dense24_value(byte: u8) -> Option<ListRef> {
    if byte >> 1 == 0 {
        return None;
    }
    Some(ListRef {
        list_id: (byte >> 1) as u16,
        action: byte & 1,
        prefix_len: 0,
    })
}

/// Words in `BLOCK_SEEN_V4`: 2^24 bits, one per IPv4 /24.
pub const SEEN_V4_WORDS: u32 = 1 << 18;

/// Where the bit of the /24 holding `addr` (network-order bytes) lives in `BLOCK_SEEN_V4`:
/// (word index, mask).
#[inline(always)]
pub const fn seen_v4_slot(addr: [u8; 4]) -> (u32, u64) {
    let block = (addr[0] as u32) << 16 | (addr[1] as u32) << 8 | addr[2] as u32;
    (block >> 6, 1u64 << (block & 63))
}

/// Global settings the daemon writes into the `SETTINGS` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Bit set of `SETTING_*` flags.
    pub flags: u32,
    /// A learned address is kept at least this long (seconds), whatever the answer's TTL.
    pub learned_min_ttl_s: u32,
    /// ... and at most this long, whatever TTL a (possibly hostile) answer claims.
    pub learned_max_ttl_s: u32,
    pub _pad: u32,
}

/// Longest listed domain name, in DNS wire form (length-prefixed labels, no root byte): 64
/// bytes hold every vendor name seen so far (the longest shipped is 30) and keep the learner's
/// per-suffix key build at eight word copies.
pub const DOMAIN_KEY_LEN: usize = 64;

/// Key of the `DOMAINS` map: a listed name in DNS wire form, lower case, zero-padded.
/// `kaspersky.com` is `\x09kaspersky\x03com` followed by zeros.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DomainKey {
    pub wire: [u8; DOMAIN_KEY_LEN],
}

/// Value of the `DOMAINS` map: which list names the domain, its action, and the domain's
/// number in the daemon's table (for events and `check`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainRef {
    pub list_id: u16,
    /// An [`Action`] as `u8`.
    pub action: u8,
    /// `DOMAIN_*` flags.
    pub flags: u8,
    /// Index of the name in the daemon's domain table; 0 is never used.
    pub domain_id: u32,
}

/// The list allows learning loopback, private, link-local and unspecified answers.
pub const DOMAIN_LEARN_PRIVATE: u8 = 1 << 0;

/// Who an exemption covers: `EXEMPTIONS` key.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExemptionKey {
    /// A cgroup id ([`EXEMPT_CGROUP`]) or a process id, the kernel's tgid ([`EXEMPT_PROCESS`]).
    pub subject: u64,
    /// The list exempted from, or 0 for every list.
    pub list_id: u16,
    /// [`EXEMPT_CGROUP`] or [`EXEMPT_PROCESS`].
    pub kind: u8,
    pub _pad: [u8; 5],
}

/// [`ExemptionKey::kind`]: `subject` is a cgroup id.
pub const EXEMPT_CGROUP: u8 = 1;
/// [`ExemptionKey::kind`]: `subject` is a tgid, whose `comm` must equal [`Grant::comm`] (so a
/// reused pid does not inherit an exemption).
pub const EXEMPT_PROCESS: u8 = 2;

impl ExemptionKey {
    pub const fn new(kind: u8, subject: u64, list_id: u16) -> Self {
        Self {
            subject,
            list_id,
            kind,
            _pad: [0; 5],
        }
    }
}

/// `EXEMPTIONS` value: which exemption applies and until when. Where several exemptions cover
/// the same key the daemon writes the one that ends last, so the key is covered exactly while
/// any of them is.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Boot-clock time (`bpf_ktime_get_boot_ns`) from which the programs ignore the entry.
    pub expires_ns: u64,
    /// The exemption's number, reported in events (1-based, in the daemon's table).
    pub slot: u16,
    pub _pad: [u8; 6],
    /// For a process: its `comm` when the daemon found it, NUL-padded.
    pub comm: [u8; COMM_LEN],
}

/// Value of the learned-address maps.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Learned {
    pub list_id: u16,
    /// An [`Action`] as `u8`.
    pub action: u8,
    pub _pad: u8,
    /// The listed domain (from [`DomainRef`]) whose answer held the address.
    pub domain_id: u32,
    /// `bpf_ktime_get_boot_ns()` of the last answer that carried the address.
    pub learned_ns: u64,
    /// Boot-clock time after which the programs ignore the entry (the daemon deletes it).
    pub expires_ns: u64,
}

/// Answers a listed name must not make unreachable unless its list allows it: this host
/// (0/8, 127/8), private and shared networks (10/8, 100.64/10, 172.16/12, 192.168/16),
/// link-local (169.254/16), multicast and reserved (224/3). The learner and the daemon's warm
/// start both decide with this.
#[inline(always)]
pub const fn special_v4(ip: [u8; 4]) -> bool {
    let [a, b, ..] = ip;
    a == 0
        || a == 10
        || a == 127
        || a >= 224
        || (a == 100 && b & 0xc0 == 64)
        || (a == 169 && b == 254)
        || (a == 172 && b & 0xf0 == 16)
        || (a == 192 && b == 168)
}

/// The IPv6 forms of the same: unspecified, loopback, IPv4-mapped of a special IPv4 address,
/// unique local (fc00::/7), link-local (fe80::/10), multicast (ff00::/8).
#[inline(always)]
pub const fn special_v6(ip: &[u8; 16]) -> bool {
    let mut zero_head = true;
    let mut i = 0;
    while i < 10 {
        zero_head &= ip[i] == 0;
        i += 1;
    }
    if zero_head
        && ip[10] == 0
        && ip[11] == 0
        && ip[12] == 0
        && ip[13] == 0
        && ip[14] == 0
        && ip[15] <= 1
    {
        return true;
    }
    if zero_head && ip[10] == 0xff && ip[11] == 0xff {
        return special_v4([ip[12], ip[13], ip[14], ip[15]]);
    }
    ip[0] & 0xfe == 0xfc || (ip[0] == 0xfe && ip[1] & 0xc0 == 0x80) || ip[0] == 0xff
}

/// Words in `LEARNED_SEEN` (one byte per bucket, 2^21 buckets: 2 MiB).
pub const LEARNED_SEEN_WORDS: u32 = 1 << 18;

/// The bucket of a learned IPv4 address: its /21. Returns (word, byte in word).
#[inline(always)]
pub const fn learned_slot_v4(addr: [u8; 4]) -> (u32, u32) {
    let bucket = ((addr[0] as u32) << 13) | ((addr[1] as u32) << 5) | ((addr[2] as u32) >> 3);
    (bucket >> 3, bucket & 7)
}

/// The bucket of a learned IPv6 address: a multiplicative hash of its /64.
#[inline(always)]
pub const fn learned_slot_v6(addr: [u8; 16]) -> (u32, u32) {
    let net = u64::from_be_bytes([
        addr[0], addr[1], addr[2], addr[3], addr[4], addr[5], addr[6], addr[7],
    ]);
    let bucket = ((net ^ (net >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 43) as u32;
    (bucket >> 3, bucket & 7)
}

/// Treat `64:ff9b::/96` (NAT64 well-known prefix) destinations as the embedded IPv4 address.
pub const SETTING_NAT64: u32 = 1 << 0;
/// Treat `2002::/16` (6to4) destinations as the embedded IPv4 address.
pub const SETTING_6TO4: u32 = 1 << 1;
/// Audit every match, whatever the list's action (`--dry-run`).
pub const SETTING_DRY_RUN: u32 = 1 << 2;

/// Indexes into the per-CPU `COUNTERS` array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Every call of any hook.
    Checked = 0,
    /// Connections refused.
    Blocked = 1,
    /// Matches allowed because the list (or the whole daemon) is in audit mode.
    Audited = 2,
    /// Events lost because the ring buffer was full.
    EventsDropped = 3,
    /// Raw sockets refused by the optional sock_create guard.
    RawSocketsRefused = 4,
    /// Packets dropped by the optional egress backstop.
    EgressDropped = 5,
    /// DNS responses the learner parsed to the end (listed or not).
    DnsResponses = 6,
    /// DNS responses the learner skipped as malformed or beyond its limits.
    DnsMalformed = 7,
    /// Addresses written (or refreshed) in the learned maps.
    Learned = 8,
    /// Answers to listed names not learned: loopback, private, link-local, unspecified.
    LearnedRefused = 9,
    /// Listed destinations let through because an exemption (or an exempt cgroup) covers the
    /// caller.
    Exempted = 10,
}

/// Number of slots in the `COUNTERS` array.
pub const COUNTER_SLOTS: u32 = 11;

/// The hook that saw the connection attempt.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Connect4 = 1,
    Connect6 = 2,
    Sendmsg4 = 3,
    Sendmsg6 = 4,
    /// A raw socket refused at creation (no destination yet).
    SockCreate = 5,
}

impl Hook {
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Connect4),
            2 => Some(Self::Connect6),
            3 => Some(Self::Sendmsg4),
            4 => Some(Self::Sendmsg6),
            5 => Some(Self::SockCreate),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Connect4 => "connect4",
            Self::Connect6 => "connect6",
            Self::Sendmsg4 => "sendmsg4",
            Self::Sendmsg6 => "sendmsg6",
            Self::SockCreate => "sock_create",
        }
    }
}

/// `AF_INET`, as the kernel numbers it.
pub const FAMILY_INET: u8 = 2;
/// `AF_INET6`, as the kernel numbers it.
pub const FAMILY_INET6: u8 = 10;

/// Length of a task's `comm`, including the trailing NUL (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

/// One blocked (or audited) connection attempt, written by the kernel into the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockEvent {
    /// `bpf_ktime_get_boot_ns()`: nanoseconds since boot, including suspend.
    pub boot_ns: u64,
    /// cgroup v2 id of the calling task.
    pub cgroup_id: u64,
    /// Process id (the kernel's tgid).
    pub pid: u32,
    /// Thread id (the kernel's pid).
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Destination as the caller gave it: IPv4 in the first 4 bytes (network order) when
    /// `family` is `FAMILY_INET`, otherwise the 16 IPv6 bytes.
    pub addr: [u8; 16],
    /// Destination port in host byte order.
    pub port: u16,
    /// `FAMILY_INET` or `FAMILY_INET6`: the family of the socket address the caller passed.
    pub family: u8,
    /// IP protocol of the socket (6 TCP, 17 UDP, ...).
    pub protocol: u8,
    /// A [`Hook`] as `u8`.
    pub hook: u8,
    /// An [`Action`] as `u8`: what the kernel did.
    pub action: u8,
    /// The list whose prefix matched.
    pub list_id: u16,
    /// The calling task's `comm`, NUL-padded.
    pub comm: [u8; COMM_LEN],
    /// When the match came from a learned address: the listed domain's number; else 0.
    /// (Appended after `comm` so records of older programs, 72 bytes, still decode.)
    pub domain_id: u32,
    /// When `action` is [`Action::Exempted`]: the [`Grant::slot`] of the exemption (0: an
    /// `[exempt]` cgroup). (Was padding: older records hold 0.)
    pub exemption: u16,
    pub _pad: u16,
    /// When the match came from a learned address: when it was learned (boot clock).
    pub learned_ns: u64,
}

/// Size of the event records of programs older than the DNS learner.
pub const BLOCK_EVENT_V1_LEN: usize = 72;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are `#[repr(C)]`, contain only integers and byte arrays, and have
    // explicit padding fields, so every bit pattern is valid and there is no uninitialized padding.
    unsafe impl aya::Pod for super::ListRef {}
    unsafe impl aya::Pod for super::V6Piece {}
    unsafe impl aya::Pod for super::Settings {}
    unsafe impl aya::Pod for super::BlockEvent {}
    unsafe impl aya::Pod for super::DomainKey {}
    unsafe impl aya::Pod for super::DomainRef {}
    unsafe impl aya::Pod for super::Learned {}
    unsafe impl aya::Pod for super::ExemptionKey {}
    unsafe impl aya::Pod for super::Grant {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<ListRef>(), 4);
        assert_eq!(core::mem::size_of::<V6Piece>(), 24);
        assert_eq!(core::mem::size_of::<Settings>(), 16);
        // 8+8 + 4*4 + 16 + 2+1+1+1+1+2 + 16 = 72, then domain 4+4 and learned_ns 8.
        assert_eq!(core::mem::size_of::<BlockEvent>(), 88);
        assert_eq!(core::mem::size_of::<ExemptionKey>(), 16);
        assert_eq!(core::mem::size_of::<Grant>(), 32);
        assert_eq!(
            core::mem::offset_of!(BlockEvent, domain_id),
            BLOCK_EVENT_V1_LEN
        );
        assert_eq!(core::mem::size_of::<DomainRef>(), 8);
        assert_eq!(core::mem::size_of::<Learned>(), 24);
        assert_eq!(core::mem::size_of::<DomainKey>(), DOMAIN_KEY_LEN);
    }

    #[test]
    fn host_entries_sort_by_address_and_keep_their_value() {
        let a = host_v4_entry(0x0a00_0001, ListRef::new(65535, Action::Audit));
        let b = host_v4_entry(0x0a00_0002, ListRef::new(1, Action::Enforce));
        assert!(a < b);
        assert_eq!(a >> 32, 0x0a00_0001);
        assert_eq!(host_v4_value(a), ListRef::new(65535, Action::Audit));
        assert_eq!(host_v4_value(b), ListRef::new(1, Action::Enforce));
    }

    #[test]
    fn dense24_bytes_round_trip_and_refuse_what_they_cannot_hold() {
        for list_id in 1..=DENSE24_MAX_LIST {
            for action in [Action::Enforce, Action::Audit] {
                let value = ListRef::new(list_id, action);
                let byte = dense24_byte(value).expect("fits");
                assert_ne!(byte, 0);
                assert_eq!(dense24_value(byte), Some(value));
            }
        }
        assert_eq!(dense24_value(0), None);
        assert_eq!(dense24_value(1), None);
        assert_eq!(dense24_byte(ListRef::new(0, Action::Enforce)), None);
        assert_eq!(dense24_byte(ListRef::new(128, Action::Enforce)), None);
        assert_eq!(dense24_byte(ListRef::new(1, Action::Exempted)), None);
        assert_eq!(dense24_slot([0, 0, 7, 1]), (1, 7));
        assert_eq!(dense24_slot([255, 255, 255, 0]), (DENSE24_CHUNKS, 255));
    }

    #[test]
    fn enums_round_trip() {
        for hook in [
            Hook::Connect4,
            Hook::Connect6,
            Hook::Sendmsg4,
            Hook::Sendmsg6,
        ] {
            assert_eq!(Hook::from_u8(hook as u8), Some(hook));
        }
        assert_eq!(Hook::from_u8(0), None);
        assert_eq!(Action::from_u8(Action::Audit as u8), Some(Action::Audit));
        assert_eq!(Action::from_u8(7), None);
    }

    #[test]
    fn special_answers_are_recognised() {
        assert!(
            special_v4([127, 0, 0, 1]) && special_v4([10, 1, 2, 3]) && special_v4([100, 64, 0, 1])
        );
        assert!(!special_v4([198, 51, 100, 1]) && !special_v4([100, 128, 0, 1]));
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[192, 168, 1, 1]);
        assert!(special_v6(&mapped));
        mapped[12..].copy_from_slice(&[198, 51, 100, 1]);
        assert!(!special_v6(&mapped));
        let mut loopback = [0u8; 16];
        loopback[15] = 1;
        assert!(special_v6(&loopback));
        assert!(!special_v6(&[
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7
        ]));
    }

    #[test]
    fn learned_buckets_stay_in_the_array() {
        assert_eq!(
            learned_slot_v4([255, 255, 255, 255]),
            (LEARNED_SEEN_WORDS - 1, 7)
        );
        assert_eq!(learned_slot_v4([0, 0, 7, 1]), (0, 0));
        assert_eq!(learned_slot_v4([0, 0, 8, 0]), (0, 1));
        let (word, byte) = learned_slot_v6([0xff; 16]);
        assert!(word < LEARNED_SEEN_WORDS && byte < 8);
    }

    #[test]
    fn every_slash24_has_its_own_seen_bit() {
        assert_eq!(seen_v4_slot([0, 0, 0, 9]), (0, 1));
        assert_eq!(seen_v4_slot([0, 0, 63, 0]), (0, 1 << 63));
        assert_eq!(seen_v4_slot([0, 0, 64, 0]), (1, 1));
        // The last /24 is the last bit of the last word.
        assert_eq!(
            seen_v4_slot([255, 255, 255, 1]),
            (SEEN_V4_WORDS - 1, 1 << 63)
        );
    }
}
