//! What the reconciler does with one instance, given its VM as last reported: the EC2 state
//! follows what the VM does, decided in one exhaustive match ([`decide`]), and an instance
//! that needs nothing is told apart ([`idle`]) so a pass can settle it (`reconcile_queue.rs`).
//!
//! ```text
//!  desired   VM report            EC2 state        action
//!  running   none                 pending          start
//!  running   starting             pending          -
//!  running   running              running          -
//!  running   stopped (new report) stopped|shutting-down   guest powered off: stop or
//!                                                  terminate per shutdown behaviour
//!  running   stopped (old report) pending          start (StartInstances)
//!  stopped   starting|running     stopping         stop (force if asked)
//!  stopped   stopped|none         stopped          -
//!  terminated any VM              shutting-down    destroy
//!  terminated none                terminated       -
//! ```

use corral_agent_api::{VmState, VmStatus};
use corral_store::{Desired, InstanceRecord};
use corral_types::InstanceState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    None,
    Start,
    Stop { force: bool },
    Destroy,
}

/// Whether an instance needs nothing: what [`decide`] would do is nothing and changes nothing.
pub(crate) fn idle(inst: &InstanceRecord, vm: Option<&VmStatus>, now: &str) -> bool {
    if inst.state == InstanceState::Terminated && vm.is_none() {
        return true;
    }
    let mut probe = inst.clone();
    decide(&mut probe, vm, now) == Action::None && probe == *inst
}

