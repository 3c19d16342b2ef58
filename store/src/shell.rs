//! The production shell: the core behind a lock, and group commit led by
//! the callers themselves.
//!
//! A caller that finds no commit under way leads: it commits its own
//! request on its own thread, no hand-off, no wake-up, so a lone writer
//! costs what its write and fsync cost. A caller that finds one under way
//! queues its request and parks. When a leader's flush is done and
//! answered, it passes the lead to the caller of the oldest queued request
//! (or, with none queued, lets it go) and returns: the new leader takes
//! every request queued (up to `GROUP_REQUESTS_MAX`, up to the next shred:
//! `work.rs`, shared with the simulator), its own first, commits them as
//! one flush (one write, one fsync) and answers them all. So every request
//! wakes its caller once, with its answer or with the lead: no thread sits
//! between the callers and the disk, whose wake-up would wait for a core
//! behind busy neighbours on every flush. The shell holds no durability
//! logic; that is all in the core, which runs on one thread at a time.
//!
//! Waiting callers never poll for long: one waiting alone checks for its
//! wake-up for a few tens of microseconds, then parks (`shell/wake.rs`),
//! so an idle store uses no CPU (`tests/idle_cpu.rs`).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use crate::core::{Core, Options};
use crate::env::{Env, RealEnv};
use crate::error::{panic_message, AppendError, CloseError, OpenError, ReadError, ShredError};
use crate::graph::Walk;
use crate::journal::recover::RecoveryReport;
use crate::limits::GROUP_REQUESTS_MAX;
use crate::model::{Batch, Event, EventId, NewEvent, Receipt, Region, ShredReceipt};
use crate::reader::Reader;
use crate::work::{self, next_work, Work};

mod wake;

use wake::{slot, Wait, Waker};

/// What a queued caller is woken with.
enum Wake<T> {
    /// Its request was committed (or refused).
    Done(T),
    /// Its request is first in line and nobody leads: it leads now.
    Lead,
}

type AppendResult = Result<Vec<Receipt>, AppendError>;
type ShredResult = Result<ShredReceipt, ShredError>;
type Reply = Waker<Wake<AppendResult>>;
type ShredReply = Waker<Wake<ShredResult>>;
type Request = work::Request<(Batch, Reply), (String, ShredReply)>;

impl Request {
    /// Wakes the request's caller to lead.
    fn hand_lead(&self) {
        match self {
            Request::Append((_, reply)) => reply.wake(Wake::Lead),
            Request::Shred((_, reply)) => reply.wake(Wake::Lead),
        }
    }
}

/// The requests waiting for a leader, and whether one leads. Nothing is
/// queued while nobody leads: a leader that finds the line empty lets the
/// lead go, and a caller that finds nobody leading leads.
#[derive(Default)]
struct Line {
    queued: VecDeque<Request>,
    leading: bool,
}

/// What the callers share: the core, the line of requests waiting for it,
/// and the message of a panic that stopped it (the core is not used after
/// one).
struct Shared<E: Env> {
    core: Mutex<Core<E>>,
    line: Mutex<Line>,
    panicked: OnceLock<String>,
}

/// Where a caller stands once its request is in.
enum Turn {
    /// Nobody led: the caller leads, its request (given back) not queued.
    Lead(Request),
    /// Queued behind a leader.
    Queued,
    /// The store was stopped by a panic.
    Closed,
}

