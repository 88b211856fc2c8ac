//! A process for the end-to-end tests to move into a test cgroup: it waits for `go` on stdin
//! (so the test can write its pid to `cgroup.procs` first), then makes the connection attempts
//! named on its command line and prints one JSON line per attempt.
//!
//! Usage: `vw-probe OP ADDR [OP ADDR]...` with OP one of `tcp` (connect), `udp` (sendto),
//! `udp-connect` (connect + send), `sleep MILLIS` (stay alive, e.g. until events are read); `vw-probe hammer ADDR MILLIS` (TCP connects in a loop until
//! told `stop` on stdin or MILLIS pass, printing counts); or `vw-probe listen ADDR` (accept
//! forever, print `listening`).

use std::{
    io::{BufRead as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::Duration,
};

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
        other => Err(std::io::Error::other(format!("unknown op {other}"))),
    }
}

/// Connects again and again until `stop` arrives on stdin (or the time is up), then prints
/// `{"op":"hammer","ok":N,"refused":N,"other":N}`. Runs after `go` like the other ops.
fn hammer(addr: &str, millis: &str) {
    let (Ok(addr), Ok(millis)) = (addr.parse::<SocketAddr>(), millis.parse::<u64>()) else {
        eprintln!("vw-probe: usage: vw-probe hammer ADDR MILLIS");
        std::process::exit(2);
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_reader = stop.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin()
            .lock()
            .read_line(&mut line)
            .is_ok_and(|n| n > 0)
        {
            if line.trim() == "stop" {
                break;
            }
            line.clear();
        }
        stop_reader.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    println!("hammering");
    let _ = std::io::stdout().flush();
    let deadline = std::time::Instant::now() + Duration::from_millis(millis);
    let (mut ok, mut refused, mut other) = (0u64, 0u64, 0u64);
    while !stop.load(std::sync::atomic::Ordering::SeqCst) && std::time::Instant::now() < deadline {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(_) => ok += 1,
            Err(err) if err.raw_os_error() == Some(libc_eperm()) => refused += 1,
            Err(_) => other += 1,
        }
    }
    println!("{{\"op\":\"hammer\",\"ok\":{ok},\"refused\":{refused},\"other\":{other}}}");
}

/// EPERM, without a libc dependency in the probe.
const fn libc_eperm() -> i32 {
    1
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