pub(crate) fn decide(r: &mut InstanceRecord, vm: Option<&VmStatus>, now: &str) -> Action {
    let fresh = vm.is_some_and(|v| v.generation > r.observed_generation);
    if let Some(v) = vm.filter(|_| fresh) {
        r.observed_generation = v.generation;
    }
    match (r.desired, vm.map(|v| v.state)) {
        (Desired::Running, None) => {
            r.state = InstanceState::Pending;
            Action::Start
        }
        (Desired::Running, Some(VmState::Starting)) => {
            r.state = InstanceState::Pending;
            Action::None
        }
        (Desired::Running, Some(VmState::Running)) => {
            r.state = InstanceState::Running;
            r.state_reason_code = None;
            r.state_reason_message = None;
            Action::None
        }
        (Desired::Running, Some(VmState::Stopping)) => {
            r.state = InstanceState::Stopping;
            Action::None
        }
        (Desired::Running, Some(VmState::Stopped)) => {
            if r.state == InstanceState::Pending && !fresh {
                return Action::Start;
            }
            // The VM stopped on its own after running: the guest powered itself off.
            r.state_transition_reason = format!("Instance initiated shutdown ({now})");
            r.state_reason_code = Some("Client.InstanceInitiatedShutdown".into());
            r.state_reason_message = Some("Client.InstanceInitiatedShutdown: Instance initiated shutdown".into());
            if r.shutdown_behavior == "terminate" {
                r.desired = Desired::Terminated;
                r.state = InstanceState::ShuttingDown;
                Action::Destroy
            } else {
                r.desired = Desired::Stopped;
                r.state = InstanceState::Stopped;
                Action::None
            }
        }
        (Desired::Stopped, None | Some(VmState::Stopped)) => {
            r.state = InstanceState::Stopped;
            r.force_stop = false;
            Action::None
        }
        (Desired::Stopped, Some(VmState::Starting | VmState::Running)) => {
            r.state = InstanceState::Stopping;
            Action::Stop { force: r.force_stop }
        }
        (Desired::Stopped, Some(VmState::Stopping)) => {
            r.state = InstanceState::Stopping;
            if r.force_stop {
                Action::Stop { force: true }
            } else {
                Action::None
            }
        }
        (Desired::Terminated, None) => {
            r.state = InstanceState::Terminated;
            if r.terminated_at.is_none() {
                r.terminated_at = Some(now.to_string());
            }
            Action::None
        }
        (Desired::Terminated, Some(_)) => {
            r.state = InstanceState::ShuttingDown;
            Action::Destroy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(state: InstanceState, desired: Desired) -> InstanceRecord {
        InstanceRecord { state, desired, observed_generation: 5, seq: 1, ..corral_store::example::instance_record("i-0123456789abcdef0") }
    }

    fn vm(state: VmState, generation: u64) -> VmStatus {
        VmStatus { instance_id: "i-0123456789abcdef0".into(), state, generation }
    }

    /// A decision works on the instance as it is now: the pass's copy while nothing wrote to
    /// the instance since the pass read it, else what was written.
    #[test]
    fn a_decision_sees_what_was_written_after_the_pass_read_the_instance() {
        let store = corral_store::Store::open_in_memory().unwrap();
        let r = rec(InstanceState::Running, Desired::Running);
        store.transaction(|tx| tx.instance_insert(&r)).unwrap();
        let read = store.read(|tx| tx.instance_get(&r.instance_id)).unwrap().unwrap();
        assert_eq!(store.read(|tx| tx.instance_current(&read)).unwrap(), Some(read.clone()));
        // TerminateInstances after the pass read it.
        let mut terminated = read.clone();
        terminated.desired = Desired::Terminated;
        terminated.state = InstanceState::ShuttingDown;
        store.transaction(|tx| tx.instance_update(&terminated)).unwrap();
        let now = store.read(|tx| tx.instance_current(&read)).unwrap().unwrap();
        assert_eq!((now.desired, now.state), (Desired::Terminated, InstanceState::ShuttingDown));
        // Gone since.
        store.transaction(|tx| tx.instance_delete(&r.instance_id)).unwrap();
        assert_eq!(store.read(|tx| tx.instance_current(&read)).unwrap(), None);
    }

    #[test]
    fn launch_runs_then_is_running() {
        let mut r = rec(InstanceState::Pending, Desired::Running);
        assert_eq!(decide(&mut r, None, "t"), Action::Start);
        assert_eq!(decide(&mut r, Some(&vm(VmState::Starting, 6)), "t"), Action::None);
        assert_eq!(r.state, InstanceState::Pending);
        assert_eq!(decide(&mut r, Some(&vm(VmState::Running, 7)), "t"), Action::None);
        assert_eq!(r.state, InstanceState::Running);
    }

    #[test]
    fn guest_poweroff_follows_shutdown_behaviour() {
        let mut r = rec(InstanceState::Running, Desired::Running);
        assert_eq!(decide(&mut r, Some(&vm(VmState::Stopped, 9)), "t"), Action::None);
        assert_eq!((r.state, r.desired), (InstanceState::Stopped, Desired::Stopped));
        assert_eq!(r.state_reason_code.as_deref(), Some("Client.InstanceInitiatedShutdown"));

        let mut r = rec(InstanceState::Running, Desired::Running);
        r.shutdown_behavior = "terminate".into();
        assert_eq!(decide(&mut r, Some(&vm(VmState::Stopped, 9)), "t"), Action::Destroy);
        assert_eq!((r.state, r.desired), (InstanceState::ShuttingDown, Desired::Terminated));
        assert_eq!(decide(&mut r, None, "t"), Action::None);
        assert_eq!(r.state, InstanceState::Terminated);
        assert!(r.terminated_at.is_some());
    }

    #[test]
    fn start_of_stopped_instance_uses_old_report() {
        let mut r = rec(InstanceState::Pending, Desired::Running);
        // The Stopped report (generation 5) was already applied when it stopped.
        assert_eq!(decide(&mut r, Some(&vm(VmState::Stopped, 5)), "t"), Action::Start);
        assert_eq!(r.state, InstanceState::Pending);
    }

    #[test]
    fn stop_and_force() {
        let mut r = rec(InstanceState::Stopping, Desired::Stopped);
        assert_eq!(decide(&mut r, Some(&vm(VmState::Running, 6)), "t"), Action::Stop { force: false });
        assert_eq!(decide(&mut r, Some(&vm(VmState::Stopping, 7)), "t"), Action::None);
        r.force_stop = true;
        assert_eq!(decide(&mut r, Some(&vm(VmState::Stopping, 7)), "t"), Action::Stop { force: true });
        assert_eq!(decide(&mut r, Some(&vm(VmState::Stopped, 8)), "t"), Action::None);
        assert_eq!(r.state, InstanceState::Stopped);
        assert!(!r.force_stop);
    }
}