impl<E: Env> Shared<E> {
    fn line(&self) -> MutexGuard<'_, Line> {
        self.line.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The core, unless a panic stopped it.
    fn core(&self) -> Option<MutexGuard<'_, Core<E>>> {
        let core = self.core.lock().unwrap_or_else(PoisonError::into_inner);
        self.panicked.get().is_none().then_some(core)
    }

    /// Takes the lead if nobody has it; else queues `request`.
    fn enter(&self, request: Request) -> Turn {
        let mut line = self.line();
        if self.panicked.get().is_some() {
            return Turn::Closed;
        }
        if !line.leading {
            assert!(line.queued.is_empty(), "requests queued with nobody leading");
            line.leading = true;
            return Turn::Lead(request);
        }
        line.queued.push_back(request);
        Turn::Queued
    }

    /// Runs `f` on the core; a panic stops the store for good (every later
    /// request is answered `Closed`, and `close` reports the panic).
    fn run<T>(&self, f: impl FnOnce(&mut Core<E>) -> T) -> Option<T> {
        let mut core = self.core()?;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut core))) {
            Ok(value) => Some(value),
            Err(panic) => {
                let _ = self.panicked.set(panic_message(&*panic));
                None
            }
        }
    }

    /// The leader's work on the line: takes the next unit (the leader's own
    /// request first), commits it and answers it.
    fn lead_line(&self) {
        let work = next_work(&mut self.line().queued, GROUP_REQUESTS_MAX);
        match work {
            None => unreachable!("a caller woken to lead has its request in line"),
            Some(Work::Shred((entity, reply))) => {
                if let Some(result) = self.run(|core| core.shred(&entity)) {
                    reply.wake(Wake::Done(result));
                }
            }
            Some(Work::Commit(appends)) => {
                let (batches, replies): (Vec<Batch>, Vec<Reply>) = appends.into_iter().unzip();
                // After a panic the replies are dropped: `Closed`.
                let Some(results) = self.run(|core| core.commit(&batches)) else { return };
                assert_eq!(results.len(), replies.len(), "one result per request");
                for (result, reply) in results.into_iter().zip(replies) {
                    reply.wake(Wake::Done(result));
                }
            }
        }
    }

    /// Runs `turn` as the leader, then passes the lead on, even if `turn`
    /// unwinds (a bug in the shell must not leave the line led by nobody,
    /// its callers parked for good).
    fn lead<T>(&self, turn: impl FnOnce() -> T) -> T {
        struct Passing<'a, E: Env>(&'a Shared<E>);
        impl<E: Env> Drop for Passing<'_, E> {
            fn drop(&mut self) {
                self.0.pass_lead();
            }
        }
        let _passing = Passing(self);
        turn()
    }

    /// Ends a leader's turn: the lead goes to the caller of the oldest
    /// queued request, or nobody leads. After a panic, every queued
    /// request is dropped (answered `Closed`).
    fn pass_lead(&self) {
        let mut line = self.line();
        if self.panicked.get().is_some() {
            line.queued.clear();
        }
        match line.queued.front() {
            Some(next) => next.hand_lead(),
            None => line.leading = false,
        }
    }

    /// Waits for a queued request's wake-up; leads if woken to, then takes
    /// its answer. `None` if the store stopped first.
    fn wait<T>(&self, answer: &Wait<Wake<T>>, waiting: &AtomicUsize) -> Option<T> {
        let woken = {
            let _waiting = Waiting::enter(waiting);
            answer.wait(waiting)?
        };
        match woken {
            Wake::Done(result) => Some(result),
            Wake::Lead => {
                self.lead(|| self.lead_line());
                match answer.take_now() {
                    Some(Wake::Done(result)) => Some(result),
                    _ => None,
                }
            }
        }
    }
}

/// An open event store. Appends from any number of threads; each returns
/// only once its batch is durable.
pub struct Store<E: Env = RealEnv> {
    shared: Shared<E>,
    /// Callers waiting for their wake-up right now.
    waiting: AtomicUsize,
    /// Set once the store is stopped (by `close` or its drop).
    stopped: bool,
    reader: Reader,
    report: RecoveryReport,
}

impl Store<RealEnv> {
    /// Opens the store in `dir` on the real file system.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Self, OpenError> {
        Self::open_in(RealEnv::default(), dir, options)
    }
}

impl<E: Env> Store<E> {
    /// Opens the store in `dir` within `env`.
    pub fn open_in(env: E, dir: impl AsRef<Path>, options: Options) -> Result<Self, OpenError> {
        let (core, report) = Core::open(env, dir.as_ref(), &options)?;
        let reader = core.reader();
        let shared = Shared { core: Mutex::new(core), line: Mutex::default(), panicked: OnceLock::new() };
        Ok(Self { shared, waiting: AtomicUsize::new(0), stopped: false, reader, report })
    }

