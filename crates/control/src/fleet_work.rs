//! Fleet-sized work inside the control plane's async tasks: the reconciler's full pass (every
//! instance and every VM looked at) and the host state recomputed whole run for a good part
//! of a second at 50,000 instances with nothing to await. Run as it is on a worker thread of
//! the runtime, it held up the API requests queued on that worker for as long: in
//! `bench/api_load.py`, single requests waited 0.4 to 1.7 s behind a full pass right after a
//! fleet grew. [`fleet_sized`] hands the worker's queue to another thread first, so those
//! requests go on while the work shares the core with them; the work itself is read a page
//! per transaction, so the store is not held for long either.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Instances read per transaction when work reads many, and the count beyond which work on
/// instances is fleet-sized: the store is free for API requests between pages.
pub(crate) const PAGE: usize = 500;

/// Runs `f`, fleet-sized work when `heavy`, off the runtime's worker thread (see the module
/// documentation). Small work, and any work on a single-threaded runtime (the tests'), runs in
/// place.
pub(crate) fn fleet_sized<T>(heavy: bool, f: impl FnOnce() -> T) -> T {
    let multi = Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if heavy && multi {
        tokio::task::block_in_place(f)
    } else {
        f()
    }
}

/// Gives the heap's free pages back to the kernel, after fleet-sized work, which frees a
/// record per instance at once. The `corral` binary allocates with mimalloc (see its
/// `main.rs`): its free pages are purged now rather than after its delay. Under glibc's
/// malloc (the tests' processes) the arenas are trimmed: glibc returns only the top of each
/// arena by itself; after a restart of a 50,000-instance simulated cloud the process held
/// 1,003 MiB, 341 MiB once trimmed. Each call only walks its own allocator's free memory.
pub(crate) fn give_back_memory() {
    #[allow(unsafe_code)] // mi_collect takes no pointer and only walks mimalloc's own heaps
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)] // malloc_trim takes no pointer and only walks glibc's own arenas
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::fleet_sized;
    use std::time::Duration;

    /// While fleet-sized work runs on one worker, a task queued behind it on that worker runs
    /// on another: the work here waits for it (without the hand-off it would wait in vain).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_task_queued_behind_fleet_sized_work_runs_meanwhile() {
        let ran = tokio::spawn(async {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            // Spawned from this worker: it goes to this worker's own queue, in the slot no
            // other worker steals from.
            let queued = tokio::spawn(async move {
                let _ = tx.send(());
            });
            let ran = fleet_sized(true, || rx.recv_timeout(Duration::from_secs(10)).is_ok());
            queued.await.unwrap();
            ran
        })
        .await
        .unwrap();
        assert!(ran, "the task queued behind the work did not run while it did");
    }

    #[tokio::test]
    async fn runs_in_place_on_a_single_threaded_runtime() {
        assert_eq!(fleet_sized(true, || 7), 7);
        assert_eq!(fleet_sized(false, || 8), 8);
    }
}
