//! `vendorwall events`: past events from the durable history, or live ones from the daemon's
//! socket, filtered, as JSON lines or an aligned table.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    process::ExitCode,
    time::SystemTime,
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::{
    cli::{EventsArgs, GlobalArgs},
    events::sinks::socket::SOCKET_FILE,
};

/// Column widths of the table; follow mode prints rows as they come, so widths are fixed.
const HEADER: [(&str, usize); 9] = [
    ("TIME", 27),
    ("ACTION", 8),
    ("LIST", 22),
    ("DESTINATION", 40),
    ("PROTO", 5),
    ("PID", 8),
    ("COMM", 16),
    ("UNIT", 28),
    ("COUNT", 5),
];

pub fn run(global: &GlobalArgs, args: &EventsArgs) -> anyhow::Result<ExitCode> {
    let config = global.config()?;
    let path = config.run_dir.join(SOCKET_FILE);
    let since = args.since.as_deref().map(parse_since).transpose()?;
    if !args.follow
        && let Some(store) = super::open_history(&config)?
    {
        let filter = crate::history::Filter {
            since,
            list: args.list.clone(),
            vendor: args.vendor.clone(),
            unit: args.unit.clone(),
            limit: since.is_none().then_some(config.events.keep),
        };
        let lines = store.lines(&filter)?;
        return print_lines(lines.into_iter().map(Ok), args, since);
    }
    let mut stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
            bail!(
                "permission denied: cannot connect to {} (root only): run as root",
                path.display()
            )
        }
        Err(err) => {
            return Err(err).with_context(|| {
                format!(
                    "failed to connect to {} (is the daemon running?)",
                    path.display()
                )
            });
        }
    };
    // Always vendorwall's own lines: the filters below read its field names.
    writeln!(
        stream,
        "{{\"follow\":{},\"format\":\"vendorwall\"}}",
        args.follow
    )
    .context("failed to send the request")?;
    let lines = BufReader::new(stream)
        .lines()
        .map(|l| l.context("failed to read from the daemon"));
    print_lines(lines, args, since)
}

/// Prints event lines (JSON, or as the table) that pass the filters.
fn print_lines(
    lines: impl Iterator<Item = anyhow::Result<String>>,
    args: &EventsArgs,
    since: Option<SystemTime>,
) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !args.json {
        writeln!(out, "{}", row(&HEADER.map(|(name, _)| name.to_owned())))?;
    }
    for line in lines {
        let line = line?;
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if event["type"] == "missed" {
            if args.json {
                writeln!(out, "{line}")?;
            } else {
                writeln!(
                    out,
                    "-- {} events missed (this reader fell behind) --",
                    event["count"]
                )?;
            }
            continue;
        }
        if !matches(&event, args, since) {
            continue;
        }
        if args.json {
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{}", row(&columns(&event)))?;
        }
        if args.follow {
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn parse_since(text: &str) -> anyhow::Result<SystemTime> {
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Ok(time);
    }
    match humantime::parse_duration(text) {
        Ok(age) => SystemTime::now().checked_sub(age).with_context(|| {
            format!("--since {text:?}: further back than this system's clock reaches")
        }),
        Err(_) => bail!("--since {text:?}: expected an RFC 3339 time or an age like 15m"),
    }
}

fn matches(event: &Value, args: &EventsArgs, since: Option<SystemTime>) -> bool {
    let field = |name: &str| event[name].as_str().unwrap_or_default().to_owned();
    if args.list.as_ref().is_some_and(|l| *l != field("list")) {
        return false;
    }
    if args.unit.as_ref().is_some_and(|u| *u != field("unit")) {
        return false;
    }
    if let Some(vendor) = &args.vendor
        && !field("vendor")
            .to_lowercase()
            .contains(&vendor.to_lowercase())
    {
        return false;
    }
    if let Some(since) = since {
        let last = humantime::parse_rfc3339_weak(&field("last")).ok();
        if last.is_none_or(|t| t < since) {
            return false;
        }
    }
    true
}

fn columns(e: &Value) -> [String; 9] {
    let s = |name: &str| e[name].as_str().unwrap_or("-").to_owned();
    let dst = if s("dst").contains(':') {
        format!("[{}]:{}", s("dst"), e["port"])
    } else {
        format!("{}:{}", s("dst"), e["port"])
    };
    [
        s("time"),
        s("action"),
        s("list"),
        dst,
        s("protocol"),
        e["pid"].to_string(),
        s("comm"),
        s("unit"),
        e["count"].to_string(),
    ]
}

fn row(cells: &[String; 9]) -> String {
    cells
        .iter()
        .zip(HEADER)
        .map(|(cell, (_, width))| format!("{cell:<width$}"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_and_ages_and_refuses_the_unreachable() {
        assert!(parse_since("15m").is_ok());
        assert!(parse_since("2026-11-30T10:00:00Z").is_ok());
        let err = parse_since("500000000000y")
            .expect_err("too far back")
            .to_string();
        assert!(err.contains("--since"), "{err}");
        assert!(parse_since("yesterday").is_err());
    }
}
