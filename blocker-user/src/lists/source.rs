//! Where list text comes from: local files and folders, `http(s)://` URLs (conditional requests,
//! timeout, size cap, last good copy cached on disk) and ASN look-ups through a RIPEstat-style
//! announced-prefixes endpoint. Each fetch yields text plus a label naming where it came from,
//! which is what error messages and `file:line` explanations show.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

/// One place a list's prefixes come from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", content = "location", rename_all = "lowercase")]
pub enum Source {
    File(PathBuf),
    /// Every `*.netset`, `*.txt`, `*.ipset`, `*.list`, `*.csv`, `*.json` and `*.gz` file inside,
    /// sorted by name.
    Dir(PathBuf),
    Url(String),
    Asn(u32),
}

impl Source {
    /// Interprets a `sources` entry: a URL, or a path (a folder when it is a directory).
    pub fn parse(spec: &str, base: &Path) -> Self {
        if spec.starts_with("http://") || spec.starts_with("https://") {
            return Self::Url(spec.to_owned());
        }
        let path = base.join(spec);
        if path.is_dir() {
            Self::Dir(path)
        } else {
            Self::File(path)
        }
    }

    /// Local sources are watched for changes; remote ones are polled on the refresh interval.
    pub fn local_paths(&self) -> Vec<PathBuf> {
        match self {
            Self::File(path) => vec![path.clone()],
            Self::Dir(dir) => dir_files(dir).unwrap_or_default(),
            Self::Url(_) | Self::Asn(_) => Vec::new(),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) | Self::Dir(path) => write!(f, "{}", path.display()),
            Self::Url(url) => f.write_str(url),
            Self::Asn(asn) => write!(f, "AS{asn}"),
        }
    }
}

/// Text fetched from a source, with the label its lines are reported under.
#[derive(Debug)]
pub struct Fetched {
    pub label: String,
    /// The raw bytes: parsing decides how to read them (gzip, BOM, non-UTF-8 lines).
    pub bytes: Vec<u8>,
    /// Set when the text is the cached last good copy because the source failed.
    pub stale_because: Option<HttpError>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("failed to read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{url} (and no cached copy)")]
    Http {
        url: String,
        #[source]
        source: HttpError,
    },
    #[error("{url}: response is not an announced-prefixes document")]
    AsnFormat {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Why one HTTP(S) request gave no list text.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("request failed")]
    Request(#[source] ureq::Error),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("reading the body (limit {limit} bytes)")]
    Body {
        limit: u64,
        #[source]
        source: ureq::Error,
    },
    #[error("the cached copy vanished")]
    CacheVanished,
}

/// Settings for remote fetches.
#[derive(Clone, Debug)]
pub struct Fetcher {
    pub timeout: Duration,
    pub max_bytes: u64,
    pub cache_dir: PathBuf,
    pub asn_endpoint: String,
}

impl Fetcher {
    /// Fetches every piece of text `source` provides. A remote source that fails falls back to
    /// its cached last good copy (marked stale); only with no copy at all is it an error.
    pub fn fetch(&self, source: &Source) -> Result<Vec<Fetched>, FetchError> {
        match source {
            Source::File(path) => Ok(vec![read_file(path)?]),
            Source::Dir(dir) => dir_files(dir)
                .map_err(|source| FetchError::Read {
                    path: dir.clone(),
                    source,
                })?
                .iter()
                .map(|p| read_file(p))
                .collect(),
            Source::Url(url) => Ok(vec![self.fetch_url(url, url)?]),
            Source::Asn(asn) => {
                let url = asn_url(&self.asn_endpoint, *asn);
                let mut fetched = self.fetch_url(&url, &format!("AS{asn}"))?;
                fetched.bytes = asn_prefixes(&url, &fetched.bytes)?.into_bytes();
                Ok(vec![fetched])
            }
        }
    }

    fn fetch_url(&self, url: &str, label: &str) -> Result<Fetched, FetchError> {
        let cache = HttpCache::new(&self.cache_dir, url);
        match self.get(url, &cache) {
            Ok(bytes) => Ok(Fetched {
                label: label.to_owned(),
                bytes,
                stale_because: None,
            }),
            Err(reason) => match cache.body() {
                Some(bytes) => Ok(Fetched {
                    label: label.to_owned(),
                    bytes,
                    stale_because: Some(reason),
                }),
                None => Err(FetchError::Http {
                    url: url.to_owned(),
                    source: reason,
                }),
            },
        }
    }

