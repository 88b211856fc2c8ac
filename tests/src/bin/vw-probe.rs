//! A process for the end-to-end tests to move into a test cgroup: it waits for `go` on stdin
//! (so the test can write its pid to `cgroup.procs` first), then makes the connection attempts
//! named on its command line and prints one JSON line per attempt.
//!
//! Usage: `vw-probe OP ADDR [OP ADDR]...` with OP one of `tcp` (connect), `udp` (sendto),
//! `udp-connect` (connect + send), `sendmsg`, `sendmmsg` (unconnected UDP through those calls),
//! `tfo` (TCP Fast Open: sendto with MSG_FASTOPEN), `uring-connect` (connect through io_uring),
//! `raw-icmp` (an echo request on a raw socket), `ping` (an ICMP datagram "ping" socket),
//! `sleep MILLIS` (stay alive, e.g. until events are read),
//! `resolve-udp`/`resolve-tcp NAME:PORT` (ask 127.0.0.1:53 for NAME's A and AAAA records over
//! UDP or TCP, then at once TCP-connect to every address in the answer at PORT: one line per
//! address, or one with `"addr":"NAME"` when there was none); `vw-probe hammer ADDR MILLIS` (TCP connects in a loop until
//! told `stop` on stdin or MILLIS pass, printing counts); `vw-probe bench KIND ADDR COUNT` and
//! `vw-probe turns KIND ADDR COUNT` (the bench's timed operations, once or once per line on
//! stdin); or `vw-probe listen ADDR` (accept forever, print `listening`).

use std::{
    io::{BufRead as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::Duration,
};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [op, addr] = args.as_slice()
        && op == "listen"
    {
        listen(addr);
        return;
    }
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() || line.trim() != "go" {
        eprintln!("vw-probe: expected `go` on stdin");
        std::process::exit(2);
    }
    if let [op, addr] = args.as_slice()
        && op == "hold"
    {
        hold(addr);
        return;
    }
    if let [op, kind, addr, count] = args.as_slice()
        && op == "bench"
    {
        bench(kind, addr, count);
        return;
    }
    if let [op, kind, addr, count] = args.as_slice()
        && op == "turns"
    {
        turns(kind, addr, count);
        return;
    }
    if let [op, addr, millis] = args.as_slice()
        && op == "hammer"
    {
        hammer(addr, millis);
        return;
    }
    let mut out = std::io::stdout().lock();
    for pair in args.chunks(2) {
        let [op, addr] = pair else {
            eprintln!("vw-probe: usage: vw-probe OP ADDR [OP ADDR]...");
            std::process::exit(2);
        };
        if op == "sleep" {
            std::thread::sleep(Duration::from_millis(addr.parse().unwrap_or(0)));
            continue;
        }
        if let Some(transport) = op.strip_prefix("resolve-") {
            resolve_and_connect(&mut out, transport, addr);
            continue;
        }
        let Ok(addr) = addr.parse::<SocketAddr>() else {
            eprintln!("vw-probe: bad address {addr}");
            std::process::exit(2);
        };
        let result = attempt(op, addr);
        let errno = result.as_ref().err().and_then(std::io::Error::raw_os_error);
        let _ = writeln!(
            out,
            "{{\"op\":\"{op}\",\"addr\":\"{addr}\",\"ok\":{},\"errno\":{}}}",
            result.is_ok(),
            errno.map_or("null".to_owned(), |e| e.to_string())
        );
    }
}

