//! The DNS learner: a `cgroup_skb` ingress program that reads DNS responses (source port 53,
//! UDP, or TCP with the message in one segment) before they reach the socket, matches the
//! question name and every CNAME target against the listed names (`DOMAINS`, each suffix of
//! the name, longest first), and writes the A and AAAA answers of a listed name into the
//! learned maps. The connect and sendmsg programs consult those maps after the prefix tiers, so
//! the application's first `connect()` after it reads the answer is already refused.
//!
//! It never drops or changes a packet: the program always returns 1 (pass).
//!
//! # Shape forced by the verifier
//! A name can take 255 bytes, follow 16 compression pointers, and a message holds up to 32
//! answers: unrolled or as bounded loops, that is far beyond the verifier's one million
//! instructions (it walks every iteration of a bounded loop). So the parse is a state machine
//! advanced one small step per `bpf_loop` iteration (the verifier checks the callback once),
//! over a copy of the message in a per-CPU scratch map (the stack holds 512 bytes).
//! Every index into the copy is masked to the buffer and compared with the message length.
//!
//! # Minimum kernel
//! 5.17 (`bpf_loop`). On older kernels this program fails to load; the daemon says so and
//! enforces the prefix lists alone.

use core::{ffi::c_void, ptr};

use aya_ebpf::{
    helpers::{bpf_ktime_get_boot_ns, bpf_loop, bpf_skb_load_bytes},
    macros::{cgroup_skb, map},
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
    programs::SkBuffContext,
};
use blocker_common::{
    Action, Counter, DOMAIN_KEY_LEN, DOMAIN_LEARN_PRIVATE, DomainKey, DomainRef,
    LEARNED_SEEN_WORDS, Learned, learned_slot_v4, learned_slot_v6, special_v4, special_v6,
};

use crate::{NO_PREALLOC, SETTINGS, bump};

/// `BPF_F_MMAPABLE`: the daemon sets buckets of addresses it learns itself (warm start).
const MMAPABLE: u32 = 1 << 10;

#[map]
pub static DOMAINS: HashMap<DomainKey, DomainRef> = HashMap::with_max_entries(1 << 16, NO_PREALLOC);
#[map]
pub static LEARNED_V4: LruHashMap<[u8; 4], Learned> = LruHashMap::with_max_entries(1 << 14, 0);
#[map]
pub static LEARNED_V6: LruHashMap<[u8; 16], Learned> = LruHashMap::with_max_entries(1 << 14, 0);
/// One byte per bucket. Bytes, not bits: the program cannot OR a bit into a shared word
/// atomically on every kernel this runs on, and two CPUs storing whole words could lose each
/// other's bit; a byte store cannot.
#[map]
pub static LEARNED_SEEN: Array<[u8; 8]> = Array::with_max_entries(LEARNED_SEEN_WORDS, MMAPABLE);
#[map]
static DNS_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Message bytes kept: a mask, so every index is provably inside the copy.
const MSG_MASK: u32 = 2047;
/// Steps of one parse. A legitimate answer takes a few hundred; the bound caps what a
/// hostile packet can cost.
const MAX_STEPS: u32 = 2048;
/// Answers read per message.
const MAX_ANSWERS: u32 = 32;
/// Compression pointers followed per name.
const MAX_JUMPS: u32 = 16;
/// DNS's limit on a name in wire form, without the root byte.
const MAX_NAME: u32 = 255;

const DNS_PORT: u16 = 53;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

// Parse phases (an if-chain below, not a `match`: a jump table is not BPF every kernel takes).
const P_HEADER: u32 = 0;
const P_LABEL: u32 = 1;
const P_BYTES: u32 = 2;
const P_MATCH: u32 = 3;
const P_ANSWER: u32 = 4;
const P_FIXED: u32 = 5;

// What the name being read is for.
const FOR_QUESTION: u32 = 0;
const FOR_CNAME: u32 = 1;
const FOR_SKIP: u32 = 2;

