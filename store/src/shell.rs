//! The production shell: the core behind a lock, a writer thread fed by a
//! channel for group commit, and an inline path for a caller alone.
//!
//! A caller that finds the core idle and nothing queued commits its own
//! request on its own thread: no hand-off, no wake-up, so a lone writer
//! costs what its write and fsync cost, even beside busy neighbours. A
//! caller that finds the core busy queues its request for the writer
//! thread, which takes every request queued (up to `GROUP_REQUESTS_MAX`, up
//! to the next shred: `work.rs`, shared with the simulator), commits them
//! as one flush (one write, one fsync) and answers them all. The shell
//! holds no durability logic; that is all in the core, which runs on one
//! thread at a time.
//!
//! Waiting threads never poll for long: the writer and a caller waiting
//! alone check their channel for a few tens of microseconds, then park, so
//! an idle store uses no CPU (`tests/idle_cpu.rs`).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::core::{Core, Options};
use crate::env::{Env, RealEnv};
use crate::error::{panic_message, AppendError, CloseError, OpenError, ReadError, ShredError};
use crate::graph::Walk;
use crate::journal::recover::RecoveryReport;
use crate::limits::GROUP_REQUESTS_MAX;
use crate::model::{Batch, Event, EventId, NewEvent, Receipt, Region, ShredReceipt};
use crate::reader::Reader;
use crate::work::{self, next_work, Queue, Work};

type Reply = Sender<Result<Vec<Receipt>, AppendError>>;
type ShredReply = Sender<Result<ShredReceipt, ShredError>>;
type Request = work::Request<(Batch, Reply), (String, ShredReply)>;

/// The writer's inbox: the channel, and a request taken too early.
struct Inbox {
    receiver: Receiver<Request>,
    held: Option<Request>,
}

impl Queue<(Batch, Reply), (String, ShredReply)> for Inbox {
    fn take(&mut self) -> Option<Request> {
        self.held.take().or_else(|| self.receiver.try_recv().ok())
    }
    fn put_back(&mut self, request: Request) {
        assert!(self.held.is_none(), "one request held back at a time");
        self.held = Some(request);
    }
}

/// What the writer thread and inline callers share: the core, and the
/// message of a panic that stopped it (the core is not used after one).
struct Shared<E: Env> {
    core: Mutex<Core<E>>,
    panicked: OnceLock<String>,
}

impl<E: Env> Shared<E> {
    /// The core, unless a panic stopped it.
    fn core(&self) -> Option<MutexGuard<'_, Core<E>>> {
        let core = self.core.lock().unwrap_or_else(PoisonError::into_inner);
        self.panicked.get().is_none().then_some(core)
    }

    /// The core if no one holds it, no panic stopped it, and nothing is
    /// queued for the writer (which an inline commit would overtake).
    fn idle_core(&self, queued: &Sender<Request>) -> Option<MutexGuard<'_, Core<E>>> {
        let core = self.core.try_lock().ok()?;
        (self.panicked.get().is_none() && queued.is_empty()).then_some(core)
    }

    /// Runs `f` on the core; a panic stops the store for good (every later
    /// request is answered `Closed`, and `close` reports the panic).
    fn run<T>(&self, core: &mut Core<E>, f: impl FnOnce(&mut Core<E>) -> T) -> Option<T> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(core))) {
            Ok(value) => Some(value),
            Err(panic) => {
                let _ = self.panicked.set(panic_message(&*panic));
                None
            }
        }
    }
}

