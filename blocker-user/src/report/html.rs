//! The report as one self-contained HTML file (inline style and SVG, no script, no external
//! resource), which an auditor can open offline or print. Every number carries a `data-field`
//! attribute naming its place in the JSON form, so the two can be compared mechanically.

use std::{collections::BTreeMap, fmt::Write as _};

use super::Report;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .7em;border-bottom:1px solid #eee;\
text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}.warn{color:#a00}\
svg{background:#fafafa;border:1px solid #ddd}rect.bar{fill:#b33}text{font:10px sans-serif}";

/// Escapes text for HTML (the only five characters that matter; no template engine is needed
/// for one page).
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn num(field: &str, value: u64) -> String {
    format!("<td class=\"n\" data-field=\"{}\">{value}</td>", esc(field))
}

pub fn render(r: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>vendorwall report: {host}</title><style>{STYLE}</style></head><body>\
         <h1>vendorwall compliance report: {host}</h1>\
         <p>Period <b>{since}</b> to <b>{until}</b>. Generated {generated} from {history}.</p>",
        host = esc(&r.host),
        since = esc(&r.since),
        until = esc(&r.until),
        generated = esc(&r.generated),
        history = esc(&r.history),
    );
    if r.missed_lines > 0 {
        let _ = write!(
            h,
            "<p class=\"warn\">Event lines not stored in the period: \
             <span data-field=\"missed_lines\">{}</span></p>",
            r.missed_lines
        );
    }
    let t = &r.totals;
    let _ = write!(
        h,
        "<h2>Attempts</h2><table><tr><th>blocked</th><th>audited</th><th>exempted</th>\
         <th>terminated</th></tr><tr>{}{}{}{}</tr></table>",
        num("totals.blocked", t.blocked),
        num("totals.audited", t.audited),
        num("totals.exempted", t.exempted),
        num("totals.terminated", t.terminated),
    );
    h.push_str("<h2>By vendor and list</h2><table><tr><th>vendor</th><th>list</th><th>blocked</th><th>audited</th><th>exempted</th></tr>");
    for (i, v) in r.vendors.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td>{}{}{}</tr>",
            esc(&v.vendor),
            esc(&v.list),
            num(&format!("vendors.{i}.totals.blocked"), v.totals.blocked),
            num(&format!("vendors.{i}.totals.audited"), v.totals.audited),
            num(&format!("vendors.{i}.totals.exempted"), v.totals.exempted),
        );
    }
    h.push_str("</table><h2>Timeline per vendor</h2>");
    for v in &r.vendors {
        let _ = write!(h, "<h3>{} ({})</h3>", esc(&v.vendor), esc(&v.list));
        h.push_str(&timeline(&v.per_day));
    }
    h.push_str("<h2>By process</h2><table><tr><th>executable</th><th>unit</th><th>package</th><th>action</th><th>attempts</th></tr>");
    for (i, p) in r.processes.iter().enumerate() {
        let what = if p.exe.is_empty() { &p.comm } else { &p.exe };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>",
            esc(what),
            esc(&p.unit),
            esc(&p.package),
            esc(&p.action),
            num(&format!("processes.{i}.count"), p.count)
        );
    }
    h.push_str("</table><h2>By day</h2><table><tr><th>day (UTC)</th><th>blocked</th><th>audited</th><th>exempted</th></tr>");
    for (i, d) in r.days.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td>{}</td>{}{}{}</tr>",
            esc(&d.day),
            num(&format!("days.{i}.totals.blocked"), d.totals.blocked),
            num(&format!("days.{i}.totals.audited"), d.totals.audited),
            num(&format!("days.{i}.totals.exempted"), d.totals.exempted),
        );
    }
    h.push_str("</table><h2>Exemptions</h2><table><tr><th>id</th><th>reason</th><th>approved by</th><th>ticket</th><th>expires</th><th>scope</th><th>uses</th></tr>");
    for (i, e) in r.exemptions.iter().enumerate() {
        let expires = if e.expired {
            format!("<span class=\"warn\">{} (expired)</span>", esc(&e.expires))
        } else {
            esc(&e.expires)
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{expires}</td><td>{}</td>{}</tr>",
            esc(&e.id),
            esc(&e.reason),
            esc(e.approved_by.as_deref().unwrap_or("")),
            esc(e.ticket.as_deref().unwrap_or("")),
            esc(&e.scope.join(", ")),
            num(&format!("exemptions.{i}.uses"), e.uses),
        );
    }
    h.push_str("</table><h2>Lists in force</h2><table><tr><th>list</th><th>vendor</th><th>action</th><th>entries</th><th>data date</th><th>data source</th><th>names date</th></tr>");
    for l in &r.lists {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&l.name),
            esc(l.vendor.as_deref().unwrap_or("")),
            esc(&l.action),
            l.entries.map_or_else(String::new, |n| n.to_string()),
            esc(l.data_date.as_deref().unwrap_or("")),
            esc(l.data_source.as_deref().unwrap_or("")),
            esc(l.domain_data_date.as_deref().unwrap_or("")),
        );
    }
    h.push_str("</table><h2>Vendor software on this host</h2>");
    if r.findings.is_empty() {
        h.push_str("<p>None found.</p>");
    } else {
        h.push_str("<table><tr><th>vendor</th><th>kind</th><th>name</th><th>detail</th></tr>");
        for f in &r.findings {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.vendor),
                esc(f.kind),
                esc(&f.name),
                esc(&f.detail)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

/// A bar per day, scaled to the busiest day.
fn timeline(per_day: &BTreeMap<String, u64>) -> String {
    const WIDTH: usize = 720;
    const HEIGHT: usize = 120;
    let max = per_day.values().copied().max().unwrap_or(1).max(1);
    let bar = (WIDTH / per_day.len().max(1)).clamp(2, 60);
    let mut svg = format!(
        "<svg width=\"{WIDTH}\" height=\"{}\" role=\"img\" viewBox=\"0 0 {WIDTH} {}\">",
        HEIGHT + 20,
        HEIGHT + 20
    );
    for (i, (day, count)) in per_day.iter().enumerate() {
        let h = (*count as f64 / max as f64 * HEIGHT as f64)
            .round()
            .max(1.0) as usize;
        let x = i * bar;
        let _ = write!(
            svg,
            "<rect class=\"bar\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{h}\"><title>{}: {count}</title></rect>",
            HEIGHT - h,
            bar.saturating_sub(1).max(1),
            esc(day)
        );
        if i == 0 || i + 1 == per_day.len() {
            let _ = write!(
                svg,
                "<text x=\"{x}\" y=\"{}\">{}</text>",
                HEIGHT + 14,
                esc(day)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}
