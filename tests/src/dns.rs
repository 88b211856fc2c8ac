//! A DNS server for the name tests: answers from a small zone, on 127.0.0.1:53 inside a test
//! network namespace, over UDP and TCP, with or without name compression. Messages are built
//! by hand so each test controls the exact wire form the kernel's learner reads.

use std::{
    collections::HashMap,
    io::{Read as _, Write as _},
    net::{IpAddr, TcpListener, UdpSocket},
    os::fd::AsRawFd as _,
    sync::{Arc, Mutex},
};

/// One record of the zone.
#[derive(Clone, Debug)]
pub enum Record {
    A(std::net::Ipv4Addr),
    Aaaa(std::net::Ipv6Addr),
    Cname(String),
}

/// Names (lower case) to their records, and how answers are written.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    pub records: HashMap<String, Vec<Record>>,
    /// Names whose answers are written without compression pointers.
    pub uncompressed: Vec<String>,
    pub ttl: u32,
}

impl Zone {
    pub fn add(&mut self, name: &str, record: Record) -> &mut Self {
        self.records
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(record);
        self
    }
}

/// The server; it runs until the test process ends (its sockets live in the namespace).
pub struct DnsServer {
    pub zone: Arc<Mutex<Zone>>,
    /// Where it answers over UDP.
    pub udp: std::net::SocketAddr,
}

impl DnsServer {
    /// Starts answering on 127.0.0.1:53 in `ns`.
    pub fn start(ns: &crate::netns::NetNs, zone: Zone) -> Self {
        Self::start_at(
            Some(format!("/run/netns/{}", ns.name())),
            "127.0.0.1:53",
            zone,
        )
    }

    /// Starts answering over UDP only on a free port of this host's loopback (for the
    /// daemon's own look-ups).
    pub fn start_on_loopback(zone: Zone) -> Self {
        Self::start_at(None, "127.0.0.1:0", zone)
    }

    fn start_at(netns: Option<String>, addr: &'static str, zone: Zone) -> Self {
        let zone = Arc::new(Mutex::new(zone));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let transports: &[bool] = if netns.is_some() {
            &[false, true]
        } else {
            &[false]
        };
        for &tcp in transports {
            let zone = zone.clone();
            let netns = netns.clone();
            let ready = ready_tx.clone();
            std::thread::spawn(move || {
                if let Some(path) = &netns {
                    enter_netns(path);
                }
                if tcp {
                    let listener = TcpListener::bind(addr).expect("bind tcp 53");
                    ready.send(None).expect("ready");
                    for stream in listener.incoming().flatten() {
                        serve_tcp(stream, &zone);
                    }
                } else {
                    let socket = UdpSocket::bind(addr).expect("bind udp 53");
                    ready.send(socket.local_addr().ok()).expect("ready");
                    let mut buf = [0u8; 1500];
                    while let Ok((len, peer)) = socket.recv_from(&mut buf) {
                        if let Some(reply) = answer(&buf[..len], &zone.lock().expect("zone")) {
                            let _ = socket.send_to(&reply, peer);
                        }
                    }
                }
            });
        }
        let mut udp = None;
        for _ in transports {
            let bound = ready_rx
                .recv_timeout(std::time::Duration::from_secs(5))
                .expect("DNS server ready");
            udp = udp.or(bound);
        }
        Self {
            zone,
            udp: udp.expect("the UDP socket's address"),
        }
    }
}

/// Moves the calling thread (only it) into the namespace mounted at `path`.
fn enter_netns(path: &str) {
    let file = std::fs::File::open(path).unwrap_or_else(|err| panic!("open {path}: {err}"));
    // SAFETY: setns on a valid namespace fd; it affects only this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

fn serve_tcp(mut stream: std::net::TcpStream, zone: &Mutex<Zone>) {
    let mut len = [0u8; 2];
    if stream.read_exact(&mut len).is_err() {
        return;
    }
    let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
    if stream.read_exact(&mut query).is_err() {
        return;
    }
    if let Some(reply) = answer(&query, &zone.lock().expect("zone")) {
        // One write: the learner reads TCP answers that arrive in one segment.
        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
        framed.extend(reply);
        let _ = stream.write_all(&framed);
    }
}

/// The question of a query: (id, name as sent, type, end of the question).
fn question(query: &[u8]) -> Option<(u16, String, u16, usize)> {
    let id = u16::from_be_bytes([*query.first()?, *query.get(1)?]);
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).into_owned());
        at += len;
    }
    let kind = u16::from_be_bytes([*query.get(at)?, *query.get(at + 1)?]);
    Some((id, labels.join("."), kind, at + 4))
}

