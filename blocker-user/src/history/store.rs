//! The history database: one row per event line (its `count` says how many attempts it stands
//! for), the indexed fields reports group by, and the line itself. WAL mode, so readers
//! (`vendorwall events`, `report`) never wait for the writer and a killed daemon loses nothing
//! it committed; one transaction per batch.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use rusqlite::{Connection, OpenFlags, params};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("history database {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("failed to create {}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("permission denied: cannot read {} (root only): run as root", path.display())]
    PermissionDenied { path: PathBuf },
    #[error("failed to read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    time_us INTEGER NOT NULL,
    last_us INTEGER NOT NULL,
    count INTEGER NOT NULL,
    action TEXT NOT NULL,
    list TEXT NOT NULL,
    vendor TEXT,
    exemption TEXT,
    unit TEXT,
    exe TEXT,
    package TEXT,
    comm TEXT,
    uid INTEGER,
    dst TEXT,
    port INTEGER,
    domain TEXT,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_last ON events(last_us);
CREATE TABLE IF NOT EXISTS missed (
    time_us INTEGER NOT NULL,
    count INTEGER NOT NULL
);
";

/// What to read back.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Lines whose last attempt is at or after this time.
    pub since: Option<SystemTime>,
    pub list: Option<String>,
    /// Substring of the vendor, case-insensitive.
    pub vendor: Option<String>,
    pub unit: Option<String>,
    /// At most this many lines, the most recent.
    pub limit: Option<usize>,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// Microseconds since the epoch.
