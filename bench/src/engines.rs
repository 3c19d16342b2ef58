//! The systems measured, behind one interface: a raw append-only file, SQLite
//! (WAL, `synchronous=FULL`, one transaction per commit) and shale-store,
//! plain or with per-entity encryption. Each commit is durable when it
//! returns.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use shale_store::{Batch, Cause, Coordinate, Encryption, EventId, NewEvent, Options, Store};

/// One event to commit: its entity (an index), payload and cause (an id
/// an earlier commit returned).
pub struct Ev {
    pub entity: u32,
    pub payload: Vec<u8>,
    pub cause: Option<u128>,
}

/// The name of entity `n`.
pub fn entity_name(n: u32) -> String {
    format!("entity-{n:05}")
}

pub const KIND: &str = "deposited";

/// Commits from one thread: each call is one durable commit of all the
/// events given, and returns their ids.
pub type Committer<'a> = Box<dyn FnMut(&[Ev]) -> Vec<u128> + 'a>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum System {
    Raw,
    Sqlite,
    Shale,
    ShaleSealed,
}

impl System {
    pub const ALL: [System; 4] = [System::Raw, System::Sqlite, System::Shale, System::ShaleSealed];

    pub fn name(self) -> &'static str {
        match self {
            System::Raw => "raw file",
            System::Sqlite => "SQLite",
            System::Shale => "shale",
            System::ShaleSealed => "shale encrypted",
        }
    }

    /// Opens (creating) the system's store in `dir`.
    pub fn open(self, dir: &Path) -> Box<dyn Engine> {
        self.open_with(dir, false)
    }

    /// Opens the system's store in `dir`; shale with `full_scan` reads its
    /// whole journal, passing over its index checkpoint (the others have
    /// nothing to pass over).
    pub fn open_with(self, dir: &Path, full_scan: bool) -> Box<dyn Engine> {
        match self {
            System::Raw => Box::new(RawFile::open(dir)),
            System::Sqlite => Box::new(Sqlite::open(dir)),
            System::Shale | System::ShaleSealed => Box::new(Shale::open(dir, self == System::ShaleSealed, full_scan)),
        }
    }
}

pub trait Engine: Sync {
    /// A committer for the calling thread.
    fn committer(&self) -> Committer<'_>;
    /// Follows `id`'s causes up to `depth` hops; how many it found. `None`
    /// if the system has no causal graph.
    fn walk(&self, id: u128, depth: usize) -> Option<usize>;
    /// Reads every event back from the start, in commit order, through the
    /// system's public read path; how many there were.
    fn read_all(&self) -> usize;
}

/// The raw baseline: records appended to one file, `fdatasync` per commit.
/// Several threads append to the one file (O_APPEND) and sync it each.
struct RawFile {
    path: PathBuf,
    file: File,
}

/// A raw record: entity (u32), payload length (u32), payload.
const RAW_HEADER_LEN: usize = 8;

impl RawFile {
    fn open(dir: &Path) -> Self {
        let path = dir.join("raw.log");
        let file = OpenOptions::new().create(true).append(true).open(&path).expect("open the raw log");
        Self { path, file }
    }
}

impl Engine for RawFile {
    fn committer(&self) -> Committer<'_> {
        let mut buf = Vec::new();
        Box::new(move |events| {
            buf.clear();
            for ev in events {
                buf.extend_from_slice(&ev.entity.to_le_bytes());
                buf.extend_from_slice(&(ev.payload.len() as u32).to_le_bytes());
                buf.extend_from_slice(&ev.payload);
            }
            (&self.file).write_all(&buf).expect("raw write");
            self.file.sync_data().expect("raw fdatasync");
            vec![0; events.len()]
        })
    }

    fn walk(&self, _: u128, _: usize) -> Option<usize> {
        None
    }

    fn read_all(&self) -> usize {
        let mut bytes = Vec::new();
        File::open(&self.path).and_then(|mut f| f.read_to_end(&mut bytes)).expect("read the raw log");
        let (mut at, mut count) = (0, 0);
        while at + RAW_HEADER_LEN <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
            at += RAW_HEADER_LEN + len;
            count += 1;
        }
        count
    }
}

/// SQLite as an event store would use it: one row per event, the entity's
/// next sequence looked up in the same transaction, WAL with a full sync
/// at every commit.
struct Sqlite {
    path: PathBuf,
    /// The connection of the thread that opened it (walks and reads).
    main: std::sync::Mutex<Connection>,
}

impl Sqlite {
    fn connect(path: &Path) -> Connection {
        let conn = Connection::open(path).expect("open SQLite");
        conn.busy_timeout(std::time::Duration::from_secs(60)).expect("busy timeout");
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;").expect("pragmas");
        conn
    }