const CONTINUE: i64 = 0;
const STOP: i64 = 1;

/// The parse state, one per CPU. cgroup_skb ingress runs in softirq context with migration
/// disabled and is not re-entered on a CPU, so one copy per CPU suffices.
#[repr(C)]
pub struct Scratch {
    /// The message, with 8 bytes of slack for the word copies of `P_BYTES`.
    msg: [u8; MSG_MASK as usize + 1 + 8],
    /// The name being read, lower case, in wire form without compression; room past 255 for
    /// the word-wide copies and key windows.
    name: [u8; 512],
    /// Where each label of `name` starts.
    starts: [u8; 128],
    key: DomainKey,
    /// The listed name this message answers (domain_id 0: none yet).
    listed: DomainRef,
    now: u64,
    len: u32,
    pos: u32,
    phase: u32,
    answers_left: u32,
    name_len: u32,
    labels: u32,
    label_left: u32,
    /// Where the message continues after the name: set at its end or first pointer (0: unset).
    resume: u32,
    /// Where the part of the name being read starts (its first label, or a pointer's target),
    /// and the offset it must stay below (the start of the part that pointed here).
    segment: u32,
    limit: u32,
    jumps: u32,
    purpose: u32,
    match_index: u32,
    rdata_end: u32,
    done: u32,
}

#[cgroup_skb(ingress)]
pub fn vw_dns_ingress(ctx: SkBuffContext) -> i32 {
    if let Some((offset, len)) = dns_message(&ctx) {
        learn(&ctx, offset, len);
    }
    1
}

/// Where the DNS message of a response is: (offset from the IP header, length). `None` for
/// everything else, which is nearly every packet.
#[inline(always)]
fn dns_message(ctx: &SkBuffContext) -> Option<(u32, u32)> {
    let (protocol, l4) = from_dns_port(ctx)?;
    let total = ctx.len();
    if protocol == PROTO_UDP {
        let offset = l4 + 8;
        return Some((offset, total.checked_sub(offset)?));
    }
    // TCP: the message follows a two-byte length; it must be whole in this segment.
    let doff: u8 = ctx.load(l4 as usize + 12).ok()?;
    let payload = l4 + u32::from(doff >> 4) * 4;
    let length: [u8; 2] = ctx.load(payload as usize).ok()?;
    let length = u32::from(u16::from_be_bytes(length));
    if payload + 2 + length > total {
        bump(Counter::DnsMalformed);
        return None;
    }
    Some((payload + 2, length))
}

/// UDP or TCP from source port 53: (protocol, offset of the transport header). Reads the
/// packet directly when its headers are in the linear part, as they are for nearly every
/// packet, so the common case (not DNS) costs no helper call.
#[inline(always)]
fn from_dns_port(ctx: &SkBuffContext) -> Option<(u8, u32)> {
    // SAFETY: the context is a valid __sk_buff; data and data_end are readable in cgroup_skb.
    let (data, end) = unsafe {
        (
            (*ctx.skb.skb).data as usize,
            (*ctx.skb.skb).data_end as usize,
        )
    };
    if data + 42 > end {
        return from_dns_port_loaded(ctx);
    }
    let packet = data as *const u8;
    // SAFETY: every offset read below is under 42, checked to be inside the packet.
    let at = |offset: usize| unsafe { *packet.add(offset) };
    let (protocol, l4) = ip_transport(at(0), at(9), u16::from_be_bytes([at(6), at(7)]), at(6))?;
    let sport = if l4 == 20 {
        u16::from_be_bytes([at(20), at(21)])
    } else if l4 == 40 {
        u16::from_be_bytes([at(40), at(41)])
    } else {
        // IPv4 options: rare enough for a helper call.
        u16::from_be_bytes(ctx.load::<[u8; 2]>(l4 as usize).ok()?)
    };
    (sport == DNS_PORT).then_some((protocol, l4))
}

