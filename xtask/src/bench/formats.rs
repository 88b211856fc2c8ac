//! Parse time per million lines for each list format, from the `parse_speed` example (release
//! build, the daemon's own parser), so the formats are compared with plain CIDR in one run.

use std::path::Path;

use anyhow::Context as _;

use crate::shell;

/// One format's figure.
pub(super) struct FormatSpeed {
    pub(super) format: String,
    pub(super) ms_per_million: f64,
}

/// Runs the example (built by the bench's build step) and reads its JSON lines.
pub(super) fn measure(root: &Path) -> anyhow::Result<Vec<FormatSpeed>> {
    let bin = root.join("target/release/examples/parse_speed");
    let output = shell::output(&mut std::process::Command::new(&bin))
        .with_context(|| format!("{} failed", bin.display()))?;
    output
        .lines()
        .map(|line| {
            let value: serde_json::Value =
                serde_json::from_str(line).with_context(|| format!("bad line {line:?}"))?;
            Ok(FormatSpeed {
                format: value["format"]
                    .as_str()
                    .context("no format name")?
                    .to_owned(),
                ms_per_million: value["ms_per_million"].as_f64().context("no figure")?,
            })
        })
        .collect()
}