pub fn micros(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl Store {
    /// Opens (creating it and its directory when missing) the database for writing.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_owned(),
                source,
            })?;
        }
        // Root's alone: events hold users, command lines and units. SQLite gives its journal
        // and WAL files the database's mode.
        {
            use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|source| StoreError::Dir {
                    path: path.to_owned(),
                    source,
                })?;
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Sqlite {
            path: path.to_owned(),
            source,
        })?;
        let store = Self {
            conn,
            path: path.to_owned(),
        };
        // Incremental auto-vacuum only takes effect on a new database; the size cap needs it
        // to give deleted pages back to the file system.
        // The writer only appends: a small page cache (512 KiB, SQLite's default is 2 MiB)
        // keeps the daemon's memory where it was.
        store.exec(
            "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA cache_size = -512;",
        )?;
        store.exec(SCHEMA)?;
        Ok(store)
    }

    /// Opens an existing database for reading only; `None` when there is none yet.
    pub fn open_read_only(path: &Path) -> Result<Option<Self>, StoreError> {
        match std::fs::File::open(path) {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(StoreError::PermissionDenied {
                    path: path.to_owned(),
                });
            }
            Err(source) => {
                return Err(StoreError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Sqlite {
            path: path.to_owned(),
            source,
        })?;
        Ok(Some(Self {
            conn,
            path: path.to_owned(),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn exec(&self, sql: &str) -> Result<(), StoreError> {
        self.conn.execute_batch(sql).map_err(self.err())
    }

    /// Stores `lines` (event JSON lines; other line types are skipped) and `missed` (lines the
    /// writer fell behind on), in one transaction.
    pub fn insert(&mut self, lines: &[impl AsRef<str>], missed: u64) -> Result<usize, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let mut stored = 0;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (time_us, last_us, count, action, list, vendor, \
                     exemption, unit, exe, package, comm, uid, dst, port, domain, line) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )
                .map_err(err)?;
            for line in lines {
                let line = line.as_ref();
                let Ok(event) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                if event["type"] != "event" {
                    continue;
                }
                let text = |name: &str| event[name].as_str().map(str::to_owned);
                let time = |name: &str| {
                    text(name)
                        .and_then(|t| humantime::parse_rfc3339_weak(&t).ok())
                        .map_or(0, micros)
                };
                insert
                    .execute(params![
                        time("time"),
                        time("last"),
                        event["count"].as_u64().unwrap_or(1) as i64,
                        text("action").unwrap_or_default(),
                        text("list").unwrap_or_default(),
                        text("vendor"),
                        text("exemption"),
                        text("unit"),
                        text("exe"),
                        text("package"),
                        text("comm"),
                        event["uid"].as_u64().map(|u| u as i64),
                        text("dst"),
                        event["port"].as_u64().map(|p| p as i64),
                        text("domain"),
                        line,
                    ])
                    .map_err(err)?;
                stored += 1;
            }
            if missed > 0 {
                tx.execute(
                    "INSERT INTO missed (time_us, count) VALUES (?1, ?2)",
                    params![micros(SystemTime::now()), missed as i64],
                )
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(stored)
    }

    /// Deletes events older than `keep`, then the oldest until the file is within `max_bytes`.
    /// Returns how many rows went.
    pub fn retain(&mut self, keep: Duration, max_bytes: u64) -> Result<u64, StoreError> {
        let cutoff = micros(
            SystemTime::now()
                .checked_sub(keep)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        );
        let mut deleted = self
            .conn
            .execute("DELETE FROM events WHERE last_us < ?1", params![cutoff])
            .map_err(self.err())? as u64;
        self.conn
            .execute("DELETE FROM missed WHERE time_us < ?1", params![cutoff])
            .map_err(self.err())?;
        // Delete a tenth of the rows at a time until the pages in use fit.
        for _ in 0..16 {
            let used = self.used_bytes()?;
            if used <= max_bytes {
                break;
            }
            let rows: i64 = self
                .conn
                .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
                .map_err(self.err())?;
            if rows == 0 {
                break;
            }
            let cut = (rows / 10).max(1);
            deleted += self
                .conn
                .execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY last_us LIMIT ?1)",
                    params![cut],
                )
                .map_err(self.err())? as u64;
        }
        self.exec("PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(deleted)
    }

    /// Bytes of the pages in use (the file's size minus its free pages).
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        let pragma = |name: &str| -> Result<i64, StoreError> {
            self.conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .map_err(self.err())
        };
        let pages = pragma("page_count")? - pragma("freelist_count")?;
        Ok((pages.max(0) as u64) * pragma("page_size")?.max(0) as u64)
    }

    /// The stored lines matching `filter`, oldest first.
    pub fn lines(&self, filter: &Filter) -> Result<Vec<String>, StoreError> {
        let (clause, args) = where_clause(filter);
        let limit = filter.limit.map_or(-1, |l| l as i64);
        let sql = format!(
            "SELECT line FROM (SELECT id, line FROM events {clause} ORDER BY last_us DESC, id DESC \
             LIMIT {limit}) ORDER BY id"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(self.err())?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get(0))
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Runs a grouping query over the events matching `filter`: `select` names the grouped
    /// columns (SQL expressions over the events table); each row is those values and the sum
    /// of `count`.
    pub fn totals(
        &self,
        filter: &Filter,
        select: &[&str],
    ) -> Result<Vec<(Vec<String>, u64)>, StoreError> {
        let (clause, args) = where_clause(filter);
        let columns = select
            .iter()
            .map(|c| format!("COALESCE({c}, '')"))
            .collect::<Vec<_>>()
            .join(", ");
        let group = (1..=select.len())
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns}, SUM(count) FROM events {clause} GROUP BY {group} ORDER BY {group}"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(self.err())?;
        let n = select.len();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                let mut keys = Vec::with_capacity(n);
                for i in 0..n {
                    keys.push(r.get::<_, String>(i)?);
                }
                Ok((keys, r.get::<_, i64>(n)?.max(0) as u64))
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Lines the writer missed since `since` (from `missed`).
    pub fn missed(&self, since: Option<SystemTime>) -> Result<u64, StoreError> {
        let since = since.map_or(0, micros);
        self.conn
            .query_row(
                "SELECT COALESCE(SUM(count), 0) FROM missed WHERE time_us >= ?1",
                params![since],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(self.err())
    }
}

fn where_clause(filter: &Filter) -> (String, Vec<String>) {
    let mut conditions = Vec::new();
    let mut args = Vec::new();
    if let Some(since) = filter.since {
        args.push(micros(since).to_string());
        conditions.push(format!("last_us >= CAST(?{} AS INTEGER)", args.len()));
    }
    if let Some(list) = &filter.list {
        args.push(list.clone());
        conditions.push(format!("list = ?{}", args.len()));
    }
    if let Some(vendor) = &filter.vendor {
        args.push(format!("%{vendor}%"));
        conditions.push(format!("vendor LIKE ?{}", args.len()));
    }
    if let Some(unit) = &filter.unit {
        args.push(unit.clone());
        conditions.push(format!("unit = ?{}", args.len()));
    }
    if conditions.is_empty() {
        (String::new(), args)
    } else {
        (format!("WHERE {}", conditions.join(" AND ")), args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(list: &str, vendor: &str, count: u64, last: &str) -> String {
        format!(
            "{{\"type\":\"event\",\"time\":\"{last}\",\"last\":\"{last}\",\"count\":{count},\
             \"action\":\"blocked\",\"list\":\"{list}\",\"vendor\":\"{vendor}\",\"dst\":\"192.0.2.1\",\
             \"port\":443,\"unit\":\"a.service\",\"uid\":0}}"
        )
    }

    #[test]
    fn stores_filters_totals_and_retains() {
        let dir = std::env::temp_dir().join(format!("vw-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("h.sqlite");
        let mut store = Store::open(&path).expect("open");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("db").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "root's alone");
        let now = humantime::format_rfc3339(SystemTime::now()).to_string();
        let old = "2000-01-01T00:00:00Z";
        let stored = store
            .insert(
                &[
                    line("kaspersky", "Kaspersky", 3, &now),
                    line("huawei", "Huawei", 2, &now),
                    line("kaspersky", "Kaspersky", 5, old),
                    "{\"type\":\"missed\",\"count\":1}".to_owned(),
                ],
                7,
            )
            .expect("insert");
        assert_eq!(stored, 3);
        let all = Filter::default();
        let totals = store.totals(&all, &["vendor"]).expect("totals");
        assert_eq!(
            totals,
            vec![(vec!["Huawei".into()], 2), (vec!["Kaspersky".into()], 8)]
        );
        let kasp = Filter {
            vendor: Some("kasp".into()),
            since: SystemTime::now().checked_sub(Duration::from_secs(3600)),
            ..Filter::default()
        };
        assert_eq!(store.lines(&kasp).expect("lines").len(), 1);
        assert_eq!(store.missed(None).expect("missed"), 7);
        let reader = Store::open_read_only(&path).expect("ro").expect("exists");
        assert_eq!(reader.lines(&all).expect("lines").len(), 3);
        assert_eq!(
            store
                .retain(Duration::from_secs(86_400), u64::MAX)
                .expect("retain"),
            1
        );
        assert_eq!(store.lines(&all).expect("lines").len(), 2);
        // The size cap deletes the oldest rows first.
        assert!(store.retain(Duration::from_secs(86_400), 1).expect("cap") >= 1);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
