//! One actor per VM: a cheap [`VmHandle`] (a bounded channel plus the last report) and a
//! runner task that owns the VM's QEMU process and its QMP connection. Requests for one VM are
//! handled one at a time, in order; VMs never wait on each other.
//!
//! ```text
//!              vm_start                 query-status: "running"
//!   (none) ────────────────▶ Starting ─────────────────────────▶ Running
//!     ▲  ▲                    │  ▲  │                              │  │
//!     │  └ first start failed ┘  │  │ vm_stop            vm_stop   │  │
//!     │    (its files removed)   │  ▼                              ▼  │
//!     │                          │  Stopping ◀─────────────────────┘  │ guest powered off,
//!     │                 vm_start │  │ process gone: the guest obeyed  │ QEMU crashed
//!     │                          │  │ ACPI, or after stop_timeout (or │ (from Starting too)
//!     │                          │  ▼ force): QMP quit, then SIGKILL  │
//!     │                          Stopped ◀──── process gone ──────────┘
//!     │
//!     └── vm_destroy, from any state: SIGKILL the verified pid, wait, delete the directory
//! ```
//!
//! "Process gone" is observed, never assumed: the runner polls the pid (signal 0 plus the
//! `/proc/<pid>/cmdline` check of [`super::process`]) every
//! [`POLL_INTERVAL`](runner::POLL_INTERVAL), and looks at once when QEMU closes the QMP
//! socket. A guest that powers itself off, or a QEMU that crashes, goes to `Stopped` the same
//! way. Each change takes a new generation from the shared [`GenerationClock`] and wakes the
//! agent's `changes()` notifier.
//!
//! Dropping every handle (the agent going away) ends the runner but leaves the QEMU process
//! running: the next agent re-adopts it through [`adopt`].
//!
//! Volumes of a running VM (hot-plug, hot-unplug, live snapshot, resize, rebase) go through the
//! same runner, so they are serialized with start and stop ([`disk`] draws what each asks of
//! QEMU).
//!
//! This file holds what every runner shares ([`Context`], [`GenerationClock`]); the rest is one
//! job a file: [`handle`] (the handle, its requests, starting a runner), [`runner`] (the
//! runner's loop over requests, QMP events and the poll tick, and its QMP connection),
//! [`lifecycle`] (the process: start, stop, reboot, destroy, re-adoption), [`disk`] (live
//! attach, detach, snapshot and resize), [`disk_rebase`] (live rebase through a `block-stream`
//! job) and [`block`] (QEMU's block-layer answers read into values; pure).

mod block;
mod disk;
mod disk_rebase;
mod handle;
mod lifecycle;
mod runner;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::cmdline::LaunchOptions;
use super::process::is_vm_process;
use crate::pool::Pool;

pub(crate) use handle::{spawn_new, VmHandle};
pub(crate) use lifecycle::adopt;

/// Generation numbers: strictly increasing within a process, and (being wall-clock
/// nanoseconds at least) never repeated by a later agent on the same host.
#[derive(Debug, Default)]
pub(crate) struct GenerationClock {
    last: AtomicU64,
}

impl GenerationClock {
    pub(crate) fn next(&self) -> u64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        let prev = self
            .last
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |prev| Some(prev.saturating_add(1).max(now)))
            .expect("closure always returns Some");
        prev.saturating_add(1).max(now)
    }
}

/// What every runner shares: configuration, host facts, the clock and the notifier.
#[derive(Debug)]
pub(crate) struct Context {
    pub state_dir: PathBuf,
    pub qemu_binary: String,
    /// File name of `qemu_binary`, accepted by the `/proc` cmdline check.
    pub qemu_binary_name: String,
    /// The storage pool the VMs' disks are layers of.
    pub pool: Pool,
    pub stop_timeout: Duration,
    pub launch: LaunchOptions,
    pub clock: GenerationClock,
    pub changes: Arc<Notify>,
    /// The data path's namespace prefix; `None` when the agent runs without one.
    pub ns_prefix: Option<String>,
}

impl Context {
    fn is_ours(&self, pid: i32, id: &str) -> bool {
        is_vm_process(pid, &self.qemu_binary_name, id)
    }
}

/// `err` and its sources, for logs.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_grow_and_start_from_the_wall_clock() {
        let clock = GenerationClock::default();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        let a = clock.next();
        let b = clock.next();
        assert!(a >= now && b > a);
        // A later agent (a new clock) still starts above anything this one handed out.
        let later = GenerationClock::default();
        assert!(later.next() > b.saturating_sub(1_000_000_000));
    }

    #[test]
    fn generations_never_go_backwards_even_if_the_clock_does() {
        let clock = GenerationClock { last: AtomicU64::new(u64::MAX / 2) };
        let a = clock.next();
        assert_eq!(a, u64::MAX / 2 + 1);
        assert_eq!(clock.next(), a + 1);
    }
}