/// An open event store. Appends from any number of threads; each returns
/// only once its batch is durable.
pub struct Store<E: Env = RealEnv> {
    requests: Option<Sender<Request>>,
    shared: Arc<Shared<E>>,
    /// Callers waiting for the writer's answer right now.
    waiting: AtomicUsize,
    writer: Option<JoinHandle<()>>,
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
        let shared = Arc::new(Shared { core: Mutex::new(core), panicked: OnceLock::new() });
        let (requests, inbox) = crossbeam_channel::unbounded();
        let for_writer = shared.clone();
        let writer = std::thread::Builder::new()
            .name("shale-writer".into())
            .spawn(move || run_writer(&for_writer, inbox))
            .map_err(|e| OpenError::Io(crate::error::IoError::new("starting the writer thread", e)))?;
        Ok(Self {
            requests: Some(requests),
            shared,
            waiting: AtomicUsize::new(0),
            writer: Some(writer),
            reader,
            report,
        })
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
        let requests = self.requests.as_ref().ok_or(AppendError::Closed)?;
        if let Some(mut core) = self.shared.idle_core(requests) {
            let mut results = self.shared.run(&mut core, |core| core.commit(std::slice::from_ref(&batch)));
            return results.as_mut().and_then(Vec::pop).unwrap_or(Err(AppendError::Closed));
        }
        let (reply, answer) = crossbeam_channel::bounded(1);
        let _waiting = Waiting::enter(&self.waiting);
        requests.send(Request::Append((batch, reply))).map_err(|_| AppendError::Closed)?;
        await_reply(&answer, &self.waiting).ok_or(AppendError::Closed)?
    }

    /// Forgets `entity`'s payloads: returns once the keyset without its key
    /// is durable. Ordered with appends: events appended before are
    /// shredded, events appended after get a new key.
    pub fn shred(&self, entity: &str) -> Result<ShredReceipt, ShredError> {
        let requests = self.requests.as_ref().ok_or(ShredError::Closed)?;
        if let Some(mut core) = self.shared.idle_core(requests) {
            return self.shared.run(&mut core, |core| core.shred(entity)).unwrap_or(Err(ShredError::Closed));
        }
        let (reply, answer) = crossbeam_channel::bounded(1);
        requests.send(Request::Shred((entity.to_owned(), reply))).map_err(|_| ShredError::Closed)?;
        answer.recv().map_err(|_| ShredError::Closed)?
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

    /// Stops the writer after it has answered every queued request, then
    /// (see [`Core::close`]) starts the next segment if a flush failed since
    /// the last one, and publishes the index checkpoint (unless the last
    /// one already covers the whole journal), so that the next open reads
    /// it and only what follows. Dropping the store does the same and
    /// ignores the outcome; `CloseError::Checkpoint` and
    /// `CloseError::Segment` lose nothing acknowledged.
    pub fn close(mut self) -> Result<(), CloseError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), CloseError> {
        drop(self.requests.take());
        // Once only: `close` stops the store, and its drop finds it stopped.
        let Some(writer) = self.writer.take() else { return Ok(()) };
        if let Err(panic) = writer.join() {
            return Err(CloseError::WriterPanicked(panic_message(&*panic)));
        }
        if let Some(message) = self.shared.panicked.get() {
            return Err(CloseError::WriterPanicked(message.clone()));
        }
        // The writer is gone: close the core (a segment after a failed
        // flush, the checkpoint), so that the next open reads the checkpoint
        // and not the whole journal.
        let Some(mut core) = self.shared.core() else { return Ok(()) };
        match self.shared.run(&mut core, Core::close) {
            Some(closed) => closed,
            None => Err(CloseError::WriterPanicked(self.shared.panicked.get().cloned().unwrap_or_default())),
        }
    }
}

impl<E: Env> Drop for Store<E> {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// How many times a thread checks a channel, with a pause instruction
/// between checks, before it parks on it: about 15-50 microseconds (a pause
/// takes 40-140 cycles). An answer that comes that soon (a fast fsync, a
/// caller appending again right after its receipt) saves a thread wake-up;
/// an idle store stops using the CPU right after, whatever the neighbours.
const SPINS_BEFORE_PARK: u32 = 1 << 10;

/// Checks `channel` up to [`SPINS_BEFORE_PARK`] times while `alone` holds,
/// then parks on it until a message comes or every sender is gone.
fn spin_then_park<T>(channel: &Receiver<T>, alone: impl Fn() -> bool) -> Option<T> {
    for _ in 0..SPINS_BEFORE_PARK {
        if !alone() {
            break;
        }
        match channel.try_recv() {
            Ok(value) => return Some(value),
            Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
            Err(crossbeam_channel::TryRecvError::Empty) => std::hint::spin_loop(),
        }
    }
    channel.recv().ok()
}

/// Counts the callers waiting for an answer while one is in scope.
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

/// Waits for an answer. A caller waiting alone checks for it briefly
/// before it parks; as soon as others wait too it parks at once, so that
/// waiting callers never take the CPU the writer needs.
fn await_reply<T>(answer: &Receiver<T>, waiting: &AtomicUsize) -> Option<T> {
    spin_then_park(answer, || waiting.load(Ordering::Relaxed) <= 1)
}

impl Inbox {
    /// Waits until a request is there; false once every sender is gone.
    fn wait(&mut self) -> bool {
        if self.held.is_none() {
            self.held = spin_then_park(&self.receiver, || true);
        }
        self.held.is_some()
    }
}

fn run_writer<E: Env>(shared: &Shared<E>, receiver: Receiver<Request>) {
    let mut inbox = Inbox { receiver, held: None };
    while inbox.wait() {
        // A request that finds the store stopped by a panic is answered
        // `Closed` (its reply is dropped unanswered).
        let Some(mut core) = shared.core() else {
            drop(next_work(&mut inbox, GROUP_REQUESTS_MAX));
            continue;
        };
        match next_work(&mut inbox, GROUP_REQUESTS_MAX) {
            None => {}
            Some(Work::Shred((entity, reply))) => {
                if let Some(result) = shared.run(&mut core, |core| core.shred(&entity)) {
                    let _ = reply.send(result);
                }
            }
            Some(Work::Commit(appends)) => {
                let (batches, replies): (Vec<Batch>, Vec<Reply>) = appends.into_iter().unzip();
                let Some(results) = shared.run(&mut core, |core| core.commit(&batches)) else { continue };
                assert_eq!(results.len(), replies.len(), "one result per request");
                for (result, reply) in results.into_iter().zip(replies) {
                    // A caller that gave up waiting is no reason to stop.
                    let _ = reply.send(result);
                }
            }
        }
    }
}