/// Resolves `name:port`'s name at 127.0.0.1:53 and connects to each answer at once, as an
/// application does: the learner must have acted before the answer reached this process.
fn resolve_and_connect(out: &mut impl std::io::Write, transport: &str, spec: &str) {
    use hickory_proto::{
        op::{Message, Query},
        rr::{Name, RData, RecordType},
    };
    let Some((name, port)) = spec.rsplit_once(':') else {
        eprintln!("vw-probe: resolve wants NAME:PORT, got {spec}");
        std::process::exit(2);
    };
    let port: u16 = port.parse().unwrap_or(443);
    let mut addrs = Vec::new();
    for (id, kind) in [(1u16, RecordType::A), (2, RecordType::AAAA)] {
        let mut query = Message::new();
        query
            .set_id(id)
            .set_recursion_desired(true)
            .add_query(Query::query(
                Name::from_ascii(name).expect("a valid name"),
                kind,
            ));
        let bytes = query.to_vec().expect("encode query");
        let answer = match transport {
            "udp" => {
                let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
                socket
                    .set_read_timeout(Some(Duration::from_secs(3)))
                    .expect("timeout");
                socket.send_to(&bytes, "127.0.0.1:53").expect("send query");
                let mut buf = [0u8; 4096];
                let len = socket.recv(&mut buf).expect("an answer");
                buf[..len].to_vec()
            }
            _ => {
                use std::io::Read as _;
                let mut stream = TcpStream::connect("127.0.0.1:53").expect("connect to 53");
                stream
                    .set_read_timeout(Some(Duration::from_secs(3)))
                    .expect("timeout");
                let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                framed.extend(&bytes);
                stream.write_all(&framed).expect("send query");
                let mut len = [0u8; 2];
                stream.read_exact(&mut len).expect("answer length");
                let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                stream.read_exact(&mut buf).expect("answer");
                buf
            }
        };
        let message = Message::from_vec(&answer).expect("a DNS message");
        for record in message.answers() {
            match record.data() {
                RData::A(a) => addrs.push(std::net::IpAddr::V4(a.0)),
                RData::AAAA(a) => addrs.push(std::net::IpAddr::V6(a.0)),
                _ => {}
            }
        }
    }
    if addrs.is_empty() {
        let _ = writeln!(
            out,
            "{{\"op\":\"resolve\",\"addr\":\"{name}\",\"ok\":false,\"errno\":null}}"
        );
    }
    for ip in addrs {
        let addr = SocketAddr::new(ip, port);
        let result = TcpStream::connect_timeout(&addr, Duration::from_secs(3));
        let errno = result.as_ref().err().and_then(std::io::Error::raw_os_error);
        let _ = writeln!(
            out,
            "{{\"op\":\"resolve\",\"addr\":\"{addr}\",\"ok\":{},\"errno\":{}}}",
            result.is_ok(),
            errno.map_or("null".to_owned(), |e| e.to_string())
        );
    }
}

fn attempt(op: &str, addr: SocketAddr) -> std::io::Result<()> {
    let unspecified: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().map_err(std::io::Error::other)?
    } else {
        "[::]:0".parse().map_err(std::io::Error::other)?
    };
    match op {
        "tcp" => TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map(drop),
        "udp" => UdpSocket::bind(unspecified)?.send_to(b"vw", addr).map(drop),
        "udp-connect" => {
            let socket = UdpSocket::bind(unspecified)?;
            socket.connect(addr)?;
            socket.send(b"vw").map(drop)
        }
        "sendmsg" => send_msgs(addr, 1),
        "sendmmsg" => send_msgs(addr, 2),
        "tfo" => {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            socket
                .send_to_with_flags(b"vw", &SockAddr::from(addr), libc::MSG_FASTOPEN)
                .map(drop)
        }
        "uring-connect" => uring_connect(addr),
        "raw-icmp" => {
            let (domain, protocol) = icmp(addr);
            let socket = Socket::new(domain, Type::RAW, Some(protocol))?;
            socket
                .send_to(&echo_request(addr), &SockAddr::from(addr))
                .map(drop)
        }
        "ping" => {
            let (domain, protocol) = icmp(addr);
            let socket = Socket::new(domain, Type::DGRAM, Some(protocol))?;
            socket
                .send_to(&echo_request(addr), &SockAddr::from(addr))
                .map(drop)
        }
        other => Err(std::io::Error::other(format!("unknown op {other}"))),
    }
}

fn icmp(addr: SocketAddr) -> (Domain, Protocol) {
    if addr.is_ipv4() {
        (Domain::IPV4, Protocol::ICMPV4)
    } else {
        (Domain::IPV6, Protocol::ICMPV6)
    }
}

/// An ICMP or ICMPv6 echo request (checksums are filled in by the kernel for ping sockets and
/// ICMPv6; for raw IPv4 the value does not matter: the attempt is what is being tested).
fn echo_request(addr: SocketAddr) -> [u8; 8] {
    let kind = if addr.is_ipv4() { 8 } else { 128 };
    [kind, 0, 0, 0, 0, 1, 0, 1]
}