/// [`from_dns_port`] through `bpf_skb_load_bytes`, for short or non-linear packets.
#[inline(never)]
fn from_dns_port_loaded(ctx: &SkBuffContext) -> Option<(u8, u32)> {
    let first: u8 = ctx.load(0).ok()?;
    let frag: [u8; 2] = ctx.load(6).ok()?;
    let v4_proto: u8 = ctx.load(9).ok()?;
    let (protocol, l4) = ip_transport(first, v4_proto, u16::from_be_bytes(frag), frag[0])?;
    let sport: [u8; 2] = ctx.load(l4 as usize).ok()?;
    (u16::from_be_bytes(sport) == DNS_PORT).then_some((protocol, l4))
}

/// The transport protocol and header offset from the IP header's fields.
#[inline(always)]
fn ip_transport(first: u8, v4_proto: u8, v4_frag: u16, v6_next: u8) -> Option<(u8, u32)> {
    let (protocol, l4) = match first >> 4 {
        // Fragments (more-fragments flag or an offset) are skipped: their first part holds
        // only the start of the message.
        4 if v4_frag & 0x3fff == 0 => (v4_proto, u32::from(first & 0xf) * 4),
        // IPv6 extension headers before the transport are not followed (documented).
        6 => (v6_next, 40),
        _ => return None,
    };
    (protocol == PROTO_UDP || protocol == PROTO_TCP).then_some((protocol, l4))
}

/// Copies the message into the scratch map and runs the parse.
#[inline(always)]
fn learn(ctx: &SkBuffContext, offset: u32, len: u32) {
    let Some(scratch) = DNS_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: the per-CPU value is ours for the duration of this program (see `Scratch`).
    let s = unsafe { &mut *scratch };
    // Masked first, then tested: the verifier needs a length it can prove is 12..=2047.
    let len = len.min(MSG_MASK) & MSG_MASK;
    if len < 12 {
        bump(Counter::DnsMalformed);
        return;
    }
    // SAFETY: the destination is the scratch map's buffer, `len` bytes fit in it.
    let copied =
        unsafe { bpf_skb_load_bytes(ctx.skb.skb.cast(), offset, s.msg.as_mut_ptr().cast(), len) };
    if copied != 0 {
        return;
    }
    s.len = len;
    s.pos = 0;
    s.phase = P_HEADER;
    s.done = 0;
    s.listed = DomainRef {
        list_id: 0,
        action: 0,
        flags: 0,
        domain_id: 0,
    };
    // SAFETY: helper without arguments.
    s.now = unsafe { bpf_ktime_get_boot_ns() };
    // SAFETY: `step` is a static callback with the signature bpf_loop expects; it reaches its
    // state through the scratch map, so no context pointer is passed.
    unsafe { bpf_loop(MAX_STEPS, step as *mut c_void, ptr::null_mut(), 0) };
    if s.done == 0 {
        bump(Counter::DnsMalformed);
    }
}

/// One step of the parse. Returns `STOP` when the message is done or malformed.
#[inline(never)]
extern "C" fn step(_index: u64, _ctx: *mut c_void) -> i64 {
    let Some(scratch) = DNS_SCRATCH.get_ptr_mut(0) else {
        return STOP;
    };
    // SAFETY: as in `learn`.
    let s = unsafe { &mut *scratch };
    let phase = s.phase;
    let ok = if phase == P_HEADER {
        header(s)
    } else if phase == P_LABEL {
        label(s)
    } else if phase == P_BYTES {
        label_bytes(s)
    } else if phase == P_MATCH {
        match_suffix(s)
    } else if phase == P_ANSWER {
        if s.answers_left == 0 {
            s.done = 1;
            bump(Counter::DnsResponses);
            return STOP;
        }
        s.answers_left -= 1;
        start_name(s, FOR_SKIP);
        true
    } else if phase == P_FIXED {
        answer(s)
    } else {
        false
    };
    if ok {
        CONTINUE
    } else {
        // Malformed, or not a response worth reading: `done` stays 0 unless set.
        STOP
    }
}