/// The response to `query` from `zone`: the CNAME chain, then the records of the asked type.
pub fn answer(query: &[u8], zone: &Zone) -> Option<Vec<u8>> {
    let (id, name, kind, end) = question(query)?;
    let mut chain: Vec<(String, Record)> = Vec::new();
    let mut current = name.clone();
    for _ in 0..8 {
        let records = zone
            .records
            .get(&current.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default();
        if let Some(Record::Cname(target)) = records.iter().find(|r| matches!(r, Record::Cname(_)))
        {
            chain.push((current.clone(), Record::Cname(target.clone())));
            current = target.clone();
            continue;
        }
        for record in records {
            let wanted = matches!((&record, kind), (Record::A(_), 1) | (Record::Aaaa(_), 28));
            if wanted {
                chain.push((current.clone(), record));
            }
        }
        break;
    }
    let compress = !zone.uncompressed.contains(&name.to_ascii_lowercase());
    let mut out = Vec::new();
    out.extend(id.to_be_bytes());
    out.extend([0x81, 0x80]);
    out.extend(1u16.to_be_bytes());
    out.extend((chain.len() as u16).to_be_bytes());
    out.extend([0, 0, 0, 0]);
    let mut names = HashMap::new();
    // The question as asked (its case kept), remembered for compression.
    write_name(&mut out, &name, &mut names, compress);
    out.extend(&query[end - 4..end]);
    for (owner, record) in chain {
        write_name(&mut out, &owner, &mut names, compress);
        let (kind, rdata) = match record {
            Record::A(a) => (1u16, a.octets().to_vec()),
            Record::Aaaa(a) => (28, a.octets().to_vec()),
            Record::Cname(target) => {
                let start = out.len() + 10;
                let mut rdata = Vec::new();
                // Offsets in the message are those the rdata will have once appended.
                let mut shifted = names.clone();
                write_name_at(&mut rdata, start, &target, &mut shifted, compress);
                names = shifted;
                (5, rdata)
            }
        };
        out.extend(kind.to_be_bytes());
        out.extend(1u16.to_be_bytes());
        out.extend(zone.ttl.max(1).to_be_bytes());
        out.extend((rdata.len() as u16).to_be_bytes());
        out.extend(rdata);
    }
    Some(out)
}

fn write_name(out: &mut Vec<u8>, name: &str, names: &mut HashMap<String, usize>, compress: bool) {
    let base = out.len();
    let mut part = Vec::new();
    write_name_at(&mut part, base, name, names, compress);
    out.extend(part);
}

/// Writes `name` into `out`, which will start at message offset `base`: RFC 1035 compression
/// (a pointer to the longest suffix already written) when `compress`.
fn write_name_at(
    out: &mut Vec<u8>,
    base: usize,
    name: &str,
    names: &mut HashMap<String, usize>,
    compress: bool,
) {
    let labels: Vec<&str> = name.split('.').filter(|l| !l.is_empty()).collect();
    for i in 0..labels.len() {
        let suffix = labels[i..].join(".").to_ascii_lowercase();
        if compress && let Some(&at) = names.get(&suffix) {
            out.extend((0xc000u16 | at as u16).to_be_bytes());
            return;
        }
        names.insert(suffix, base + out.len());
        out.push(labels[i].len() as u8);
        out.extend(labels[i].as_bytes());
    }
    out.push(0);
}

/// Addresses of `records` (for expectations).
pub fn addresses(records: &[Record]) -> Vec<IpAddr> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::A(a) => Some(IpAddr::V4(*a)),
            Record::Aaaa(a) => Some(IpAddr::V6(*a)),
            Record::Cname(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use hickory_proto::{
        op::{Message, Query},
        rr::{Name, RData, RecordType},
    };

    use super::*;

    fn ask(zone: &Zone, name: &str) -> (Message, Vec<u8>) {
        let mut query = Message::new();
        query.add_query(Query::query(
            Name::from_ascii(name).expect("name"),
            RecordType::A,
        ));
        let bytes = answer(&query.to_vec().expect("encode"), zone).expect("answer");
        (Message::from_vec(&bytes).expect("hickory parses it"), bytes)
    }

    #[test]
    fn chains_parse_compressed_and_not() {
        let mut zone = Zone::default();
        zone.add(
            "www.shop.example",
            Record::Cname("cdn.listed.example".into()),
        )
        .add(
            "cdn.listed.example",
            Record::A("198.51.100.5".parse().expect("ip")),
        );
        let (compressed, small) = ask(&zone, "www.shop.example");
        zone.uncompressed.push("www.shop.example".into());
        let (plain, large) = ask(&zone, "www.shop.example");
        assert!(small.len() < large.len(), "compression pointers were used");
        for message in [compressed, plain] {
            let data: Vec<String> = message
                .answers()
                .iter()
                .map(|r| match r.data() {
                    RData::CNAME(c) => c.0.to_string(),
                    RData::A(a) => a.0.to_string(),
                    other => format!("{other:?}"),
                })
                .collect();
            assert_eq!(data, ["cdn.listed.example.", "198.51.100.5"]);
        }
    }
}
