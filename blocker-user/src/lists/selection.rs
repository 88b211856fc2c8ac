//! Which lists to enforce: the config's `[[lists]]` (manifests by name or path, or explicit
//! sources and ASNs), or every shipped manifest marked `default = true` when the config names
//! none, or only the `--list` files when given on the command line.

use std::path::{Path, PathBuf};

use crate::{
    cli::ListArgs,
    config::{Config, ListAction},
    lists::{
        Format, ListError, ListGuards, ListSpec,
        manifest::{Manifest, ManifestError},
        source::{Fetcher, Source},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Lists(#[from] ListError),
}

/// The manifests directory: `--blocklists`, else the config's `blocklists_dir`.
pub fn blocklists_dir(config: &Config, args: &ListArgs) -> PathBuf {
    args.blocklists
        .clone()
        .unwrap_or_else(|| config.blocklists_dir.clone())
}

/// The lists to enforce, in order.
pub fn specs(config: &Config, args: &ListArgs) -> Result<Vec<ListSpec>, SelectionError> {
    if !args.lists.is_empty() {
        return Ok(args
            .lists
            .iter()
            .map(|path| file_spec(path, args.strict))
            .collect());
    }
    let dir = blocklists_dir(config, args);
    let specs: Vec<ListSpec> = if config.lists.is_empty() {
        Manifest::all(&dir)?
            .into_iter()
            .filter(|(_, m)| m.default)
            .map(|(path, m)| manifest_spec(&path, m, None, ListAction::Enforce, false, &[]))
            .collect()
    } else {
        let mut specs = Vec::with_capacity(config.lists.len());
        for list in &config.lists {
            let spec = match &list.manifest {
                Some(name) => {
                    let (path, manifest) = Manifest::find(&dir, name)?;
                    let spec = manifest_spec(
                        &path,
                        manifest,
                        list.name.clone(),
                        list.action,
                        list.allow_shrink,
                        &list.asns,
                    );
                    let mut domains = spec.domains.clone();
                    domains.extend(list.domains.iter().cloned());
                    let mut domain_sources = spec.domain_sources.clone();
                    domain_sources.extend(
                        list.domain_sources
                            .iter()
                            .map(|s| Source::parse(s, Path::new("/"))),
                    );
                    ListSpec {
                        domains,
                        domain_sources,
                        learn_private: list.learn_private,
                        ..spec
                    }
                }
                None => ListSpec {
                    name: list.name.clone().unwrap_or_default(),
                    action: list.action,
                    vendor: None,
                    sources: list
                        .sources
                        .iter()
                        .map(|s| Source::parse(s, Path::new("/")))
                        .chain(list.asns.iter().map(|&asn| Source::Asn(asn)))
                        .collect(),
                    allow_shrink: list.allow_shrink,
                    format: list.format,
                    strict: list.strict,
                    domains: list.domains.clone(),
                    domain_sources: list
                        .domain_sources
                        .iter()
                        .map(|s| Source::parse(s, Path::new("/")))
                        .collect(),
                    learn_private: list.learn_private,
                },
            };
            specs.push(ListSpec {
                format: list.format,
                strict: list.strict,
                ..spec
            });
        }
        specs
    };
    if specs.is_empty() {
        return Err(ListError::NoLists(format!(
            "the config names no lists and {} has no manifest with `default = true`",
            dir.display()
        ))
        .into());
    }
    Ok(specs
        .into_iter()
        .map(|spec| ListSpec {
            strict: spec.strict || args.strict,
            ..spec
        })
        .collect())
}

/// A `--list FILE`: an enforced list named after the file.
fn file_spec(path: &Path, strict: bool) -> ListSpec {
    ListSpec {
        name: path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        ),
        action: ListAction::Enforce,
        vendor: None,
        sources: vec![Source::File(path.to_owned())],
        allow_shrink: false,
        format: Format::Auto,
        strict,
        domains: Vec::new(),
        domain_sources: Vec::new(),
        learn_private: false,
    }
}

fn manifest_spec(
    path: &Path,
    manifest: Manifest,
    name: Option<String>,
    action: ListAction,
    allow_shrink: bool,
    live_asns: &[u32],
) -> ListSpec {
    let base = path.parent().unwrap_or(Path::new("."));
    ListSpec {
        name: name.unwrap_or(manifest.name),
        action,
        vendor: Some(manifest.vendor),
        sources: manifest
            .sources
            .iter()
            .map(|s| Source::parse(s, base))
            .chain(live_asns.iter().map(|&asn| Source::Asn(asn)))
            .collect(),
        allow_shrink,
        format: Format::Auto,
        strict: false,
        domains: manifest.domains,
        domain_sources: manifest
            .domain_sources
            .iter()
            .map(|s| Source::parse(s, base))
            .collect(),
        learn_private: false,
    }
}

/// Remote-fetch settings from the config.
pub fn fetcher(config: &Config) -> Fetcher {
    Fetcher {
        timeout: config.http.timeout,
        max_bytes: config.http.max_bytes,
        cache_dir: config.cache_dir.clone(),
        asn_endpoint: config.asn.endpoint.clone(),
    }
}

/// List guards from the config.
pub fn guards(config: &Config) -> ListGuards {
    ListGuards {
        min_prefix_len_v4: config.min_prefix_len_v4,
        min_prefix_len_v6: config.min_prefix_len_v6,
        allow_short_prefixes: config.allow_short_prefixes,
        max_shrink: config.max_shrink,
    }
}