#[inline(always)]
fn byte(s: &Scratch, at: u32) -> Option<u8> {
    (at < s.len).then(|| s.msg[(at & MSG_MASK) as usize])
}

#[inline(always)]
fn be16(s: &Scratch, at: u32) -> Option<u16> {
    Some(u16::from_be_bytes([byte(s, at)?, byte(s, at + 1)?]))
}

/// A standard query response without error, one question, at least one answer.
#[inline(always)]
fn header(s: &mut Scratch) -> bool {
    let (Some(flags), Some(rcode), Some(questions), Some(answers)) =
        (byte(s, 2), byte(s, 3), be16(s, 4), be16(s, 6))
    else {
        return false;
    };
    let response = flags & 0x80 != 0;
    let opcode = (flags >> 3) & 0xf;
    if !response || opcode != 0 || rcode & 0xf != 0 || questions != 1 || answers == 0 {
        // Not an answer: nothing to learn, not malformed either.
        s.done = 1;
        return false;
    }
    s.answers_left = u32::from(answers).min(MAX_ANSWERS);
    s.pos = 12;
    start_name(s, FOR_QUESTION);
    true
}

#[inline(always)]
fn start_name(s: &mut Scratch, purpose: u32) {
    s.purpose = purpose;
    s.name_len = 0;
    s.labels = 0;
    s.resume = 0;
    s.jumps = 0;
    s.segment = s.pos;
    s.limit = u32::MAX;
    s.phase = P_LABEL;
}

/// One label header: the end of the name, a compression pointer, or a label's length.
#[inline(always)]
fn label(s: &mut Scratch) -> bool {
    let pos = s.pos;
    // What a pointer leads to must lie wholly before the part of the name that pointed there.
    if pos >= s.limit {
        return false;
    }
    let Some(b) = byte(s, pos) else {
        return false;
    };
    if b == 0 {
        if s.resume == 0 {
            s.resume = pos + 1;
        }
        return end_name(s);
    }
    if b & 0xc0 == 0xc0 {
        let Some(low) = byte(s, pos + 1) else {
            return false;
        };
        let target = (u32::from(b & 0x3f) << 8) | u32::from(low);
        // Only to before the part being read (RFC 1035: "a prior occurrence"): each jump goes
        // strictly backwards, which alone ends every pointer loop.
        if target >= s.segment || s.jumps >= MAX_JUMPS {
            return false;
        }
        if s.resume == 0 {
            s.resume = pos + 2;
        }
        s.jumps += 1;
        s.limit = s.segment;
        s.segment = target;
        s.pos = target;
        return true;
    }
    if b & 0xc0 != 0 {
        // Extended label types (RFC 6891 obsoleted them): never in an answer.
        return false;
    }
    let len = u32::from(b);
    if s.name_len + 1 + len > MAX_NAME {
        return false;
    }
    if s.purpose == FOR_SKIP {
        s.name_len += 1 + len;
        s.pos = pos + 1 + len;
        return true;
    }
    if s.labels >= 127 {
        return false;
    }
    s.starts[(s.labels & 127) as usize] = s.name_len as u8;
    s.labels += 1;
    s.name[(s.name_len & 255) as usize] = b;
    s.name_len += 1;
    s.label_left = len;
    s.pos = pos + 1;
    s.phase = P_BYTES;
    true
}

/// Up to eight bytes of a label, lower-cased, into `name`.
#[inline(always)]
fn label_bytes(s: &mut Scratch) -> bool {
    if s.label_left == 0 {
        s.phase = P_LABEL;
        return true;
    }
    let n = s.label_left.min(8);
    if s.pos + n > s.len {
        return false;
    }
    let from = (s.pos & MSG_MASK) as usize;
    let to = (s.name_len & 255) as usize;
    // SAFETY: `from + 8` and `to + 8` are inside the arrays (their slack); bytes past `n` are
    // overwritten by the next label or masked off when a key is built.
    unsafe {
        let word = ptr::read_unaligned(s.msg.as_ptr().add(from).cast::<u64>());
        ptr::write_unaligned(s.name.as_mut_ptr().add(to).cast::<u64>(), lowercase(word));
    }
    s.name_len += n;
    s.pos += n;
    s.label_left -= n;
    true
}

