//! The runner task: one per VM, the only owner of its QEMU process ([`Proc`]: the verified pid
//! and the QMP connection). It serves its handle's requests one at a time, in order, and in
//! between watches the process:
//!
//! ```text
//!   VmHandle ── Request ──▶ rx ──────┐
//!   QMP socket ── event / EOF ───────┼──▶ select! ──▶ handle()        (one request to its end)
//!   interval(POLL_INTERVAL) ── tick ─┘              on_qmp_event()  (EOF: look at the pid now)
//!                                                   on_tick()       (pid alive? QMP back?
//!                                                                    running yet? deadlines)
//! ```
//!
//! Every state change goes through [`Runner::set_state`], which publishes the report with a new
//! generation and wakes the agent's notifier. The runner's QMP plumbing lives here too:
//! connecting, commands with a deadline, and dropping a broken connection so the tick makes a
//! new one. What each request does is in [`lifecycle`](super::lifecycle),
//! [`disk`](super::disk) and [`disk_rebase`](super::disk_rebase).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_agent_api::{AgentError, VmState};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use super::handle::{Report, Request};
use super::lifecycle::QUIT_GRACE;
use super::{error_chain, Context};
use crate::qemu::files::VmDir;
use crate::qemu::qmp::{Qmp, QmpError, QmpEvent};

/// How often a runner checks its process is alive. A stopped guest shows up as `Stopped`
/// within this (sooner when QEMU closes the QMP socket first); reading one small /proc file
/// per VM this often costs nothing measurable.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(150);
/// One QMP command; QEMU answers in milliseconds even under TCG load.
pub(super) const QMP_TIMEOUT: Duration = Duration::from_secs(5);
/// Connecting to QMP (greeting and capabilities). QEMU serves one client at a time, so a
/// previous agent's connection that is still closing delays us: the runner retries.
const QMP_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub(super) const QMP_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// The QEMU process a runner owns.
pub(super) struct Proc {
    pub(super) pid: i32,
    pub(super) qmp: Option<Qmp>,
}

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

/// A VM's actor state, owned by its task; its methods are spread over this module's siblings.
pub(super) struct Runner {
    pub(super) id: String,
    pub(super) dir: VmDir,
    pub(super) ctx: Arc<Context>,
    pub(super) report: Arc<Mutex<Report>>,
    pub(super) rx: mpsc::Receiver<Request>,
    /// Invariant: `proc` is `Some` exactly when the state is `Starting`, `Running` or `Stopping`.
    pub(super) state: Option<VmState>,
    pub(super) proc: Option<Proc>,
    /// A graceful stop is forced at this instant.
    pub(super) stop_deadline: Option<Instant>,
    /// After `quit` (or a SIGKILL), the process is SIGKILLed (again) at this instant.
    pub(super) kill_deadline: Option<Instant>,
    pub(super) next_qmp_attempt: Instant,
}

/// The next QMP event, or never when there is no connection.
async fn next_qmp_event(proc: &mut Option<Proc>) -> Result<QmpEvent, QmpError> {
    match proc.as_mut().and_then(|p| p.qmp.as_mut()) {
        Some(qmp) => qmp.next_event().await,
        None => std::future::pending().await,
    }
}