    /// One conditional GET; stores a new body with its validators, or confirms the cached one.
    fn get(&self, url: &str, cache: &HttpCache) -> Result<Vec<u8>, HttpError> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = agent.get(url);
        let meta = cache.meta();
        let has_body = cache.body_path().exists();
        if has_body {
            if let Some(etag) = &meta.etag {
                request = request.header("If-None-Match", etag);
            }
            if let Some(modified) = &meta.last_modified {
                request = request.header("If-Modified-Since", modified);
            }
        }
        let mut response = request.call().map_err(HttpError::Request)?;
        let status = response.status().as_u16();
        if status == 304 && has_body {
            return cache.body().ok_or(HttpError::CacheVanished);
        }
        if status != 200 {
            return Err(HttpError::Status(status));
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let meta = CacheMeta {
            etag: header("etag"),
            last_modified: header("last-modified"),
        };
        let text = response
            .body_mut()
            .with_config()
            .limit(self.max_bytes)
            .read_to_vec()
            .map_err(|source| HttpError::Body {
                limit: self.max_bytes,
                source,
            })?;
        cache.store(&text, &meta);
        Ok(text)
    }
}

fn read_file(path: &Path) -> Result<Fetched, FetchError> {
    let bytes = std::fs::read(path).map_err(|source| FetchError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(Fetched {
        label: path.display().to_string(),
        bytes,
        stale_because: None,
    })
}

/// List files inside `dir`, sorted.
fn dir_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|e| {
                    ["netset", "txt", "ipset", "list", "csv", "json", "gz"]
                        .iter()
                        .any(|x| e == *x)
                })
        })
        .collect();
    files.sort();
    Ok(files)
}

fn asn_url(endpoint: &str, asn: u32) -> String {
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}resource=AS{asn}")
}

/// The RIPEstat announced-prefixes document, as far as we read it.
#[derive(Deserialize)]
struct AnnouncedPrefixes {
    data: AnnouncedData,
}

#[derive(Deserialize)]
struct AnnouncedData {
    prefixes: Vec<AnnouncedPrefix>,
}

#[derive(Deserialize)]
struct AnnouncedPrefix {
    prefix: String,
}

/// Turns an announced-prefixes JSON document into list text (one prefix per line).
fn asn_prefixes(url: &str, json: &[u8]) -> Result<String, FetchError> {
    let doc: AnnouncedPrefixes =
        serde_json::from_slice(json).map_err(|source| FetchError::AsnFormat {
            url: url.to_owned(),
            source,
        })?;
    Ok(doc
        .data
        .prefixes
        .into_iter()
        .map(|p| p.prefix + "\n")
        .collect())
}

/// Validators kept beside a cached body.
#[derive(Default, Serialize, Deserialize)]
struct CacheMeta {
    etag: Option<String>,
    last_modified: Option<String>,
}

/// `<cache dir>/<hash of URL>.body` and `.meta.json`.
struct HttpCache {
    stem: PathBuf,
}

impl HttpCache {
    fn new(dir: &Path, url: &str) -> Self {
        // FNV-1a: a stable file name per URL; collisions only cost a re-download.
        let hash = url.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Self {
            stem: dir.join(format!("{hash:016x}")),
        }
    }

    fn body_path(&self) -> PathBuf {
        self.stem.with_extension("body")
    }

    fn body(&self) -> Option<Vec<u8>> {
        std::fs::read(self.body_path()).ok()
    }

    fn meta(&self) -> CacheMeta {
        std::fs::read_to_string(self.stem.with_extension("meta.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Best effort: a cache that cannot be written only costs a full download next time.
    fn store(&self, body: &[u8], meta: &CacheMeta) {
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.stem.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // Write then rename, so a crash never leaves a torn "last good" copy.
            let tmp = self.stem.with_extension("body.tmp");
            std::fs::write(&tmp, body)?;
            std::fs::rename(&tmp, self.body_path())?;
            std::fs::write(
                self.stem.with_extension("meta.json"),
                serde_json::to_vec(meta).unwrap_or_default(),
            )
        };
        if let Err(err) = write() {
            tracing::warn!("cannot cache {}: {err}", self.body_path().display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn_documents_become_list_text() {
        let json = r#"{"status":"ok","data":{"prefixes":[{"prefix":"77.74.176.0/21","timelines":[]},{"prefix":"2a03:2480::/33"}],"resource":"200107"}}"#;
        let text = asn_prefixes("u", json.as_bytes()).expect("valid document");
        assert_eq!(text, "77.74.176.0/21\n2a03:2480::/33\n");
        let err = asn_prefixes("http://x/y", b"{\"data\":{}}").expect_err("no prefixes");
        assert!(err.to_string().starts_with("http://x/y: "), "{err}");
    }

    #[test]
    fn asn_urls_append_the_resource() {
        assert_eq!(
            asn_url("http://h/data.json", 1),
            "http://h/data.json?resource=AS1"
        );
        assert_eq!(asn_url("http://h/d?x=1", 2), "http://h/d?x=1&resource=AS2");
    }

    #[test]
    fn sources_parse_urls_files_and_dirs() {
        let base = std::env::temp_dir();
        assert_eq!(
            Source::parse("https://example.org/l.txt", &base),
            Source::Url("https://example.org/l.txt".into())
        );
        assert_eq!(Source::parse(".", &base), Source::Dir(base.join(".")));
        assert_eq!(
            Source::parse("/etc/x.netset", &base),
            Source::File("/etc/x.netset".into())
        );
    }
}
