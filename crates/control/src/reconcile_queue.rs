//! What the reconciler has to look at, so a pass costs what changed, not what the fleet holds:
//! the instances API actions changed (marked by id), the instances whose VM report changed
//! since the last pass (a new generation, a new VM, a VM gone), and, at start and every
//! [`FULL_EVERY`] as a backstop, every instance.

use corral_agent_api::VmStatus;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a pass looks at every instance regardless, to repair what no event reported.
pub(crate) const FULL_EVERY: Duration = Duration::from_secs(30);

/// The instances one pass looks at.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Work {
    All,
    Only(Vec<String>),
}

pub(crate) struct WorkQueue {
    marked: Mutex<HashSet<String>>,
    full: AtomicBool,
    last_full: Mutex<Option<Instant>>,
    /// The generation of each VM report seen by the last pass.
    seen: Mutex<HashMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WorkQueue {
    /// A queue whose first pass looks at everything.
    pub fn new() -> WorkQueue {
        WorkQueue { marked: Mutex::default(), full: AtomicBool::new(true), last_full: Mutex::default(), seen: Mutex::default() }
    }

    pub fn mark(&self, ids: impl IntoIterator<Item = String>) {
        lock(&self.marked).extend(ids);
    }

    /// Whether nothing is marked for the next pass.
    pub fn is_idle(&self) -> bool {
        lock(&self.marked).is_empty() && !self.full.load(Ordering::SeqCst)
    }

    /// The instances whose VM report differs from the last pass's: a newer generation, a VM
    /// not seen before, or one that is gone.
    pub fn vm_changes(&self, reports: &[VmStatus]) -> Vec<String> {
        let mut seen = lock(&self.seen);
        let mut changed: Vec<String> =
            reports.iter().filter(|v| seen.get(&v.instance_id) != Some(&v.generation)).map(|v| v.instance_id.clone()).collect();
        let now: HashMap<String, u64> = reports.iter().map(|v| (v.instance_id.clone(), v.generation)).collect();
        changed.extend(seen.keys().filter(|id| !now.contains_key(*id)).cloned());
        *seen = now;
        changed
    }

    /// What this pass looks at, with `changed` (from [`WorkQueue::vm_changes`]); empties the
    /// queue.
    pub fn take(&self, changed: Vec<String>) -> Work {
        let mut marked = lock(&self.marked);
        let mut last_full = lock(&self.last_full);
        let due = last_full.is_none_or(|t| t.elapsed() >= FULL_EVERY);
        if self.full.swap(false, Ordering::SeqCst) || due {
            marked.clear();
            *last_full = Some(Instant::now());
            return Work::All;
        }
        marked.extend(changed);
        let mut ids: Vec<String> = marked.drain().collect();
        ids.sort();
        Work::Only(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_agent_api::VmState;

    fn vm(id: &str, generation: u64) -> VmStatus {
        VmStatus { instance_id: id.into(), state: VmState::Running, generation }
    }

    #[test]
    fn the_first_pass_is_full_then_only_changes() {
        let q = WorkQueue::new();
        let reports = [vm("i-1", 1), vm("i-2", 1)];
        let changed = q.vm_changes(&reports);
        assert_eq!(q.take(changed), Work::All);
        assert_eq!(q.take(q.vm_changes(&reports)), Work::Only(vec![]));
        q.mark(["i-9".to_string()]);
        assert_eq!(q.take(q.vm_changes(&[vm("i-1", 2), vm("i-2", 1)])), Work::Only(vec!["i-1".into(), "i-9".into()]));
        // i-2's VM is gone.
        assert_eq!(q.take(q.vm_changes(&[vm("i-1", 2)])), Work::Only(vec!["i-2".into()]));
    }
}
