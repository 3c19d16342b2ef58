//! A store that waits uses no CPU: it has no thread of its own, and a
//! caller queued behind another's commit checks for its wake-up for a few
//! tens of microseconds at most, then parks. A store that polled (or a
//! caller that kept spinning) for milliseconds around every commit would
//! take the CPU that busy neighbours and the application need, and fail
//! here. (This measures CPU time spent, not speed: it holds on a loaded
//! machine too.)

mod common;

use std::time::Duration;

use common::event;
use shale_store::{Options, Store};

/// CPU time used by this process so far (every thread, user and system).
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given and reads nothing else.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let of = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    of(usage.ru_utime) + of(usage.ru_stime)
}

/// Appends spread out in time cost each about one commit of CPU (an
/// encode, a write, an fsync's share of kernel time), not milliseconds of
/// polling after it.
#[test]
fn a_store_between_appends_parks_instead_of_polling() {
    const APPENDS: u32 = 200;
    const CPU_PER_APPEND_MAX: Duration = Duration::from_millis(1);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store.append(event("warm-up", "k", b"x")).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let before = cpu_time();
    for n in 0..APPENDS {
        store.append(event(&format!("e{}", n % 10), "k", b"payload")).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let used = cpu_time() - before;
    assert!(
        used < CPU_PER_APPEND_MAX * APPENDS,
        "{APPENDS} appends 2 ms apart used {used:?} of CPU (at most {:?} each allowed)",
        CPU_PER_APPEND_MAX
    );
    store.close().unwrap();
}