/// Unconnected UDP through sendmsg(2) (`count` 1) or sendmmsg(2) (`count` > 1).
fn send_msgs(addr: SocketAddr, count: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    let target = SockAddr::from(addr);
    let mut payload = *b"vw";
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the fields set below point at live locals.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_name = target.as_ptr().cast_mut().cast();
    header.msg_namelen = target.len();
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    let rc = if count == 1 {
        // SAFETY: valid fd and msghdr.
        unsafe { libc::sendmsg(socket.as_raw_fd(), &header, 0) as i32 }
    } else {
        let mut batch: Vec<libc::mmsghdr> = (0..count)
            .map(|_| libc::mmsghdr {
                msg_hdr: header,
                msg_len: 0,
            })
            .collect();
        // SAFETY: valid fd and `count` initialized mmsghdrs.
        unsafe { libc::sendmmsg(socket.as_raw_fd(), batch.as_mut_ptr(), count as u32, 0) }
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// connect(2) submitted through io_uring rather than called directly.
fn uring_connect(addr: SocketAddr) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    let target = SockAddr::from(addr);
    let mut ring = io_uring::IoUring::new(2)?;
    let entry = io_uring::opcode::Connect::new(
        io_uring::types::Fd(socket.as_raw_fd()),
        target.as_ptr().cast(),
        target.len(),
    )
    .build();
    // SAFETY: the socket and address outlive the submission, which completes below.
    unsafe { ring.submission().push(&entry) }.map_err(std::io::Error::other)?;
    ring.submit_and_wait(1)?;
    let result = ring
        .completion()
        .next()
        .ok_or_else(|| std::io::Error::other("no completion"))?
        .result();
    if result < 0 {
        Err(std::io::Error::from_raw_os_error(-result))
    } else {
        Ok(())
    }
}

/// Connects again and again until `stop` arrives on stdin (or the time is up), then prints
/// `{"op":"hammer","ok":N,"refused":N,"other":N}`. Each `mark` line on stdin prints the counts
/// so far as `{"op":"mark",...}`, so a test can count the attempts made in each phase. Runs
/// after `go` like the other ops.
fn hammer(addr: &str, millis: &str) {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    };
    let (Ok(addr), Ok(millis)) = (addr.parse::<SocketAddr>(), millis.parse::<u64>()) else {
        eprintln!("vw-probe: usage: vw-probe hammer ADDR MILLIS");
        std::process::exit(2);
    };
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let print = |op: &str, counts: &[AtomicU64; 3]| {
        let [ok, refused, other] = counts.each_ref().map(|c| c.load(Ordering::SeqCst));
        println!("{{\"op\":\"{op}\",\"ok\":{ok},\"refused\":{refused},\"other\":{other}}}");
        let _ = std::io::stdout().flush();
    };
    let (stop_reader, marks) = (stop.clone(), counts.clone());
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin()
            .lock()
            .read_line(&mut line)
            .is_ok_and(|n| n > 0)
        {
            match line.trim() {
                "stop" => break,
                "mark" => print("mark", &marks),
                _ => {}
            }
            line.clear();
        }
        stop_reader.store(true, Ordering::SeqCst);
    });
    println!("hammering");
    let _ = std::io::stdout().flush();
    let deadline = std::time::Instant::now() + Duration::from_millis(millis);
    while !stop.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
        let slot = match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(_) => 0,
            Err(err) if err.raw_os_error() == Some(libc::EPERM) => 1,
            Err(_) => 2,
        };
        counts[slot].fetch_add(1, Ordering::SeqCst);
    }
    print("hammer", &counts);
}

/// `cargo xtask bench`'s inner loop: COUNT operations of KIND (`tcp`: connect to a listener and
/// close; `tcp-closed`: connect to a closed port; `udp`: sendto), timed together. Prints
/// `{"op":"bench","ns_per_op":N,"errors":N}`; for tcp-closed, ECONNREFUSED is the expected result.
fn bench(kind: &str, addr: &str, count: &str) {
    let (Ok(addr), Ok(count)) = (addr.parse::<SocketAddr>(), count.parse::<u32>()) else {
        eprintln!("vw-probe: usage: vw-probe bench KIND ADDR COUNT");
        std::process::exit(2);
    };
    if kind == "recv-tcp" || kind == "recv-udp" {
        receive(kind, addr, count);
        return;
    }
    let udp = bench_socket(addr);
    let (ns, errors) = burst(kind, addr, count, udp.as_ref().ok());
    println!("{{\"op\":\"bench\",\"ns_per_op\":{ns:.1},\"errors\":{errors}}}");
}

