//! What the reconciler has to look at, so a pass costs what changed, not what the fleet holds:
//! the instances API actions changed (marked by id), the instances whose VM changed since the
//! last pass (a new generation, a new VM, a VM gone: the agent's change feed says which), and,
//! at start and every [`FULL_EVERY`] as a backstop, every instance. The queue also keeps the
//! agent's VMs as last reported, so a pass reads the VMs of the instances it looks at without
//! listing them all.
//!
//! The backstop does not read every instance either: the queue keeps, for each instance a
//! pass found needing nothing, the revision it had and the generation of its VM then
//! ([`WorkQueue::settle`]). A full pass reads the revision of every instance (no record is
//! decoded) and looks only at those whose revision or VM differ from what was settled: the
//! store raises an instance's revision with every write to it, so a change that marked
//! nothing is still found. At 50,000 instances that pass cost about 1.3 G instructions
//! when it read every record (callgrind), a third of a second of the core every 30 s.

use corral_agent_api::{VmChanges, VmStatus};
use rustc_hash::{FxHashMap, FxHashSet};
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

/// Its sets and maps hash with FxHash: the ids are the cloud's own, never a client's, and
/// SipHash was over a quarter of a backstop pass's instructions at 50,000 instances.
pub(crate) struct WorkQueue {
    marked: Mutex<FxHashSet<String>>,
    full: AtomicBool,
    last_full: Mutex<Option<Instant>>,
    /// The agent's VMs as last reported.
    vms: Mutex<FxHashMap<String, VmStatus>>,
    /// The generation of the last report, to ask the agent what changed since.
    since: Mutex<Option<u64>>,
    /// The instances a pass found needing nothing, with what they were then.
    settled: Mutex<FxHashMap<String, Settled>>,
}

