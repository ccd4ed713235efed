//! The cheap side of a VM's actor: [`VmHandle`], the [`Request`]s it sends down its bounded
//! channel (each answered on its own oneshot), the [`Report`] it reads the VM's state from
//! without waiting on the runner, and [`spawn_new`] / [`spawn`], which make the channel and
//! start the runner. A handle's calls answer `None` once the runner has ended.

use std::sync::{Arc, Mutex};

use corral_agent_api::{AgentError, DiskSpec, LayerId, VmSpec, VmState, VmStatus};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::runner::{Proc, Runner};
use super::Context;
use crate::qemu::files::VmDir;

/// Requests queued per VM; callers wait when it is full.
const CHANNEL_CAPACITY: usize = 16;

/// Where a request's answer goes.
pub(super) type Reply = oneshot::Sender<Result<(), AgentError>>;

/// What a handle asks its runner, one variant per [`VmHandle`] call.
pub(super) enum Request {
    Start { spec: Box<VmSpec>, reply: Reply },
    Stop { force: bool, reply: Reply },
    Reboot { reply: Reply },
    Destroy { reply: Reply },
    DiskAttach { disk: Box<DiskSpec>, reply: Reply },
    DiskDetach { volume_id: String, force: bool, reply: Reply },
    DiskSnapshot { volume_id: String, new_top: LayerId, reply: Reply },
    DiskResize { volume_id: String, size_bytes: u64, reply: Reply },
    DiskRebase { volume_id: String, layer: LayerId, backing: Option<LayerId>, reply: Reply },
    Qmp { command: String, arguments: Option<Value>, reply: oneshot::Sender<Result<Value, AgentError>> },
}

/// The last state the runner published. `state: None` means the VM does not exist (yet, or
/// any more) and is left out of `vm_list`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Report {
    pub(super) state: Option<VmState>,
    pub(super) generation: u64,
}

/// A cheap handle to a VM's runner.
#[derive(Clone)]
pub(crate) struct VmHandle {
    tx: mpsc::Sender<Request>,
    report: Arc<Mutex<Report>>,
}

impl VmHandle {
    /// The VM's current status; `None` if it does not exist.
    pub(crate) fn status(&self, instance_id: &str) -> Option<VmStatus> {
        let r = *self.report.lock().unwrap_or_else(|e| e.into_inner());
        r.state.map(|state| VmStatus { instance_id: instance_id.to_string(), state, generation: r.generation })
    }

    /// The runner has ended (destroyed, or its first start failed).
    pub(crate) fn is_gone(&self) -> bool {
        self.tx.is_closed()
    }

    pub(crate) fn same(&self, other: &VmHandle) -> bool {
        Arc::ptr_eq(&self.report, &other.report)
    }

    pub(crate) async fn start(&self, spec: VmSpec) -> Option<Result<(), AgentError>> {
        self.call(|reply| Request::Start { spec: Box::new(spec), reply }).await
    }
    pub(crate) async fn stop(&self, force: bool) -> Option<Result<(), AgentError>> {
        self.call(|reply| Request::Stop { force, reply }).await
    }
    pub(crate) async fn reboot(&self) -> Option<Result<(), AgentError>> {
        self.call(|reply| Request::Reboot { reply }).await
    }
    pub(crate) async fn destroy(&self) -> Option<Result<(), AgentError>> {
        self.call(|reply| Request::Destroy { reply }).await
    }
    pub(crate) async fn disk_attach(&self, disk: DiskSpec) -> Option<Result<(), AgentError>> {
        self.call(|reply| Request::DiskAttach { disk: Box::new(disk), reply }).await
    }
    pub(crate) async fn disk_detach(&self, volume_id: &str, force: bool) -> Option<Result<(), AgentError>> {
        self.call(|reply| Request::DiskDetach { volume_id: volume_id.to_string(), force, reply }).await
    }
    pub(crate) async fn disk_snapshot(&self, volume_id: &str, new_top: &LayerId) -> Option<Result<(), AgentError>> {
        self.call(|reply| Request::DiskSnapshot { volume_id: volume_id.to_string(), new_top: new_top.clone(), reply }).await
    }
    pub(crate) async fn disk_resize(&self, volume_id: &str, size_bytes: u64) -> Option<Result<(), AgentError>> {
        self.call(|reply| Request::DiskResize { volume_id: volume_id.to_string(), size_bytes, reply }).await
    }
    pub(crate) async fn disk_rebase(&self, volume_id: &str, layer: &LayerId, backing: Option<&LayerId>) -> Option<Result<(), AgentError>> {
        self.call(|reply| Request::DiskRebase { volume_id: volume_id.to_string(), layer: layer.clone(), backing: backing.cloned(), reply })
            .await
    }

    pub(crate) async fn qmp(&self, command: &str, arguments: Option<Value>) -> Option<Result<Value, AgentError>> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Request::Qmp { command: command.to_string(), arguments, reply }).await.ok()?;
        answer.await.ok()
    }

    /// Sends a request and waits for its answer; `None` when the runner is gone.
    async fn call(&self, make: impl FnOnce(Reply) -> Request) -> Option<Result<(), AgentError>> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(make(reply)).await.ok()?;
        answer.await.ok()
    }
}

/// A runner for a VM that does not exist yet; its first `start` creates it.
pub(crate) fn spawn_new(ctx: Arc<Context>, instance_id: &str) -> VmHandle {
    spawn(ctx, instance_id, None, None)
}

/// Starts the runner of VM `instance_id` in `state`, owning `proc` if it has a live one.
pub(super) fn spawn(ctx: Arc<Context>, instance_id: &str, state: Option<VmState>, proc: Option<Proc>) -> VmHandle {
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let report = Arc::new(Mutex::new(Report { state, generation: ctx.clock.next() }));
    let runner = Runner {
        id: instance_id.to_string(),
        dir: VmDir::new(&ctx.state_dir, instance_id),
        ctx,
        report: report.clone(),
        rx,
        state,
        proc,
        stop_deadline: None,
        kill_deadline: None,
        next_qmp_attempt: Instant::now(),
    };
    tokio::spawn(runner.run());
    VmHandle { tx, report }
}