/// ASCII `A`-`Z` to `a`-`z` in all eight bytes at once; every other byte unchanged.
#[inline(always)]
fn lowercase(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = word & !HIGH;
    // High bit of each byte: set when its low 7 bits are >= 'A', and when they are > 'Z'.
    let ge_a = low7 + ONES * (0x80 - b'A' as u64);
    let gt_z = low7 + ONES * (0x80 - b'Z' as u64 - 1);
    let upper = ge_a & !gt_z & !word & HIGH;
    word | (upper >> 2)
}

#[inline(always)]
fn end_name(s: &mut Scratch) -> bool {
    if s.purpose == FOR_SKIP {
        s.pos = s.resume;
        s.phase = P_FIXED;
    } else {
        s.match_index = 0;
        s.phase = P_MATCH;
    }
    true
}

/// Looks up one suffix of `name`, longest first; the first listed one is the match.
#[inline(always)]
fn match_suffix(s: &mut Scratch) -> bool {
    let index = s.match_index;
    if index >= s.labels {
        return after_match(s);
    }
    s.match_index = index + 1;
    let start = u32::from(s.starts[(index & 127) as usize]);
    let Some(len) = s.name_len.checked_sub(start) else {
        return false;
    };
    if len as usize > DOMAIN_KEY_LEN {
        return true;
    }
    let from = (start & 255) as usize;
    for w in 0..DOMAIN_KEY_LEN / 8 {
        // SAFETY: `from + 64` is inside `name` (512 bytes, `from` <= 255).
        let word = unsafe { ptr::read_unaligned(s.name.as_ptr().add(from + w * 8).cast::<u64>()) };
        let left = len as i64 - (w as i64) * 8;
        let keep = if left >= 8 {
            u64::MAX
        } else if left <= 0 {
            0
        } else {
            (1u64 << (left * 8)) - 1
        };
        // SAFETY: w < 8, inside the 64-byte key.
        unsafe {
            ptr::write_unaligned(
                s.key.wire.as_mut_ptr().add(w * 8).cast::<u64>(),
                word & keep,
            )
        };
    }
    // SAFETY: the key is plain bytes; the value is copied out at once.
    if let Some(found) = unsafe { DOMAINS.get(&s.key) } {
        let found = *found;
        let listed = s.listed;
        if listed.domain_id == 0
            || (found.action == Action::Enforce as u8 && listed.action != Action::Enforce as u8)
        {
            s.listed = found;
        }
        return after_match(s);
    }
    true
}

#[inline(always)]
fn after_match(s: &mut Scratch) -> bool {
    if s.purpose == FOR_QUESTION {
        // QTYPE and QCLASS follow the name.
        s.pos = s.resume + 4;
        if s.pos > s.len {
            return false;
        }
    } else {
        // A CNAME's target must end exactly where its data does: one that runs on into the
        // next record is malformed, and so is everything read after it.
        if s.resume != s.rdata_end {
            return false;
        }
        s.pos = s.rdata_end;
    }
    s.phase = P_ANSWER;
    true
}

