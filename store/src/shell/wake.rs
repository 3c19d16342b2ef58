//! A queued caller's wake-up: a slot the leader fills and the caller waits
//! on, parking on a condition variable.
//!
//! Not a channel: a blocking channel receive (crossbeam's, and std's, which
//! is a port of it) yields the thread a few times before it parks, and
//! behind busy neighbours each yield gives the core away for a scheduler
//! time slice: a caller woken by its leader found its answer milliseconds
//! late. A condition variable parks at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// How many times a caller waiting alone checks its slot, with a pause
/// instruction between checks, before it parks: about 15-50 microseconds (a
/// pause takes 40-140 cycles). A wake-up that comes that soon (a fast
/// fsync) saves a thread wake-up; an idle store stops using the CPU right
/// after, whatever the neighbours.
const SPINS_BEFORE_PARK: u32 = 1 << 10;

enum State<T> {
    Empty,
    Full(T),
    /// The sending side is gone with the slot empty: no wake-up will come.
    Gone,
}

struct Inner<T> {
    state: State<T>,
    /// The caller is parked on the condition variable (or about to be):
    /// only then does a wake-up notify it, a system call otherwise spent
    /// on a caller still checking its slot, or on none at all.
    parked: bool,
}

struct Slot<T> {
    inner: Mutex<Inner<T>>,
    filled: Condvar,
}

impl<T> Slot<T> {
    fn inner(&self) -> MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `state` in the slot (under its lock) and notifies the caller
    /// if it is parked.
    fn set(&self, mut inner: MutexGuard<'_, Inner<T>>, state: State<T>) {
        inner.state = state;
        let parked = inner.parked;
        drop(inner);
        if parked {
            self.filled.notify_one();
        }
    }
}

/// The leader's side: fills the slot (more than once: a caller first woken
/// to lead puts its own answer there). Dropped with the slot empty, it
/// wakes the caller with nothing.
pub struct Waker<T>(Arc<Slot<T>>);

/// The caller's side.
pub struct Wait<T>(Arc<Slot<T>>);

/// A new slot, empty.
pub fn slot<T>() -> (Waker<T>, Wait<T>) {
    let slot =
        Arc::new(Slot { inner: Mutex::new(Inner { state: State::Empty, parked: false }), filled: Condvar::new() });
    (Waker(slot.clone()), Wait(slot))
}

impl<T> Waker<T> {
    pub fn wake(&self, value: T) {
        let inner = self.0.inner();
        assert!(matches!(inner.state, State::Empty), "a wake-up is taken before the next is given");
        self.0.set(inner, State::Full(value));
    }
}

impl<T> Drop for Waker<T> {
    fn drop(&mut self) {
        let inner = self.0.inner();
        if matches!(inner.state, State::Empty) {
            self.0.set(inner, State::Gone);
        }
    }
}

impl<T> Wait<T> {
    /// The value given, if one is there now; `None` if none is (or none
    /// will come).
    pub fn take_now(&self) -> Option<T> {
        let mut inner = self.0.inner();
        match std::mem::replace(&mut inner.state, State::Empty) {
            State::Full(value) => Some(value),
            other => {
                inner.state = other;
                None
            }
        }
    }

    /// Waits for the value; `None` if the leader's side went away without
    /// one. A caller waiting alone (`waiting`, counting it, is at most 1)
    /// checks briefly before it parks; as soon as others wait too it parks
    /// at once, so that waiting callers never take the CPU the leader needs.
    pub fn wait(&self, waiting: &AtomicUsize) -> Option<T> {
        for _ in 0..SPINS_BEFORE_PARK {
            if waiting.load(Ordering::Relaxed) > 1 {
                break;
            }
            if let Some(value) = self.take_now() {
                return Some(value);
            }
            if self.gone() {
                return None;
            }
            std::hint::spin_loop();
        }
        let mut inner = self.0.inner();
        loop {
            match std::mem::replace(&mut inner.state, State::Empty) {
                State::Full(value) => return Some(value),
                State::Gone => {
                    inner.state = State::Gone;
                    return None;
                }
                State::Empty => {
                    inner.parked = true;
                    inner = self.0.filled.wait(inner).unwrap_or_else(PoisonError::into_inner);
                    inner.parked = false;
                }
            }
        }
    }

    fn gone(&self) -> bool {
        matches!(self.0.inner().state, State::Gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts for a waiter that parks at once (others wait too).
    const NOT_ALONE: usize = 2;

    #[test]
    fn a_wake_up_given_before_or_during_the_wait_is_taken_once() {
        let (waker, wait) = slot();
        waker.wake(1);
        assert_eq!(wait.wait(&AtomicUsize::new(1)), Some(1));
        assert_eq!(wait.take_now(), None);
        for n in 0..100 {
            std::thread::scope(|s| {
                s.spawn(|| waker.wake(n));
                assert_eq!(wait.wait(&AtomicUsize::new(NOT_ALONE)), Some(n), "woken, parked or not");
            });
        }
    }

    #[test]
    fn a_waker_dropped_without_a_value_wakes_the_waiter_with_none() {
        for _ in 0..100 {
            let (waker, wait) = slot::<u32>();
            std::thread::scope(|s| {
                s.spawn(move || drop(waker));
                assert_eq!(wait.wait(&AtomicUsize::new(NOT_ALONE)), None);
            });
        }
        let (waker, wait) = slot();
        waker.wake(3);
        drop(waker);
        assert_eq!(wait.wait(&AtomicUsize::new(NOT_ALONE)), Some(3), "a value given stays when the waker goes");
    }
}