/// What an instance was when a pass found it needing nothing: its revision, and the
/// generation of its VM (`None`: it had none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Settled {
    rev: u64,
    vm: Option<u64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WorkQueue {
    /// A queue whose first pass looks at everything.
    pub fn new() -> WorkQueue {
        WorkQueue {
            marked: Mutex::default(),
            full: AtomicBool::new(true),
            last_full: Mutex::default(),
            vms: Mutex::default(),
            since: Mutex::default(),
            settled: Mutex::default(),
        }
    }

    /// The next pass looks at every instance, as the first does.
    pub fn mark_all(&self) {
        self.full.store(true, Ordering::SeqCst);
    }

    /// A pass found this instance, at revision `rev` with this VM, needing nothing.
    pub fn settle(&self, id: &str, rev: u64, vm: Option<&VmStatus>) {
        lock(&self.settled).insert(id.to_string(), Settled { rev, vm: vm.map(|v| v.generation) });
    }

    /// A pass acted on this instance (or it is gone): the next full pass looks at it.
    pub fn unsettle(&self, id: &str) {
        lock(&self.settled).remove(id);
    }

    /// Of these instances (id and revision: every instance there is), those a full pass
    /// must look at: all but the settled ones whose revision and VM are as they were. The
    /// settled instances not among them are forgotten.
    pub fn unsettled(&self, all: &[(String, u64)]) -> Vec<String> {
        let vms = lock(&self.vms);
        let mut settled = lock(&self.settled);
        let now: FxHashSet<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
        settled.retain(|id, _| now.contains(id.as_str()));
        all.iter()
            .filter(|(id, rev)| settled.get(id) != Some(&Settled { rev: *rev, vm: vms.get(id).map(|v| v.generation) }))
            .map(|(id, _)| id.clone())
            .collect()
    }

    pub fn mark(&self, ids: impl IntoIterator<Item = String>) {
        lock(&self.marked).extend(ids);
    }

    /// Whether nothing is marked for the next pass.
    pub fn is_idle(&self) -> bool {
        lock(&self.marked).is_empty() && !self.full.load(Ordering::SeqCst)
    }

    fn full_due(&self) -> bool {
        self.full.load(Ordering::SeqCst) || lock(&self.last_full).is_none_or(|t| t.elapsed() >= FULL_EVERY)
    }

    /// What to ask the agent's change feed: `None` (every VM) before a full pass.
    pub fn since(&self) -> Option<u64> {
        if self.full_due() {
            return None;
        }
        *lock(&self.since)
    }

    /// Takes in the agent's report; returns the instances whose VM changed since the last
    /// one (a newer generation, a VM not seen before, one that is gone).
    pub fn vm_report(&self, report: VmChanges) -> Vec<String> {
        let mut vms = lock(&self.vms);
        let mut changed = Vec::new();
        if report.complete {
            let now: FxHashMap<String, VmStatus> = report.vms.into_iter().map(|v| (v.instance_id.clone(), v)).collect();
            changed.extend(
                now.values().filter(|v| vms.get(&v.instance_id).map(|o| o.generation) != Some(v.generation)).map(|v| v.instance_id.clone()),
            );
            changed.extend(vms.keys().filter(|id| !now.contains_key(*id)).cloned());
            *vms = now;
        } else {
            for v in report.vms {
                if vms.get(&v.instance_id).map(|o| o.generation) != Some(v.generation) {
                    changed.push(v.instance_id.clone());
                }
                vms.insert(v.instance_id.clone(), v);
            }
            changed.extend(report.gone.into_iter().filter(|id| vms.remove(id).is_some()));
        }
        *lock(&self.since) = Some(report.generation);
        changed
    }

    /// This instance's VM as last reported.
    pub fn vm(&self, id: &str) -> Option<VmStatus> {
        lock(&self.vms).get(id).cloned()
    }

    /// Every VM as last reported.
    pub fn vm_ids(&self) -> Vec<String> {
        lock(&self.vms).keys().cloned().collect()
    }

    /// What this pass looks at, with `changed` (from [`WorkQueue::vm_changes`]); empties the
    /// queue.
    pub fn take(&self, changed: Vec<String>) -> Work {
        let mut marked = lock(&self.marked);
        let mut last_full = lock(&self.last_full);
        let due = last_full.is_none_or(|t| t.elapsed() >= FULL_EVERY);
        // The set is taken, not drained: a drain walks every bucket of the table, and a big
        // launch leaves it tens of thousands of buckets wide, which every pass after walked
        // (74 k instructions a pass at 50,000 instances).
        let taken = std::mem::take(&mut *marked);
        if self.full.swap(false, Ordering::SeqCst) || due {
            *last_full = Some(Instant::now());
            return Work::All;
        }
        let mut ids: Vec<String> = taken.into_iter().chain(changed).collect();
        ids.sort();
        ids.dedup();
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

    fn all(vms: &[VmStatus]) -> VmChanges {
        VmChanges { vms: vms.to_vec(), gone: vec![], complete: true, generation: 10 }
    }

    #[test]
    fn the_first_pass_is_full_then_only_changes() {
        let q = WorkQueue::new();
        assert_eq!(q.since(), None, "the first pass asks for every VM");
        let reports = [vm("i-1", 1), vm("i-2", 1)];
        let changed = q.vm_report(all(&reports));
        assert_eq!(q.take(changed), Work::All);
        assert_eq!(q.since(), Some(10));
        assert_eq!(q.take(q.vm_report(all(&reports))), Work::Only(vec![]));
        q.mark(["i-9".to_string()]);
        assert_eq!(q.take(q.vm_report(all(&[vm("i-1", 2), vm("i-2", 1)]))), Work::Only(vec!["i-1".into(), "i-9".into()]));
        // i-2's VM is gone.
        assert_eq!(q.take(q.vm_report(all(&[vm("i-1", 2)]))), Work::Only(vec!["i-2".into()]));
        assert_eq!(q.vm("i-2"), None);
    }

    /// Taking the marks leaves no wide table behind: a drain kept the buckets of the biggest
    /// launch, and every pass after walked them all.
    #[test]
    fn taking_the_marks_of_a_big_launch_leaves_an_empty_table() {
        let q = WorkQueue::new();
        q.take(q.vm_report(all(&[])));
        q.mark((0..20_000).map(|i| format!("i-{i:017x}")));
        let Work::Only(ids) = q.take(vec!["i-00000000000000005".into(), "i-9".into()]) else { panic!("not a full pass") };
        assert_eq!(ids.len(), 20_001, "the marks and the changes, each once");
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(lock(&q.marked).capacity(), 0);
    }

    /// A backstop pass looks at an instance unless it was settled at the revision it has
    /// now with the VM it has now.
    #[test]
    fn a_settled_instance_is_looked_at_again_when_its_revision_or_its_vm_changes() {
        let q = WorkQueue::new();
        q.take(q.vm_report(all(&[vm("i-1", 1), vm("i-2", 1)])));
        let every = |revs: &[(&str, u64)]| revs.iter().map(|(id, r)| (id.to_string(), *r)).collect::<Vec<_>>();
        assert_eq!(q.unsettled(&every(&[("i-1", 3), ("i-2", 4), ("i-3", 0)])), ["i-1", "i-2", "i-3"], "nothing settled yet");
        q.settle("i-1", 3, q.vm("i-1").as_ref());
        q.settle("i-2", 4, q.vm("i-2").as_ref());
        q.settle("i-3", 0, None);
        assert!(q.unsettled(&every(&[("i-1", 3), ("i-2", 4), ("i-3", 0)])).is_empty());
        // A write to i-1, a new generation of i-2's VM, a VM for i-3.
        assert_eq!(q.unsettled(&every(&[("i-1", 4), ("i-2", 4), ("i-3", 0)])), ["i-1"]);
        q.vm_report(VmChanges { vms: vec![vm("i-2", 2), vm("i-3", 2)], gone: vec![], complete: false, generation: 11 });
        assert_eq!(q.unsettled(&every(&[("i-1", 3), ("i-2", 4), ("i-3", 0)])), ["i-2", "i-3"]);
        // Acted on, then gone: looked at again, then forgotten.
        q.unsettle("i-1");
        assert_eq!(q.unsettled(&every(&[("i-1", 3)])), ["i-1"]);
        assert_eq!(lock(&q.settled).len(), 0, "i-2 and i-3 are gone from the store");
    }

    #[test]
    fn a_change_feed_updates_the_vms_kept() {
        let q = WorkQueue::new();
        q.take(q.vm_report(all(&[vm("i-1", 1), vm("i-2", 1), vm("i-3", 1)])));
        let feed = VmChanges { vms: vec![vm("i-2", 5), vm("i-4", 6)], gone: vec!["i-3".into()], complete: false, generation: 7 };
        let mut changed = q.vm_report(feed);
        changed.sort();
        assert_eq!(changed, ["i-2", "i-3", "i-4"]);
        assert_eq!(q.since(), Some(7));
        assert_eq!(q.vm("i-2").map(|v| v.generation), Some(5));
        assert_eq!(q.vm("i-3"), None);
        let mut ids = q.vm_ids();
        ids.sort();
        assert_eq!(ids, ["i-1", "i-2", "i-4"]);
    }
}
