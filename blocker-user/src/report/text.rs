//! The report as plain text, for a terminal or an e-mail.

use std::fmt::Write as _;

use super::Report;

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "vendorwall compliance report: {}", r.host);
    let _ = writeln!(out, "period: {} to {}", r.since, r.until);
    let _ = writeln!(out, "history: {}", r.history);
    if r.missed_lines > 0 {
        let _ = writeln!(
            out,
            "WARNING: {} event lines were not stored in the period",
            r.missed_lines
        );
    }
    let t = &r.totals;
    let _ = writeln!(
        out,
        "\nattempts: {} blocked, {} audited, {} exempted, {} terminated",
        t.blocked, t.audited, t.exempted, t.terminated
    );
    let _ = writeln!(out, "\nby vendor and list:");
    for v in &r.vendors {
        let _ = writeln!(
            out,
            "  {:<28} {:<20} blocked {:>8}  audited {:>8}  exempted {:>8}",
            v.vendor, v.list, v.totals.blocked, v.totals.audited, v.totals.exempted
        );
    }
    let _ = writeln!(out, "\nby process:");
    for p in &r.processes {
        let what = if p.exe.is_empty() { &p.comm } else { &p.exe };
        let _ = writeln!(
            out,
            "  {:<40} unit {:<24} package {:<16} {:<9} {:>8}",
            what,
            dash(&p.unit),
            dash(&p.package),
            p.action,
            p.count
        );
    }
    let _ = writeln!(out, "\nby day:");
    for d in &r.days {
        let _ = writeln!(
            out,
            "  {}  blocked {:>8}  audited {:>8}  exempted {:>8}",
            d.day, d.totals.blocked, d.totals.audited, d.totals.exempted
        );
    }
    let _ = writeln!(out, "\nexemptions:");
    if r.exemptions.is_empty() {
        let _ = writeln!(out, "  none configured");
    }
    for e in &r.exemptions {
        let _ = writeln!(
            out,
            "  {} ({}): {}; expires {}; approved by {}; ticket {}; used {} times; {}",
            e.id,
            if e.expired { "EXPIRED" } else { "active" },
            e.reason,
            e.expires,
            e.approved_by.as_deref().unwrap_or("-"),
            e.ticket.as_deref().unwrap_or("-"),
            e.uses,
            e.scope.join(", ")
        );
    }
    let _ = writeln!(out, "\nlists in force:");
    for l in &r.lists {
        let _ = writeln!(
            out,
            "  {:<20} {:<8} {} entries, data {} ({}), names {}",
            l.name,
            l.action,
            l.entries.map_or_else(|| "?".to_owned(), |n| n.to_string()),
            l.data_date.as_deref().unwrap_or("-"),
            l.data_source.as_deref().unwrap_or("-"),
            l.domain_data_date.as_deref().unwrap_or("-"),
        );
    }
    let _ = writeln!(out, "\nvendor software on this host:");
    if r.findings.is_empty() {
        let _ = writeln!(out, "  none found");
    }
    for f in &r.findings {
        let _ = writeln!(out, "  {} {} {} ({})", f.vendor, f.kind, f.name, f.detail);
    }
    out
}

fn dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}