    /// What recovery found when this store was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    pub fn append(&self, event: NewEvent) -> Result<Receipt, AppendError> {
        let mut receipts = self.append_batch(Batch::from(event))?;
        assert_eq!(receipts.len(), 1, "one event, one receipt");
        Ok(receipts.remove(0))
    }

    /// Appends every event of `batch` or none of them.
    pub fn append_batch(&self, batch: Batch) -> Result<Vec<Receipt>, AppendError> {
        let (reply, answer) = slot();
        match self.shared.enter(Request::Append((batch, reply))) {
            Turn::Closed => Err(AppendError::Closed),
            Turn::Lead(request) => {
                let Request::Append((batch, _)) = request else { unreachable!("an append comes back") };
                let mut results =
                    self.shared.lead(|| self.shared.run(|core| core.commit(std::slice::from_ref(&batch))));
                results.as_mut().and_then(Vec::pop).unwrap_or(Err(AppendError::Closed))
            }
            Turn::Queued => self.shared.wait(&answer, &self.waiting).unwrap_or(Err(AppendError::Closed)),
        }
    }

    /// Forgets `entity`'s payloads: returns once the keyset without its key
    /// is durable. Ordered with appends: events appended before are
    /// shredded, events appended after get a new key.
    pub fn shred(&self, entity: &str) -> Result<ShredReceipt, ShredError> {
        let (reply, answer) = slot();
        match self.shared.enter(Request::Shred((entity.to_owned(), reply))) {
            Turn::Closed => Err(ShredError::Closed),
            Turn::Lead(_) => {
                self.shared.lead(|| self.shared.run(|core| core.shred(entity))).unwrap_or(Err(ShredError::Closed))
            }
            Turn::Queued => self.shared.wait(&answer, &self.waiting).unwrap_or(Err(ShredError::Closed)),
        }
    }

    pub fn get(&self, id: EventId) -> Result<Option<Event>, ReadError> {
        self.reader.get(id)
    }

    pub fn query(&self, region: &Region) -> Result<Vec<Event>, ReadError> {
        self.reader.query(region)
    }

    pub fn read_from(&self, from: u64, limit: usize) -> Result<Vec<Event>, ReadError> {
        self.reader.read_from(from, limit)
    }

    /// The causes of `id` up to its root; see [`Reader::causes`].
    pub fn causes(&self, id: EventId, limit: usize) -> Result<Option<Walk>, ReadError> {
        self.reader.causes(id, limit)
    }

    /// The effects of `id`, breadth first; see [`Reader::effects`].
    pub fn effects(&self, id: EventId, depth_max: u32, count_max: usize) -> Result<Option<Walk>, ReadError> {
        self.reader.effects(id, depth_max, count_max)
    }

    /// The events of a correlation, in commit order.
    pub fn correlated(&self, correlation: EventId, limit: usize) -> Result<Vec<Event>, ReadError> {
        self.reader.correlated(correlation, limit)
    }

    pub fn version(&self, entity: &str) -> u64 {
        self.reader.version(entity)
    }

    /// A read handle that outlives borrows of the store.
    pub fn reader(&self) -> Reader {
        self.reader.clone()
    }

    /// Closes the store: (see [`Core::close`]) starts the next segment if
    /// a flush failed since the last one, and publishes the index
    /// checkpoint (unless the last one already covers the whole journal),
    /// so that the next open reads it and only what follows. Every request
    /// made before has been answered (each returns only once answered, and
    /// `close` takes the store). Dropping the store does the same and
    /// ignores the outcome; `CloseError::Checkpoint` and
    /// `CloseError::Segment` lose nothing acknowledged.
    pub fn close(mut self) -> Result<(), CloseError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), CloseError> {
        // Once only: `close` stops the store, and its drop finds it stopped.
        if std::mem::replace(&mut self.stopped, true) {
            return Ok(());
        }
        assert!(!self.shared.line().leading, "no request is under way when the store is closed");
        let closed = self.shared.run(Core::close);
        match self.shared.panicked.get() {
            Some(message) => Err(CloseError::WriterPanicked(message.clone())),
            None => closed.unwrap_or(Ok(())),
        }
    }
}

impl<E: Env> Drop for Store<E> {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Counts the callers waiting for a wake-up while one is in scope.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