/// An answer's fixed part (type, class, TTL, length) and its data.
#[inline(always)]
fn answer(s: &mut Scratch) -> bool {
    let pos = s.pos;
    let (Some(kind), Some(class), Some(ttl_hi), Some(ttl_lo), Some(rdlen)) = (
        be16(s, pos),
        be16(s, pos + 2),
        be16(s, pos + 4),
        be16(s, pos + 6),
        be16(s, pos + 8),
    ) else {
        return false;
    };
    let rdata = pos + 10;
    let rdata_end = rdata + u32::from(rdlen);
    if rdata_end > s.len {
        return false;
    }
    s.rdata_end = rdata_end;
    let ttl = (u32::from(ttl_hi) << 16) | u32::from(ttl_lo);
    if class == CLASS_IN && s.listed.domain_id != 0 {
        let at = (rdata & MSG_MASK) as usize;
        if kind == TYPE_A && rdlen == 4 {
            // SAFETY: `at + 4` is inside the copy (its slack past the mask).
            let ip: [u8; 4] = unsafe { ptr::read_unaligned(s.msg.as_ptr().add(at).cast()) };
            learn_v4(s, ip, ttl);
        } else if kind == TYPE_AAAA && rdlen == 16 {
            let ip = read16(s, at);
            learn_v6(s, ip, ttl);
        }
    }
    if class == CLASS_IN && kind == TYPE_CNAME {
        s.pos = rdata;
        start_name(s, FOR_CNAME);
        return true;
    }
    s.pos = rdata_end;
    s.phase = P_ANSWER;
    true
}

/// Sixteen bytes at `at`, which `answer` checked lie inside the message (`at + 16 <= len`,
/// len <= 2047), so `at` <= 2031 and both halves stay inside the buffer.
#[inline(always)]
fn read16(s: &Scratch, at: usize) -> [u8; 16] {
    let at = at.min(MSG_MASK as usize - 15);
    // SAFETY: at + 16 <= 2048 < the buffer's 2056 bytes.
    unsafe { ptr::read_unaligned(s.msg.as_ptr().add(at).cast()) }
}

/// How long a learned address stays, in nanoseconds: the answer's TTL, at least the
/// configured minimum (applications cache answers longer than their TTL), at most the maximum.
#[inline(always)]
fn lifetime_ns(ttl: u32) -> u64 {
    let (min, max) = SETTINGS.get(0).map_or((3600, 86400), |s| {
        (s.learned_min_ttl_s, s.learned_max_ttl_s)
    });
    let secs = if ttl < min { min } else { ttl };
    let secs = if secs > max && max >= min { max } else { secs };
    u64::from(secs) * 1_000_000_000
}

#[inline(always)]
fn learned_value(s: &Scratch, ttl: u32) -> Learned {
    Learned {
        list_id: s.listed.list_id,
        action: s.listed.action,
        _pad: 0,
        domain_id: s.listed.domain_id,
        learned_ns: s.now,
        expires_ns: s.now + lifetime_ns(ttl),
    }
}

#[inline(always)]
fn learn_v4(s: &Scratch, ip: [u8; 4], ttl: u32) {
    if s.listed.flags & DOMAIN_LEARN_PRIVATE == 0 && special_v4(ip) {
        bump(Counter::LearnedRefused);
        return;
    }
    let value = learned_value(s, ttl);
    // The bucket first: a connect that sees the entry must also see its bucket.
    mark_seen(learned_slot_v4(ip));
    if LEARNED_V4.insert(&ip, &value, 0).is_ok() {
        bump(Counter::Learned);
    }
}

#[inline(always)]
fn learn_v6(s: &Scratch, ip: [u8; 16], ttl: u32) {
    if s.listed.flags & DOMAIN_LEARN_PRIVATE == 0 && special_v6(&ip) {
        bump(Counter::LearnedRefused);
        return;
    }
    let value = learned_value(s, ttl);
    mark_seen(learned_slot_v6(ip));
    if LEARNED_V6.insert(&ip, &value, 0).is_ok() {
        bump(Counter::Learned);
    }
}

#[inline(always)]
fn mark_seen((word, byte): (u32, u32)) {
    if let Some(bytes) = LEARNED_SEEN.get_ptr_mut(word) {
        // SAFETY: a byte of an 8-byte array value; byte < 8.
        unsafe { (*bytes)[(byte & 7) as usize] = 1 };
    }
}