    fn open(dir: &Path) -> Self {
        let path = dir.join("events.sqlite");
        let conn = Self::connect(&path);
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS events (
                id INTEGER PRIMARY KEY,
                entity TEXT NOT NULL,
                entity_seq INTEGER NOT NULL,
                kind TEXT NOT NULL,
                cause INTEGER,
                payload BLOB NOT NULL,
                UNIQUE (entity, entity_seq)
            );",
        )
        .expect("schema");
        Self { path, main: std::sync::Mutex::new(conn) }
    }
}

impl Engine for Sqlite {
    fn committer(&self) -> Committer<'_> {
        let mut conn = Self::connect(&self.path);
        Box::new(move |events| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).expect("begin");
            let mut ids = Vec::with_capacity(events.len());
            {
                let mut version =
                    tx.prepare_cached("SELECT MAX(entity_seq) FROM events WHERE entity = ?1").expect("prepare");
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO events (entity, entity_seq, kind, cause, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .expect("prepare");
                for ev in events {
                    let entity = entity_name(ev.entity);
                    let seq: Option<i64> = version.query_row(params![entity], |r| r.get(0)).expect("version");
                    let cause = ev.cause.map(|c| c as i64);
                    insert.execute(params![entity, seq.unwrap_or(0) + 1, KIND, cause, ev.payload]).expect("insert");
                    ids.push(tx.last_insert_rowid() as u128);
                }
            }
            tx.commit().expect("commit");
            ids
        })
    }

    fn walk(&self, id: u128, depth: usize) -> Option<usize> {
        let conn = self.main.lock().expect("the main connection");
        let mut walk = conn
            .prepare_cached(
                "WITH RECURSIVE chain(id, cause, hops) AS (
                    SELECT id, cause, 0 FROM events WHERE id = ?1
                    UNION ALL
                    SELECT e.id, e.cause, chain.hops + 1 FROM events e JOIN chain ON e.id = chain.cause
                    WHERE chain.hops < ?2
                ) SELECT COUNT(*) - 1 FROM chain",
            )
            .expect("prepare");
        let found: Option<i64> =
            walk.query_row(params![id as i64, depth as i64], |r| r.get(0)).optional().expect("walk");
        Some(found.unwrap_or(0).max(0) as usize)
    }

    fn read_all(&self) -> usize {
        let conn = self.main.lock().expect("the main connection");
        let mut all = conn
            .prepare("SELECT id, entity, entity_seq, kind, cause, payload FROM events ORDER BY id")
            .expect("prepare");
        let mut rows = all.query([]).expect("query");
        let mut count = 0;
        while let Some(row) = rows.next().expect("row") {
            let payload: Vec<u8> = row.get(5).expect("payload");
            let entity: String = row.get(1).expect("entity");
            std::hint::black_box((payload, entity));
            count += 1;
        }
        count
    }
}

struct Shale {
    store: Store,
}

impl Shale {
    fn options(sealed: bool, full_scan: bool) -> Options {
        let encryption = if sealed { Encryption::PerEntity { master_key: None } } else { Encryption::Off };
        Options { encryption, full_scan, ..Options::default() }
    }

    fn open(dir: &Path, sealed: bool, full_scan: bool) -> Self {
        let store = Store::open(dir.join("shale"), Self::options(sealed, full_scan)).expect("open shale");
        Self { store }
    }
}

fn new_event(ev: &Ev) -> NewEvent {
    let coordinate = Coordinate::new(&entity_name(ev.entity), "main").expect("a valid coordinate");
    let mut event = NewEvent::new(coordinate, KIND, ev.payload.clone());
    event.cause = ev.cause.map(|c| Cause::Event(EventId(c)));
    event
}

impl Engine for Shale {
    fn committer(&self) -> Committer<'_> {
        Box::new(move |events| {
            let receipts = match events {
                [one] => vec![self.store.append(new_event(one)).expect("append")],
                many => self.store.append_batch(Batch::new(many.iter().map(new_event).collect())).expect("append"),
            };
            receipts.iter().map(|r| r.id.0).collect()
        })
    }

    fn walk(&self, id: u128, depth: usize) -> Option<usize> {
        let walk = self.store.causes(EventId(id), depth).expect("walk");
        Some(walk.map_or(0, |w| w.events.len()))
    }

    fn read_all(&self) -> usize {
        const CHUNK: usize = 10_000;
        let mut from = 1;
        loop {
            let events = self.store.read_from(from, CHUNK).expect("read");
            let Some(last) = events.last() else { return (from - 1) as usize };
            from = last.global_seq + 1;
            std::hint::black_box(&events);
        }
    }
}
