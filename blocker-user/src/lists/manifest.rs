//! Vendor manifests (`blocklists/<name>.toml`): who the vendor is, why it is listed, where its
//! prefixes come from and how old they are. The daemon uses `name`, `sources` and `default`;
//! the rest is provenance that operators and `vendorwall lists` read.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("failed to read manifest {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid manifest {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("no manifest named {name:?} in {}", dir.display())]
    NotFound { name: String, dir: PathBuf },
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// List name used in logs and events.
    pub name: String,
    /// The vendor as the ban names it.
    pub vendor: String,
    /// Why it is listed (the ban, the date it was added).
    pub reason: String,
    /// Public references for the listing and for the data.
    pub references: Vec<String>,
    /// Autonomous systems the prefixes were taken from.
    #[serde(default)]
    pub asns: Vec<u32>,
    /// Prefix files, relative to the manifest.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Where the prefixes were copied from (repository, path, commit).
    pub data_source: String,
    /// Date of the data (YYYY-MM-DD).
    pub data_date: String,
    /// Enabled when the config names no lists.
    #[serde(default)]
    pub default: bool,
    /// Caveats, e.g. that the vendor is mostly reached by domain name.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Domain names blocked through the DNS learner (each with every name below it).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Files of domain names, relative to the manifest.
    #[serde(default)]
    pub domain_sources: Vec<String>,
    /// Where the names came from.
    #[serde(default)]
    pub domain_data_source: Option<String>,
    /// Date of the names (YYYY-MM-DD).
    #[serde(default)]
    pub domain_data_date: Option<String>,
    /// The vendor's products as installed on a host, for `vendorwall scan`.
    #[serde(default)]
    pub software: Option<crate::software::Software>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|err| ManifestError::Parse {
            path: path.to_owned(),
            message: err.to_string().trim_end().replace('\n', " "),
        })
    }

    /// Resolves `spec`: a path to a manifest, or a name looked up as `<dir>/<name>.toml`.
    pub fn find(dir: &Path, spec: &str) -> Result<(PathBuf, Self), ManifestError> {
        let as_path = Path::new(spec);
        let path = if spec.ends_with(".toml") || as_path.is_absolute() {
            as_path.to_owned()
        } else {
            dir.join(format!("{spec}.toml"))
        };
        if !path.exists() {
            return Err(ManifestError::NotFound {
                name: spec.to_owned(),
                dir: dir.to_owned(),
            });
        }
        Ok((path.clone(), Self::load(&path)?))
    }

    /// Every manifest in `dir`, sorted by file name.
    pub fn all(dir: &Path) -> Result<Vec<(PathBuf, Self)>, ManifestError> {
        let read = std::fs::read_dir(dir).map_err(|source| ManifestError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = read
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|p| Self::load(&p).map(|m| (p, m)))
            .collect()
    }
}