impl Runner {
    pub(super) async fn run(mut self) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                request = self.rx.recv() => match request {
                    Some(request) => {
                        if self.handle(request).await == Flow::Exit {
                            return;
                        }
                    }
                    None => {
                        tracing::debug!(instance_id = %self.id, "agent let go of the VM; its process is left running");
                        return;
                    }
                },
                event = next_qmp_event(&mut self.proc) => self.on_qmp_event(event).await,
                _ = tick.tick() => self.on_tick().await,
            }
        }
    }

    async fn handle(&mut self, request: Request) -> Flow {
        match request {
            Request::Start { spec, reply } => {
                let _ = reply.send(self.start(*spec).await);
                if self.state.is_none() {
                    return Flow::Exit; // the first start failed and removed everything
                }
            }
            Request::Stop { force, reply } => {
                let _ = reply.send(self.stop(force).await);
            }
            Request::Reboot { reply } => {
                let _ = reply.send(self.reboot().await);
            }
            Request::Destroy { reply } => {
                let result = self.destroy().await;
                let done = result.is_ok();
                let _ = reply.send(result);
                if done {
                    return Flow::Exit;
                }
            }
            Request::DiskAttach { disk, reply } => {
                let _ = reply.send(self.disk_attach(*disk).await);
            }
            Request::DiskDetach { volume_id, force, reply } => {
                let _ = reply.send(self.disk_detach(&volume_id, force).await);
            }
            Request::DiskSnapshot { volume_id, new_top, reply } => {
                let _ = reply.send(self.disk_snapshot(&volume_id, &new_top).await);
            }
            Request::DiskResize { volume_id, size_bytes, reply } => {
                let _ = reply.send(self.disk_resize(&volume_id, size_bytes).await);
            }
            Request::DiskRebase { volume_id, layer, backing, reply } => {
                let _ = reply.send(self.disk_rebase(&volume_id, &layer, backing.as_ref()).await);
            }
            Request::Qmp { command, arguments, reply } => {
                let result = match self.proc.is_some() {
                    true => self.qmp_call(&command, arguments).await,
                    false => Err(AgentError::Other(format!("{} has no QEMU process", self.id))),
                };
                let _ = reply.send(result);
            }
        }
        Flow::Continue
    }

    pub(super) fn set_state(&mut self, state: Option<VmState>) {
        if self.state == state {
            return;
        }
        tracing::info!(instance_id = %self.id, from = ?self.state, to = ?state, "VM state changed");
        self.state = state;
        let generation = self.ctx.clock.next();
        *self.report.lock().unwrap_or_else(|e| e.into_inner()) = Report { state, generation };
        // notify_waiters wakes everyone waiting now; notify_one leaves a permit for a waiter
        // that registers a moment later, so no change slips between its poll and its wait.
        self.ctx.changes.notify_waiters();
        self.ctx.changes.notify_one();
    }

    async fn on_qmp_event(&mut self, event: Result<QmpEvent, QmpError>) {
        match event {
            Ok(ev) => {
                tracing::debug!(instance_id = %self.id, event = %ev.event, data = %ev.data, "QMP event");
                if matches!(ev.event.as_str(), "RESUME" | "STOP") && self.state == Some(VmState::Starting) {
                    self.check_running().await;
                }
            }
            Err(e) => {
                // EOF: QEMU is exiting (or crashed). Look at the process now rather than at
                // the next tick.
                tracing::debug!(instance_id = %self.id, error = %error_chain(&e), "QMP connection ended");
                if let Some(p) = self.proc.as_mut() {
                    p.qmp = None;
                }
                self.next_qmp_attempt = Instant::now() + QMP_RETRY_INTERVAL;
                self.check_process();
            }
        }
    }

    async fn on_tick(&mut self) {
        if !self.check_process() {
            return;
        }
        let now = Instant::now();
        let needs_qmp = self.proc.as_ref().is_some_and(|p| p.qmp.is_none());
        if needs_qmp && now >= self.next_qmp_attempt {
            match connect_qmp(&self.dir).await {
                Ok(q) => {
                    if let Some(p) = self.proc.as_mut() {
                        p.qmp = Some(q);
                    }
                }
                Err(e) => {
                    tracing::debug!(instance_id = %self.id, error = %error_chain(&e), "QMP reconnect failed");
                    self.next_qmp_attempt = Instant::now() + QMP_RETRY_INTERVAL;
                }
            }
        }
        if self.state == Some(VmState::Starting) {
            self.check_running().await;
        }
        // A guest that writes to its console without end does not fill the host's disk.
        if let Err(e) = crate::qemu::console::trim(&self.dir.console(), crate::qemu::console::MAX_BYTES, crate::qemu::console::KEEP_BYTES) {
            tracing::warn!(instance_id = %self.id, error = %e, "cutting the console log failed");
        }
        if self.stop_deadline.is_some_and(|d| now >= d) {
            tracing::warn!(instance_id = %self.id, timeout = ?self.ctx.stop_timeout, "guest did not power down in time; forcing");
            self.force_stop().await;
        }
        if self.kill_deadline.is_some_and(|d| now >= d) {
            tracing::warn!(instance_id = %self.id, "QEMU still there after quit; SIGKILL");
            self.sigkill();
            self.kill_deadline = Some(now + QUIT_GRACE);
        }
    }

    /// Notices a vanished process (then `Stopped`); `true` while one is alive.
    fn check_process(&mut self) -> bool {
        let Some(pid) = self.proc.as_ref().map(|p| p.pid) else { return false };
        if self.ctx.is_ours(pid, &self.id) {
            return true;
        }
        tracing::info!(instance_id = %self.id, pid, was = ?self.state, "QEMU process is gone");
        self.proc = None;
        self.stop_deadline = None;
        self.kill_deadline = None;
        self.dir.remove_runtime_files();
        self.set_state(Some(VmState::Stopped));
        false
    }

    /// `Starting` becomes `Running` once QEMU reports the guest running.
    pub(super) async fn check_running(&mut self) {
        let Some(qmp) = self.proc.as_mut().and_then(|p| p.qmp.as_mut()) else { return };
        match timeout(QMP_TIMEOUT, qmp.query_status()).await {
            Ok(Ok(status)) => {
                if status == "running" && self.state == Some(VmState::Starting) {
                    self.set_state(Some(VmState::Running));
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(instance_id = %self.id, error = %error_chain(&e), "query-status failed");
                self.drop_qmp_if_broken(&e);
            }
            Err(_) => tracing::debug!(instance_id = %self.id, "query-status timed out"),
        }
    }

    pub(super) async fn qmp_execute(&mut self, command: &str) -> Result<(), AgentError> {
        let Some(qmp) = self.proc.as_mut().and_then(|p| p.qmp.as_mut()) else {
            return Err(AgentError::Other(format!("no QMP connection to {}'s QEMU", self.id)));
        };
        match timeout(QMP_TIMEOUT, qmp.execute(command, None)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                self.drop_qmp_if_broken(&e);
                Err(AgentError::host(format!("QMP {command} on {}", self.id), e))
            }
            Err(_) => Err(AgentError::Other(format!("QMP {command} on {} timed out after {QMP_TIMEOUT:?}", self.id))),
        }
    }

    pub(super) fn drop_qmp_if_broken(&mut self, e: &QmpError) {
        if matches!(e, QmpError::Closed | QmpError::Io(_) | QmpError::Protocol(_)) {
            if let Some(p) = self.proc.as_mut() {
                p.qmp = None;
            }
            self.next_qmp_attempt = Instant::now() + QMP_RETRY_INTERVAL;
        }
    }

    /// Runs a QMP command; a failure's message carries QEMU's own (`class: desc`).
    pub(super) async fn qmp_call(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, AgentError> {
        self.qmp_call_within(QMP_TIMEOUT, command, arguments).await
    }

    pub(super) async fn qmp_call_within(&mut self, limit: Duration, command: &str, arguments: Option<Value>) -> Result<Value, AgentError> {
        let Some(qmp) = self.proc.as_mut().and_then(|p| p.qmp.as_mut()) else {
            return Err(AgentError::Other(format!("no QMP connection to {}'s QEMU (yet)", self.id)));
        };
        match timeout(limit, qmp.execute(command, arguments)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let msg = format!("{}: {}", self.id, error_chain(&e));
                self.drop_qmp_if_broken(&e);
                Err(AgentError::Other(msg))
            }
            Err(_) => Err(AgentError::Other(format!("QMP {command} on {} timed out after {limit:?}", self.id))),
        }
    }
}

/// Connects to the VM's QMP socket, bounded by [`QMP_CONNECT_TIMEOUT`].
pub(super) async fn connect_qmp(dir: &VmDir) -> Result<Qmp, AgentError> {
    let path = dir.qmp_socket();
    match timeout(QMP_CONNECT_TIMEOUT, Qmp::connect(&path)).await {
        Ok(Ok(q)) => Ok(q),
        Ok(Err(e)) => Err(AgentError::host(format!("connecting to QMP at {}", path.display()), e)),
        Err(_) => Err(AgentError::Other(format!("no QMP greeting from {} within {QMP_CONNECT_TIMEOUT:?}", path.display()))),
    }
}