/// `vw-probe turns KIND ADDR COUNT`: [`bench`]'s burst of COUNT operations once per line read
/// on stdin (`stop` or the end of input ends it), one result line after each. Two of these in
/// two cgroups, told to go in turn, compare the cgroups burst against neighbouring burst (tens
/// of milliseconds apart), where separate runs a second apart see the shared machine drift.
fn turns(kind: &str, addr: &str, count: &str) {
    let (Ok(addr), Ok(count)) = (addr.parse::<SocketAddr>(), count.parse::<u32>()) else {
        eprintln!("vw-probe: usage: vw-probe turns KIND ADDR COUNT");
        std::process::exit(2);
    };
    let udp = bench_socket(addr);
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lines() {
        if line.map_or(true, |l| l.trim() == "stop") {
            return;
        }
        let (ns, errors) = burst(kind, addr, count, udp.as_ref().ok());
        let _ = writeln!(
            out,
            "{{\"op\":\"bench\",\"ns_per_op\":{ns:.1},\"errors\":{errors}}}"
        );
        let _ = out.flush();
    }
}

/// The unconnected UDP socket the `udp` operations send from.
fn bench_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
}

/// COUNT operations of KIND, timed together: (ns per operation, operations that failed).
fn burst(kind: &str, addr: SocketAddr, count: u32, udp: Option<&UdpSocket>) -> (f64, u32) {
    let start = std::time::Instant::now();
    let mut errors = 0u32;
    for _ in 0..count {
        let ok = match kind {
            // Close with RST (linger 0): no TIME_WAIT pile-up to distort later connects.
            "tcp" => Socket::new(Domain::for_address(addr), Type::STREAM, None)
                .and_then(|s| {
                    s.connect(&SockAddr::from(addr))?;
                    s.set_linger(Some(Duration::ZERO))
                })
                .is_ok(),
            "tcp-closed" => matches!(
                TcpStream::connect(addr),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
            ),
            "udp" => udp.is_some_and(|s| s.send_to(b"vw", addr).is_ok()),
            _ => false,
        };
        errors += u32::from(!ok);
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(count.max(1));
    (ns, errors)
}

/// The receive side of the bench: `recv-tcp` reads `count` 64 KiB chunks from a TCP sender at
/// `addr`; `recv-udp` asks a UDP sender at `addr` for datagrams (one `go`) and receives `count`
/// of them. Prints the ns per chunk or datagram, timed from the first byte received.
fn receive(kind: &str, addr: SocketAddr, count: u32) {
    use std::io::Read as _;
    let mut errors = 0u32;
    let mut started = None;
    if kind == "recv-tcp" {
        let mut buf = vec![0u8; 65536];
        match TcpStream::connect(addr) {
            Ok(mut stream) => {
                for _ in 0..count {
                    if stream.read_exact(&mut buf).is_err() {
                        errors += 1;
                        break;
                    }
                    started.get_or_insert_with(std::time::Instant::now);
                }
            }
            Err(_) => errors += 1,
        }
    } else {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
        // Unconnected: the sender answers from a socket of its own.
        let _ = socket.send_to(b"go", addr);
        let mut buf = [0u8; 2048];
        for _ in 0..count {
            if socket.recv(&mut buf).is_err() {
                errors += 1;
                break;
            }
            started.get_or_insert_with(std::time::Instant::now);
        }
    }
    let ns = started.map_or(0.0, |s| {
        s.elapsed().as_nanos() as f64 / f64::from(count.max(2) - 1)
    });
    println!("{{\"op\":\"bench\",\"ns_per_op\":{ns:.1},\"errors\":{errors}}}");
}

/// Connects (TCP), prints `connected`, then waits for the connection to end and prints how:
/// `{"op":"hold","errno":N}` (ECONNABORTED when vendorwall terminated it) or errno null on EOF.
fn hold(addr: &str) {
    use std::io::Read as _;
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        eprintln!("vw-probe: bad address {addr}");
        std::process::exit(2);
    };
    let mut stream = match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        Ok(stream) => stream,
        Err(err) => {
            println!(
                "{{\"op\":\"hold\",\"connected\":false,\"errno\":{}}}",
                err.raw_os_error().unwrap_or(0)
            );
            return;
        }
    };
    println!("connected");
    let _ = std::io::stdout().flush();
    let mut buf = [0u8; 64];
    let errno = loop {
        match stream.read(&mut buf) {
            Ok(0) => break None,
            Ok(_) => continue,
            Err(err) => break err.raw_os_error(),
        }
    };
    println!(
        "{{\"op\":\"hold\",\"connected\":true,\"errno\":{}}}",
        errno.map_or("null".to_owned(), |e| e.to_string())
    );
}

fn listen(addr: &str) {
    let listener = match TcpListener::bind(addr) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("vw-probe: cannot listen on {addr}: {err}");
            std::process::exit(2);
        }
    };
    println!("listening");
    let _ = std::io::stdout().flush();
    for stream in listener.incoming() {
        drop(stream);
    }
}
