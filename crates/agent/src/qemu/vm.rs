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
//! `/proc/<pid>/cmdline` check of [`super::process`]) every [`POLL_INTERVAL`], and looks at once
//! when QEMU closes the QMP socket. A guest that powers itself off, or a QEMU that crashes,
//! goes to `Stopped` the same way. Each change takes a new generation from the shared
//! [`GenerationClock`] and wakes the agent's `changes()` notifier.
//!
//! Dropping every handle (the agent going away) ends the runner but leaves the QEMU process
//! running: the next agent re-adopts it through [`adopt`].
//!
//! Volumes of a running VM (hot-plug, hot-unplug, live snapshot, resize) go through the same
//! runner, so they are serialized with start and stop; each asks QEMU (`query-block`) what
//! the VM has rather than trusting memory, which also holds after a re-adoption:
//!
//! ```text
//!  attach    blockdev-add (qcow2 node named <volume id> over <pool>/<layer>.qcow2)
//!            device_add scsi-hd            ── fails: blockdev-del, nothing left
//!  detach    device_del, wait DEVICE_DELETED, blockdev-del <volume id>
//!            (frees the node and every snapshot overlay stacked on it since)
//!  snapshot  qemu-img create <new>.qcow2 -b <top>.qcow2, blockdev-snapshot-sync
//!            (mode existing, node named <new layer id>; <top> becomes read-only backing)
//!  resize    block_resize on the top node
//!  rebase    block-stream (job rebase-<layer>, auto-finalize off) into the node over
//!            <layer>.qcow2, base-node the new backing's node; at BLOCK_JOB_PENDING stop + cont
//!            (flushes every disk), job-finalize, wait BLOCK_JOB_COMPLETED; blockdev-del
//!            <volume id> if that node was among the layers dropped (the others go by themselves)
//! ```
//!
//! Each success is also written to `vm.json`'s disks, so the stored spec stays what the VM
//! has.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_agent_api::{AgentError, DiskBus, DiskSpec, LayerId, Storage, VmSpec, VmState, VmStatus};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::{timeout, Instant};

use super::cmdline::{blockdev, check_disks, is_volume_id, qemu_args, scsi_disk_device, LaunchOptions};
use super::files::VmDir;
use super::process::{find_vm_process, is_vm_process, kill_vm_process, read_pid_file, wait_gone};
use super::qmp::{Qmp, QmpError, QmpEvent};
use crate::pool::Pool;

/// How often a runner checks its process is alive. A stopped guest shows up as `Stopped`
/// within this (sooner when QEMU closes the QMP socket first); reading one small /proc file
/// per VM this often costs nothing measurable.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(150);
/// QEMU's launcher exits once the daemon finished initialising (measured: ~0.1 s); anything
/// near this is a hung host.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);
/// One QMP command; QEMU answers in milliseconds even under TCG load.
const QMP_TIMEOUT: Duration = Duration::from_secs(5);
/// Connecting to QMP (greeting and capabilities). QEMU serves one client at a time, so a
/// previous agent's connection that is still closing delays us: the runner retries.
const QMP_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const QMP_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// After `quit`, how long before SIGKILL (QEMU flushes the overlay and exits in well under 1 s).
const QUIT_GRACE: Duration = Duration::from_secs(3);
/// How long destroy (and a failed launch) waits for a SIGKILLed process to disappear.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// Requests queued per VM; callers wait when it is full.
const CHANNEL_CAPACITY: usize = 16;
/// How long a detach waits for QEMU's `DEVICE_DELETED` after `device_del`. A `scsi-hd` goes
/// at once (virtio-scsi unplugs without asking the guest, measured ~50 ms under TCG); a
/// device whose bus needs the guest's consent (PCI) may take seconds.
const DETACH_TIMEOUT: Duration = Duration::from_secs(10);
/// A live snapshot drains and flushes the volume's pending writes first; with a lot of dirty
/// data on a slow disk that takes longer than an ordinary QMP command.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);
/// A live rebase's `block-stream` job copies what the dropped layers hold into the layer; the
/// copy is QEMU's own I/O, not emulated (measured here under TCG: 1 GiB in 2 s), but a loaded
/// host with many GBs to copy takes minutes. Past this the job is cancelled, which is
/// harmless: the layer keeps its backing and the copied clusters read what it read before.
const REBASE_TIMEOUT: Duration = Duration::from_secs(600);
/// After cancelling a job, how long to wait for it to end.
const JOB_CANCEL_WAIT: Duration = Duration::from_secs(30);

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

type Reply = oneshot::Sender<Result<(), AgentError>>;

enum Request {
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
struct Report {
    state: Option<VmState>,
    generation: u64,
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

/// Takes over whatever `<state_dir>/<instance_id>/` holds: a live, verified QEMU process is
/// re-adopted (`Running` once QMP says so), anything else is `Stopped`.
pub(crate) async fn adopt(ctx: Arc<Context>, instance_id: &str) -> VmHandle {
    let dir = VmDir::new(&ctx.state_dir, instance_id);
    let live_pid = read_pid_file(&dir.pid_file())
        .filter(|&pid| ctx.is_ours(pid, instance_id))
        .or_else(|| find_vm_process(&ctx.qemu_binary_name, instance_id));
    let Some(pid) = live_pid else {
        dir.remove_runtime_files();
        tracing::info!(instance_id, "re-adopted a stopped VM");
        return spawn(ctx, instance_id, Some(VmState::Stopped), None);
    };
    let mut qmp = match connect_qmp(&dir).await {
        Ok(q) => Some(q),
        Err(e) => {
            tracing::warn!(instance_id, pid, error = %error_chain(&e), "re-adopted VM's QMP not reachable yet; will retry");
            None
        }
    };
    let state = match qmp.as_mut() {
        Some(q) => match timeout(QMP_TIMEOUT, q.query_status()).await {
            Ok(Ok(status)) if status == "running" => VmState::Running,
            _ => VmState::Starting,
        },
        None => VmState::Starting,
    };
    tracing::info!(instance_id, pid, ?state, "re-adopted a running QEMU process");
    spawn(ctx, instance_id, Some(state), Some(Proc { pid, qmp }))
}

fn spawn(ctx: Arc<Context>, instance_id: &str, state: Option<VmState>, proc: Option<Proc>) -> VmHandle {
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

async fn connect_qmp(dir: &VmDir) -> Result<Qmp, AgentError> {
    let path = dir.qmp_socket();
    match timeout(QMP_CONNECT_TIMEOUT, Qmp::connect(&path)).await {
        Ok(Ok(q)) => Ok(q),
        Ok(Err(e)) => Err(AgentError::host(format!("connecting to QMP at {}", path.display()), e)),
        Err(_) => Err(AgentError::Other(format!("no QMP greeting from {} within {QMP_CONNECT_TIMEOUT:?}", path.display()))),
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

/// The QEMU process a runner owns.
struct Proc {
    pid: i32,
    qmp: Option<Qmp>,
}

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

struct Runner {
    id: String,
    dir: VmDir,
    ctx: Arc<Context>,
    report: Arc<Mutex<Report>>,
    rx: mpsc::Receiver<Request>,
    /// Invariant: `proc` is `Some` exactly when the state is `Starting`, `Running` or `Stopping`.
    state: Option<VmState>,
    proc: Option<Proc>,
    /// A graceful stop is forced at this instant.
    stop_deadline: Option<Instant>,
    /// After `quit` (or a SIGKILL), the process is SIGKILLed (again) at this instant.
    kill_deadline: Option<Instant>,
    next_qmp_attempt: Instant,
}

/// The next QMP event, or never when there is no connection.
async fn next_qmp_event(proc: &mut Option<Proc>) -> Result<QmpEvent, QmpError> {
    match proc.as_mut().and_then(|p| p.qmp.as_mut()) {
        Some(qmp) => qmp.next_event().await,
        None => std::future::pending().await,
    }
}

impl Runner {
    async fn run(mut self) {
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

    fn set_state(&mut self, state: Option<VmState>) {
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

    // ---- requests ----------------------------------------------------------------------

    async fn start(&mut self, spec: VmSpec) -> Result<(), AgentError> {
        match self.state {
            Some(VmState::Starting | VmState::Running) => return Ok(()),
            Some(VmState::Stopping) => return Err(AgentError::WrongState { id: self.id.clone(), state: VmState::Stopping }),
            Some(VmState::Stopped) | None => {}
        }
        if spec.instance_id != self.id {
            return Err(AgentError::Other(format!("spec for {} sent to VM {}", spec.instance_id, self.id)));
        }
        check_disks(&spec.disks).map_err(|e| AgentError::Other(format!("VM {}: {e}", self.id)))?;
        let spec = absolute_paths(spec)?;
        let existed = self.state.is_some();
        let root = self.dir.root().to_path_buf();
        std::fs::create_dir_all(&root).map_err(|e| AgentError::host(format!("creating VM directory {}", root.display()), e))?;

        let result = self.create_and_launch(&spec).await;
        if let Err(e) = &result {
            tracing::warn!(instance_id = %self.id, error = %error_chain(e), "VM failed to start");
            self.clean_up_failed_launch().await;
            if existed {
                self.set_state(Some(VmState::Stopped));
            } else {
                // The very first start: take away everything it made (the VM directory; the
                // layers it created stay: they belong to their volumes).
                if let Err(e) = std::fs::remove_dir_all(&root) {
                    tracing::warn!(path = %root.display(), error = %e, "could not remove VM directory");
                }
                self.set_state(None);
            }
        }
        result
    }

    /// Writes `vm.json`, creates missing top layers and grows short ones, starts QEMU.
    async fn create_and_launch(&mut self, spec: &VmSpec) -> Result<(), AgentError> {
        self.dir.write_spec(spec).map_err(|e| AgentError::host(format!("writing {}", self.dir.spec_file().display()), e))?;
        for disk in &spec.disks {
            ensure_layer(&self.ctx.pool, disk).await?;
        }
        self.set_state(Some(VmState::Starting));
        self.launch(spec).await
    }

    async fn launch(&mut self, spec: &VmSpec) -> Result<(), AgentError> {
        self.dir.remove_runtime_files();
        // A new process is a power-on: the console starts over, as EC2's does after a stop and
        // start. Reboots keep appending (the chardev stays open), so one boot and its reboots
        // stay within GetConsoleOutput's 64 KiB.
        crate::qemu::files::remove_file_if_exists(&self.dir.console());
        let args = qemu_args(spec, &self.dir, &self.ctx.pool, &self.ctx.launch);
        tracing::info!(instance_id = %self.id, binary = %self.ctx.qemu_binary, ?args, "starting QEMU");
        // A VM with network interfaces runs inside its VPC's namespace, where its taps are.
        let (program, args) = match (spec.nics.first(), &self.ctx.ns_prefix) {
            (None, _) => (self.ctx.qemu_binary.clone(), args),
            (Some(nic), Some(prefix)) => {
                let mut wrapped: Vec<std::ffi::OsString> = vec!["netns".into(), "exec".into()];
                wrapped.push(corral_net::names::netns_name(prefix, &nic.vpc_id).into());
                wrapped.push(self.ctx.qemu_binary.clone().into());
                wrapped.extend(args);
                ("ip".to_string(), wrapped)
            }
            (Some(_), None) => {
                return Err(AgentError::Other(format!("{} has network interfaces but this agent has no data path", self.id)))
            }
        };
        match timeout(LAUNCH_TIMEOUT, corral_exec::run(&program, &args)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(AgentError::host(format!("starting QEMU for {}", self.id), e)),
            Err(_) => return Err(AgentError::Other(format!("QEMU for {} did not finish starting within {LAUNCH_TIMEOUT:?}", self.id))),
        }
        let pid = read_pid_file(&self.dir.pid_file()).ok_or_else(|| {
            AgentError::Other(format!("QEMU for {} reported success but left no pid in {}", self.id, self.dir.pid_file().display()))
        })?;
        if !self.ctx.is_ours(pid, &self.id) {
            return Err(AgentError::Other(format!(
                "QEMU for {} (pid {pid}) exited right after starting; see {}",
                self.id,
                self.dir.console().display()
            )));
        }
        let qmp = match connect_qmp(&self.dir).await {
            Ok(q) => Some(q),
            Err(e) => {
                tracing::warn!(instance_id = %self.id, error = %error_chain(&e), "QMP not reachable yet; will retry");
                self.next_qmp_attempt = Instant::now() + QMP_RETRY_INTERVAL;
                None
            }
        };
        self.proc = Some(Proc { pid, qmp });
        self.stop_deadline = None;
        self.kill_deadline = None;
        tracing::info!(instance_id = %self.id, pid, "QEMU started");
        self.check_running().await;
        Ok(())
    }

    /// After a failed launch: no process (a verified one is killed) and no stale pid file.
    async fn clean_up_failed_launch(&mut self) {
        let pid = self.proc.take().map(|p| p.pid).or_else(|| self.find_pid());
        if let Some(pid) = pid {
            self.kill_and_wait(pid).await;
        }
        self.dir.remove_runtime_files();
    }

    async fn stop(&mut self, force: bool) -> Result<(), AgentError> {
        match self.state {
            None => return Err(AgentError::NoSuchVm(self.id.clone())),
            Some(VmState::Stopped) => return Ok(()),
            Some(VmState::Stopping) => {}
            Some(VmState::Starting | VmState::Running) => {
                self.set_state(Some(VmState::Stopping));
                if !force {
                    match self.qmp_execute("system_powerdown").await {
                        Ok(()) => {
                            tracing::info!(instance_id = %self.id, timeout = ?self.ctx.stop_timeout, "ACPI power-down sent");
                            self.stop_deadline = Some(Instant::now() + self.ctx.stop_timeout);
                            return Ok(());
                        }
                        Err(e) => {
                            tracing::warn!(instance_id = %self.id, error = %error_chain(&e), "power-down failed; forcing");
                        }
                    }
                }
            }
        }
        if force || self.stop_deadline.is_none() {
            self.force_stop().await;
        }
        Ok(())
    }

    /// `quit` over QMP, SIGKILL if that fails or does not end the process within QUIT_GRACE.
    async fn force_stop(&mut self) {
        self.stop_deadline = None;
        if self.kill_deadline.is_some() {
            return; // already forcing
        }
        match self.qmp_execute("quit").await {
            Ok(()) => tracing::info!(instance_id = %self.id, "quit sent"),
            Err(e) => {
                tracing::warn!(instance_id = %self.id, error = %error_chain(&e), "quit failed; killing the process");
                self.sigkill();
            }
        }
        self.kill_deadline = Some(Instant::now() + QUIT_GRACE);
    }

    async fn reboot(&mut self) -> Result<(), AgentError> {
        match self.state {
            Some(VmState::Starting | VmState::Running) => self.qmp_execute("system_reset").await,
            None => Err(AgentError::NoSuchVm(self.id.clone())),
            Some(state @ (VmState::Stopping | VmState::Stopped)) => Err(AgentError::WrongState { id: self.id.clone(), state }),
        }
    }

    async fn destroy(&mut self) -> Result<(), AgentError> {
        let pid = self.proc.as_ref().map(|p| p.pid).or_else(|| self.find_pid());
        if let Some(pid) = pid {
            if let Some(p) = self.proc.as_mut() {
                p.qmp = None;
            }
            if !self.kill_and_wait(pid).await {
                return Err(AgentError::Other(format!("QEMU for {} (pid {pid}) still runs {KILL_WAIT:?} after SIGKILL", self.id)));
            }
        }
        self.proc = None;
        let root = self.dir.root().to_path_buf();
        match std::fs::remove_dir_all(&root) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                self.set_state(Some(VmState::Stopped));
                return Err(AgentError::host(format!("removing VM directory {}", root.display()), e));
            }
        }
        tracing::info!(instance_id = %self.id, "VM destroyed");
        self.set_state(None);
        Ok(())
    }

    // ---- volumes -----------------------------------------------------------------------

    fn require_running(&self) -> Result<(), AgentError> {
        match self.state {
            Some(VmState::Running) => Ok(()),
            None => Err(AgentError::NoSuchVm(self.id.clone())),
            Some(state) => Err(AgentError::WrongState { id: self.id.clone(), state }),
        }
    }

    /// Runs a QMP command; a failure's message carries QEMU's own (`class: desc`).
    async fn qmp_call(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, AgentError> {
        self.qmp_call_within(QMP_TIMEOUT, command, arguments).await
    }

    async fn qmp_call_within(&mut self, limit: Duration, command: &str, arguments: Option<Value>) -> Result<Value, AgentError> {
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

    async fn block_devices(&mut self) -> Result<Vec<BlockDevice>, AgentError> {
        let v = self.qmp_call("query-block", None).await?;
        Ok(parse_query_block(&v))
    }

    /// The block device of volume `volume_id`, if the VM has it.
    async fn block_device(&mut self, volume_id: &str) -> Result<Option<BlockDevice>, AgentError> {
        Ok(self.block_devices().await?.into_iter().find(|b| device_is(&b.qdev, volume_id)))
    }

    async fn node_exists(&mut self, node_name: &str) -> Result<bool, AgentError> {
        let v = self.qmp_call("query-named-block-nodes", Some(json!({ "flat": true }))).await?;
        Ok(v.as_array().is_some_and(|nodes| nodes.iter().any(|n| n.get("node-name").and_then(Value::as_str) == Some(node_name))))
    }

    fn no_such_volume(&self, volume_id: &str) -> AgentError {
        AgentError::Other(format!("{} has no volume {volume_id} attached", self.id))
    }

    async fn disk_attach(&mut self, disk: DiskSpec) -> Result<(), AgentError> {
        self.require_running()?;
        let vol = disk.volume_id.clone();
        if !is_volume_id(&vol) {
            return Err(AgentError::Other(format!("{vol:?} is not a volume id")));
        }
        let DiskBus::Scsi { target } = disk.bus else {
            return Err(AgentError::Other(format!("{vol}: a root disk cannot be hot-plugged into {}", self.id)));
        };
        if self.block_device(&vol).await?.is_some() {
            return Ok(()); // attached already
        }
        // A node without its device: an attempt that died between its two steps.
        if self.node_exists(&vol).await? {
            tracing::warn!(instance_id = %self.id, volume = %vol, "removing a block node left without its device");
            self.qmp_call("blockdev-del", Some(json!({ "node-name": vol }))).await?;
        }
        ensure_layer(&self.ctx.pool, &disk).await?;
        let t = Instant::now();
        let path = self.ctx.pool.path(&disk.layer);
        self.qmp_call("blockdev-add", Some(blockdev(&vol, &path))).await?;
        if let Err(e) = self.qmp_call("device_add", Some(scsi_disk_device(&vol, target))).await {
            if let Err(undo) = self.qmp_call("blockdev-del", Some(json!({ "node-name": vol }))).await {
                tracing::error!(instance_id = %self.id, volume = %vol, error = %error_chain(&undo), "could not remove the block node of a failed attach");
            }
            return Err(e);
        }
        tracing::info!(instance_id = %self.id, volume = %vol, layer = %disk.layer, target, took = ?t.elapsed(), "volume attached");
        self.update_stored_disks(|disks| {
            disks.retain(|d| d.volume_id != disk.volume_id);
            disks.push(disk);
        });
        Ok(())
    }

    async fn disk_detach(&mut self, volume_id: &str, force: bool) -> Result<(), AgentError> {
        self.require_running()?;
        let stored_root = self.dir.read_spec().ok().flatten().and_then(|s| s.disks.into_iter().find(|d| d.bus == DiskBus::Root));
        if stored_root.is_some_and(|d| d.volume_id == volume_id) {
            return Err(AgentError::Other(format!(
                "{volume_id} is the root volume of {}: it cannot be detached while the VM runs",
                self.id
            )));
        }
        let t = Instant::now();
        if self.block_device(volume_id).await?.is_some() {
            match self.qmp_call("device_del", Some(json!({ "id": volume_id }))).await {
                Ok(_) => {}
                // Gone between our look and the command.
                Err(e) if e.to_string().contains("DeviceNotFound") => {}
                Err(e) => return Err(e),
            }
            self.wait_device_deleted(volume_id).await?;
            if self.block_device(volume_id).await?.is_some() {
                let what = if force { "even a forced detach needs QEMU to let go" } else { "the guest has not released it" };
                return Err(AgentError::Other(format!(
                    "{volume_id} is still attached to {} {DETACH_TIMEOUT:?} after device_del ({what}); the unplug stays requested",
                    self.id
                )));
            }
        }
        // The device held the snapshot overlays stacked on the volume's node (they went with
        // it); the node itself belongs to the monitor.
        if self.node_exists(volume_id).await? {
            self.qmp_call("blockdev-del", Some(json!({ "node-name": volume_id }))).await?;
        }
        tracing::info!(instance_id = %self.id, volume = volume_id, force, took = ?t.elapsed(), "volume detached");
        self.update_stored_disks(|disks| disks.retain(|d| d.volume_id != volume_id));
        Ok(())
    }

    /// Waits (bounded by [`DETACH_TIMEOUT`]) for QEMU's `DEVICE_DELETED` for `volume_id`.
    /// Times out quietly: the caller looks at what QEMU has.
    async fn wait_device_deleted(&mut self, volume_id: &str) -> Result<(), AgentError> {
        let Some(qmp) = self.proc.as_mut().and_then(|p| p.qmp.as_mut()) else {
            return Err(AgentError::Other(format!("no QMP connection to {}'s QEMU", self.id)));
        };
        let wanted = |e: &QmpEvent| e.event == "DEVICE_DELETED" && e.data.get("device").and_then(Value::as_str) == Some(volume_id);
        match timeout(DETACH_TIMEOUT, qmp.wait_event(wanted)).await {
            Ok(Ok(_)) | Err(_) => Ok(()),
            Ok(Err(e)) => {
                let msg = format!("{}: waiting for DEVICE_DELETED of {volume_id}: {}", self.id, error_chain(&e));
                self.drop_qmp_if_broken(&e);
                Err(AgentError::Other(msg))
            }
        }
    }

    async fn disk_snapshot(&mut self, volume_id: &str, new_top: &LayerId) -> Result<(), AgentError> {
        self.require_running()?;
        let dev = self.block_device(volume_id).await?.ok_or_else(|| self.no_such_volume(volume_id))?;
        if dev.node == new_top.as_str() {
            return Ok(()); // this very snapshot was taken already
        }
        let pool = self.ctx.pool.clone();
        let old_top = pool.layer_of(Path::new(&dev.file)).ok_or_else(|| {
            AgentError::Other(format!(
                "{volume_id} on {} writes to {}, which is not a layer of pool {}",
                self.id,
                dev.file,
                pool.dir().display()
            ))
        })?;
        let path = pool.path(new_top);
        if path.exists() {
            return Err(AgentError::Other(format!("layer {new_top} exists already; a snapshot needs a new one")));
        }
        let t = Instant::now();
        pool.layer_create(new_top, Some(&old_top), dev.virtual_size).await?;
        let args = json!({
            "node-name": dev.node,
            "snapshot-file": path.to_string_lossy(),
            "snapshot-node-name": new_top.as_str(),
            "format": "qcow2",
            "mode": "existing",
        });
        if let Err(e) = self.qmp_call_within(SNAPSHOT_TIMEOUT, "blockdev-snapshot-sync", Some(args)).await {
            // Only a layer QEMU certainly did not take may go: after a timeout the command may
            // still complete (QEMU answers in order, so asking now tells).
            match self.block_device(volume_id).await {
                Ok(Some(d)) if d.node == new_top.as_str() => {
                    tracing::warn!(instance_id = %self.id, volume = volume_id, error = %e, "snapshot reported an error but took effect");
                }
                Ok(_) => {
                    crate::qemu::files::remove_file_if_exists(&path);
                    return Err(e);
                }
                Err(e2) => {
                    tracing::error!(instance_id = %self.id, volume = volume_id, error = %e2, layer = %new_top, "snapshot outcome unknown; its layer is kept");
                    return Err(e);
                }
            }
        }
        tracing::info!(instance_id = %self.id, volume = volume_id, %old_top, %new_top, took = ?t.elapsed(), "live snapshot taken");
        self.update_stored_disks(|disks| {
            if let Some(d) = disks.iter_mut().find(|d| d.volume_id == volume_id) {
                d.backing = Some(old_top.clone());
                d.layer = new_top.clone();
            }
        });
        Ok(())
    }

    async fn disk_resize(&mut self, volume_id: &str, size_bytes: u64) -> Result<(), AgentError> {
        self.require_running()?;
        let dev = self.block_device(volume_id).await?.ok_or_else(|| self.no_such_volume(volume_id))?;
        if size_bytes > dev.virtual_size {
            self.qmp_call("block_resize", Some(json!({ "node-name": dev.node, "size": size_bytes }))).await?;
            tracing::info!(instance_id = %self.id, volume = volume_id, from = dev.virtual_size, to = size_bytes, "volume grown");
        }
        self.update_stored_disks(|disks| {
            if let Some(d) = disks.iter_mut().find(|d| d.volume_id == volume_id) {
                d.size_bytes = d.size_bytes.max(size_bytes);
            }
        });
        Ok(())
    }

    /// The live side of [`corral_agent_api::Storage::layer_rebase`]: `layer` (in the chain of
    /// `volume_id`) gets `backing` as its backing, QEMU copying into it what the layers in
    /// between hold, while the guest runs. QEMU's `block-stream` does both: it copies (through
    /// a copy-on-read filter, only ranges the layers above the base hold) and, once finalized,
    /// rewrites the layer's qcow2 header to name the new backing (by the absolute pool path we
    /// give it as `backing-file`) and drops the skipped nodes from the graph. Until that
    /// switch the layer reads the same on its old backing (the copied ranges hold what those
    /// backing layers read), so a crash, a cancelled job or a timeout before it is harmless;
    /// the switch itself waits until what was copied is on disk ([`Runner::finish_job`]).
    ///
    /// Nodes are found by file, since intermediate layers opened from headers have
    /// QEMU-chosen names. The node named after the volume belongs to the monitor and stays
    /// when dropped from the chain, so it is deleted here; afterwards no node may have a
    /// dropped layer's file open, so the caller can delete those files while the VM runs.
    async fn disk_rebase(&mut self, volume_id: &str, layer: &LayerId, backing: Option<&LayerId>) -> Result<(), AgentError> {
        self.require_running()?;
        let t = Instant::now();
        let job_id = format!("rebase-{layer}");
        // A job of an earlier attempt (this agent's, or one before a restart) may still run.
        if self.job_status(&job_id).await?.is_some() {
            tracing::info!(instance_id = %self.id, volume = volume_id, %layer, "finishing an earlier rebase job");
            if let Err(e) = self.finish_job(&job_id, REBASE_TIMEOUT).await {
                tracing::warn!(instance_id = %self.id, volume = volume_id, error = %error_chain(&e), "earlier rebase job failed");
            }
        }
        let chain = self.volume_chain(volume_id).await?;
        let pos = chain.iter().position(|l| l == layer).ok_or_else(|| {
            AgentError::Other(format!("layer {layer} is not in the chain of {volume_id} on {} ({})", self.id, show_chain(&chain)))
        })?;
        let below = &chain[pos + 1..];
        let skipped: Vec<LayerId> = match backing {
            None => below.to_vec(),
            Some(b) => match below.iter().position(|l| l == b) {
                Some(i) => below[..i].to_vec(),
                None => {
                    return Err(AgentError::Other(format!(
                        "layer {b} is not below layer {layer} in the chain of {volume_id} on {} ({})",
                        self.id,
                        show_chain(&chain)
                    )))
                }
            },
        };
        let pool = self.ctx.pool.clone();
        let path_of = |l: &LayerId| pool.path(l).to_string_lossy().into_owned();
        let format_nodes_of = |nodes: &[BlockNode], l: &LayerId| nodes.iter().filter(|n| n.is_format_node_of(&path_of(l))).count();
        // How many times QEMU has each dropped layer open: once in this chain, maybe more in
        // other disks' chains (a snapshot layer two volumes are made from).
        let mut open_before = Vec::new();
        if !skipped.is_empty() {
            let nodes = self.named_nodes().await?;
            open_before = skipped.iter().map(|l| format_nodes_of(&nodes, l)).collect();
            let target = self.node_of(&nodes, layer, volume_id)?;
            let mut args = json!({ "job-id": job_id, "device": target, "on-error": "report", "auto-finalize": false });
            if let Some(b) = backing {
                let path = path_of(b);
                let base_nodes: Vec<&BlockNode> = nodes.iter().filter(|n| n.is_format_node_of(&path)).collect();
                match base_nodes.as_slice() {
                    [n] => args["base-node"] = json!(n.name),
                    // Open more than once (another disk's chain shares it): QEMU finds the
                    // one in this chain by its file name.
                    _ => args["base"] = json!(path),
                }
                args["backing-file"] = json!(path);
            }
            tracing::info!(instance_id = %self.id, volume = volume_id, %layer, ?backing, ?skipped, %args, "live rebase starting");
            self.qmp_call("block-stream", Some(args)).await?;
            self.finish_job(&job_id, REBASE_TIMEOUT).await?;
        }
        // QEMU writes the new header but leaves it in the page cache: make the switch (this
        // one or an earlier attempt's) durable before the caller deletes the layers skipped.
        let path = pool.path(layer);
        if let Err(e) = std::fs::File::open(&path).and_then(|f| f.sync_all()) {
            tracing::warn!(instance_id = %self.id, path = %path.display(), error = %e, "could not fsync a rebased layer");
        }
        // The volume's own node, if dropped from the chain (now or by an earlier attempt that
        // failed after its job), is the monitor's: delete it, which closes its file and lets
        // go of the layers below it that the chain no longer shares.
        let chain_now = self.volume_chain(volume_id).await?;
        let nodes = self.named_nodes().await?;
        if let Some(own) = nodes.iter().find(|n| n.name == volume_id) {
            if !pool.layer_of(Path::new(&own.file)).is_some_and(|l| chain_now.contains(&l)) {
                self.qmp_call("blockdev-del", Some(json!({ "node-name": volume_id }))).await?;
            }
        }
        let now = pool.backing_of(layer)?;
        if now.as_ref() != backing {
            return Err(AgentError::Other(format!(
                "rebase of layer {layer} on {}: the job ended but the layer's backing is {now:?}",
                self.id
            )));
        }
        // This chain's node of every dropped layer is gone (other disks' stay).
        let nodes = self.named_nodes().await?;
        for (l, before) in skipped.iter().zip(open_before) {
            let now = format_nodes_of(&nodes, l);
            if now >= before {
                let names: Vec<&str> = nodes.iter().filter(|n| n.file == path_of(l)).map(|n| n.name.as_str()).collect();
                return Err(AgentError::Other(format!(
                    "layer {layer} of {volume_id} on {} is rebased, but QEMU still has dropped layer {l} open as often as before ({now}: {names:?})",
                    self.id
                )));
            }
        }
        tracing::info!(instance_id = %self.id, volume = volume_id, %layer, ?backing, dropped = skipped.len(), took = ?t.elapsed(), "live rebase done");
        self.update_stored_disks(|disks| {
            if let Some(d) = disks.iter_mut().find(|d| d.volume_id == volume_id && d.layer == *layer) {
                d.backing = backing.cloned();
            }
        });
        Ok(())
    }

    /// The layers of an attached volume's chain, top first, from the qcow2 headers (which
    /// QEMU keeps current, a finished stream job's switch included).
    async fn volume_chain(&mut self, volume_id: &str) -> Result<Vec<LayerId>, AgentError> {
        let dev = self.block_device(volume_id).await?.ok_or_else(|| self.no_such_volume(volume_id))?;
        let pool = &self.ctx.pool;
        let top = pool.layer_of(Path::new(&dev.file)).ok_or_else(|| {
            AgentError::Other(format!(
                "{volume_id} on {} writes to {}, which is not a layer of pool {}",
                self.id,
                dev.file,
                pool.dir().display()
            ))
        })?;
        let mut chain = vec![top.clone()];
        chain.extend(pool.chain_below(&top)?);
        Ok(chain)
    }

    async fn named_nodes(&mut self) -> Result<Vec<BlockNode>, AgentError> {
        let v = self.qmp_call("query-named-block-nodes", Some(json!({ "flat": true }))).await?;
        Ok(parse_named_nodes(&v))
    }

    /// The name of the one format node over `layer`'s file.
    fn node_of(&self, nodes: &[BlockNode], layer: &LayerId, volume_id: &str) -> Result<String, AgentError> {
        let path = self.ctx.pool.path(layer).to_string_lossy().into_owned();
        let found: Vec<&BlockNode> = nodes.iter().filter(|n| n.is_format_node_of(&path)).collect();
        match found.as_slice() {
            [n] => Ok(n.name.clone()),
            [] => Err(AgentError::Other(format!("{} has no block node over layer {layer} of {volume_id}", self.id))),
            more => Err(AgentError::Other(format!(
                "layer {layer} is open {} times in {} (other disks share it), so it cannot be rebased live",
                more.len(),
                self.id
            ))),
        }
    }

    /// The state of job `job_id` (`running`, `pending`, ...), `None` when QEMU has none.
    async fn job_status(&mut self, job_id: &str) -> Result<Option<String>, AgentError> {
        let v = self.qmp_call("query-jobs", None).await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .find(|j| j.get("id").and_then(Value::as_str) == Some(job_id))
            .map(|j| j.get("status").and_then(Value::as_str).unwrap_or("").to_string()))
    }

    /// Sees a rebase's `block-stream` job (started with `auto-finalize: false`) to its end:
    /// when it has copied everything and waits (`BLOCK_JOB_PENDING`), every disk is flushed,
    /// then `job-finalize` lets it switch the layer's backing (`BLOCK_JOB_COMPLETED`). `Ok`
    /// only for a completion without error. Past `limit` the job is cancelled.
    ///
    /// The flush is what makes the switch crash-safe. QEMU keeps the L2 table entries of the
    /// clusters the job copied in its metadata cache, and its header rewrite does not flush
    /// them first: measured (strace, QEMU 10.0.2), a job auto-finalized into the volume's top
    /// writes the new header while the copied clusters' L2 entries stay unwritten until the
    /// guest next flushes, so a QEMU killed meanwhile leaves a layer on its new backing that
    /// has lost what it copied. QMP has no per-node flush; `stop` drains and flushes every
    /// disk (even on a paused VM), so the guest pauses for that long (~10 ms measured) and
    /// `cont` resumes it.
    async fn finish_job(&mut self, job_id: &str, limit: Duration) -> Result<(), AgentError> {
        let deadline = Instant::now() + limit;
        let mut finalized = false;
        if self.job_status(job_id).await?.as_deref() == Some("pending") {
            self.flush_and_finalize(job_id).await?;
            finalized = true;
        }
        let mut last_error: Option<Value> = None;
        loop {
            let Some(qmp) = self.proc.as_mut().and_then(|p| p.qmp.as_mut()) else {
                return Err(AgentError::Other(format!("no QMP connection to {}'s QEMU", self.id)));
            };
            let ours = |e: &QmpEvent| {
                matches!(e.event.as_str(), "BLOCK_JOB_PENDING" | "BLOCK_JOB_COMPLETED" | "BLOCK_JOB_CANCELLED" | "BLOCK_JOB_ERROR")
                    && [e.data.get("id"), e.data.get("device")].into_iter().flatten().any(|v| v.as_str() == Some(job_id))
            };
            match tokio::time::timeout_at(deadline, qmp.wait_event(ours)).await {
                Ok(Ok(ev)) if ev.event == "BLOCK_JOB_PENDING" => {
                    if !finalized {
                        self.flush_and_finalize(job_id).await?;
                        finalized = true;
                    }
                }
                Ok(Ok(ev)) if ev.event == "BLOCK_JOB_ERROR" => {
                    // With on-error=report the job ends next, with the error.
                    tracing::warn!(instance_id = %self.id, job = job_id, data = %ev.data, "block job I/O error");
                    last_error = Some(ev.data);
                }
                Ok(Ok(ev)) => return job_outcome(&self.id, job_id, &ev, last_error.as_ref()),
                Ok(Err(e)) => {
                    let msg = format!("{}: waiting for block job {job_id}: {}", self.id, error_chain(&e));
                    self.drop_qmp_if_broken(&e);
                    return Err(AgentError::Other(msg));
                }
                Err(_) => break,
            }
        }
        tracing::warn!(instance_id = %self.id, job = job_id, ?limit, "block job ran out of time; cancelling it");
        if let Err(e) = self.qmp_call("block-job-cancel", Some(json!({ "device": job_id }))).await {
            tracing::warn!(instance_id = %self.id, job = job_id, error = %error_chain(&e), "block-job-cancel failed");
        }
        let Some(qmp) = self.proc.as_mut().and_then(|p| p.qmp.as_mut()) else {
            return Err(AgentError::Other(format!("no QMP connection to {}'s QEMU", self.id)));
        };
        let ends = |e: &QmpEvent| {
            matches!(e.event.as_str(), "BLOCK_JOB_COMPLETED" | "BLOCK_JOB_CANCELLED")
                && e.data.get("device").and_then(Value::as_str) == Some(job_id)
        };
        match timeout(JOB_CANCEL_WAIT, qmp.wait_event(ends)).await {
            // It finished just as it was cancelled.
            Ok(Ok(ev)) if ev.event == "BLOCK_JOB_COMPLETED" && ev.data.get("error").is_none() => Ok(()),
            _ => Err(AgentError::Other(format!("block job {job_id} on {} did not finish within {limit:?}; cancelled", self.id))),
        }
    }

    /// Flushes every disk of the VM to its files (QMP `stop`, then `cont` if it was running),
    /// then lets job `job_id` finalize.
    async fn flush_and_finalize(&mut self, job_id: &str) -> Result<(), AgentError> {
        let was = self.qmp_call("query-status", None).await?.get("status").and_then(Value::as_str).unwrap_or("").to_string();
        let t = Instant::now();
        self.qmp_call("stop", None).await?;
        if was == "running" {
            let mut resumed = self.qmp_call("cont", None).await;
            if resumed.is_err() {
                resumed = self.qmp_call("cont", None).await;
            }
            if let Err(e) = resumed {
                tracing::error!(instance_id = %self.id, error = %error_chain(&e), "could not resume the guest after flushing its disks");
                return Err(e);
            }
        }
        tracing::debug!(instance_id = %self.id, job = job_id, paused = ?t.elapsed(), "disks flushed");
        self.qmp_call("job-finalize", Some(json!({ "id": job_id }))).await?;
        Ok(())
    }

    /// Applies a change that succeeded in QEMU to `vm.json`'s disks. QEMU is the truth here:
    /// a record that cannot be updated is logged, not an error.
    fn update_stored_disks(&self, change: impl FnOnce(&mut Vec<DiskSpec>)) {
        let result = self.dir.read_spec().and_then(|spec| match spec {
            Some(mut spec) => {
                change(&mut spec.disks);
                self.dir.write_spec(&spec)
            }
            None => Ok(()),
        });
        if let Err(e) = result {
            tracing::warn!(instance_id = %self.id, error = %e, "could not record the VM's disks in vm.json");
        }
    }

    // ---- watching ----------------------------------------------------------------------

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
    async fn check_running(&mut self) {
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

    async fn qmp_execute(&mut self, command: &str) -> Result<(), AgentError> {
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

    fn drop_qmp_if_broken(&mut self, e: &QmpError) {
        if matches!(e, QmpError::Closed | QmpError::Io(_) | QmpError::Protocol(_)) {
            if let Some(p) = self.proc.as_mut() {
                p.qmp = None;
            }
            self.next_qmp_attempt = Instant::now() + QMP_RETRY_INTERVAL;
        }
    }

    /// The VM's live QEMU when the runner holds none: from the pid file, else from `/proc`.
    fn find_pid(&self) -> Option<i32> {
        read_pid_file(&self.dir.pid_file())
            .filter(|&pid| self.ctx.is_ours(pid, &self.id))
            .or_else(|| find_vm_process(&self.ctx.qemu_binary_name, &self.id))
    }

    fn sigkill(&self) {
        if let Some(p) = &self.proc {
            if let Err(e) = kill_vm_process(p.pid, &self.ctx.qemu_binary_name, &self.id) {
                tracing::warn!(instance_id = %self.id, pid = p.pid, error = %e, "SIGKILL failed");
            }
        }
    }

    /// SIGKILLs a verified pid and waits for it to go; `true` once it is gone.
    async fn kill_and_wait(&self, pid: i32) -> bool {
        let name = &self.ctx.qemu_binary_name;
        if let Err(e) = kill_vm_process(pid, name, &self.id) {
            tracing::warn!(instance_id = %self.id, pid, error = %e, "SIGKILL failed");
        }
        wait_gone(pid, name, &self.id, KILL_WAIT).await
    }
}

/// A block device as `query-block` reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BlockDevice {
    /// The device's QOM path or id (`vol-...`, `/machine/peripheral/vol-.../virtio-backend`).
    pub qdev: String,
    /// The top node: the volume's node, or the newest live snapshot's overlay.
    pub node: String,
    /// The top node's file.
    pub file: String,
    pub virtual_size: u64,
}

/// The devices with a medium in a `query-block` answer.
pub(crate) fn parse_query_block(v: &Value) -> Vec<BlockDevice> {
    let mut out = Vec::new();
    for b in v.as_array().into_iter().flatten() {
        let Some(inserted) = b.get("inserted") else { continue };
        let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
        out.push(BlockDevice {
            qdev: s(b.get("qdev")),
            node: s(inserted.get("node-name")),
            file: s(inserted.get("file")),
            virtual_size: inserted.pointer("/image/virtual-size").and_then(Value::as_u64).unwrap_or(0),
        });
    }
    out
}

/// A node as `query-named-block-nodes` reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BlockNode {
    pub name: String,
    /// The driver: `qcow2` for a layer's format node, `file` for the protocol node under it,
    /// a filter's name for a filter (a running stream job's `copy-on-read`).
    pub drv: String,
    /// The file the node reads (a filter reports its child's).
    pub file: String,
}

impl BlockNode {
    fn is_format_node_of(&self, path: &str) -> bool {
        self.drv == "qcow2" && self.file == path
    }
}

pub(crate) fn parse_named_nodes(v: &Value) -> Vec<BlockNode> {
    let s = |n: &Value, k: &str| n.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    v.as_array().into_iter().flatten().map(|n| BlockNode { name: s(n, "node-name"), drv: s(n, "drv"), file: s(n, "file") }).collect()
}

/// A block job's end, from its `BLOCK_JOB_COMPLETED` / `BLOCK_JOB_CANCELLED` event.
fn job_outcome(vm: &str, job_id: &str, ev: &QmpEvent, io_error: Option<&Value>) -> Result<(), AgentError> {
    match (ev.event.as_str(), ev.data.get("error").and_then(Value::as_str)) {
        ("BLOCK_JOB_COMPLETED", None) => Ok(()),
        ("BLOCK_JOB_COMPLETED", Some(error)) => {
            let detail = io_error.map(|d| format!(" (I/O error: {d})")).unwrap_or_default();
            Err(AgentError::Other(format!("block job {job_id} on {vm} failed: {error}{detail}")))
        }
        _ => Err(AgentError::Other(format!("block job {job_id} on {vm} was cancelled"))),
    }
}

/// A chain for messages, from the top down.
fn show_chain(chain: &[LayerId]) -> String {
    format!("its chain, top first: {}", chain.iter().map(LayerId::as_str).collect::<Vec<_>>().join(", "))
}

/// Whether a `query-block` `qdev` is the device with id `id`: QEMU gives the id itself for
/// some devices and a QOM path (`/machine/peripheral/<id>[/virtio-backend]`) for others.
pub(crate) fn device_is(qdev: &str, id: &str) -> bool {
    let path = qdev.strip_prefix("/machine/peripheral/").unwrap_or(qdev);
    path == id || path.strip_prefix(id).is_some_and(|rest| rest.starts_with('/'))
}

/// Creates a disk's top layer when missing (an overlay on its backing, or an empty disk) and
/// grows one smaller than the disk's size.
async fn ensure_layer(pool: &Pool, disk: &DiskSpec) -> Result<(), AgentError> {
    match pool.layer_size(&disk.layer).await? {
        None => pool.layer_create(&disk.layer, disk.backing.as_ref(), disk.size_bytes).await,
        Some(size) if size < disk.size_bytes => pool.layer_resize(&disk.layer, disk.size_bytes).await,
        Some(_) => Ok(()),
    }
}

/// QEMU daemonizes into `/`, so every path handed to it is made absolute first.
fn absolute_paths(mut spec: VmSpec) -> Result<VmSpec, AgentError> {
    let abs = |p: &std::path::Path| std::path::absolute(p).map_err(|e| AgentError::host(format!("resolving path {}", p.display()), e));
    if let corral_agent_api::BootMode::DirectKernel { kernel, initrd, .. } = &mut spec.boot {
        *kernel = abs(kernel)?;
        if let Some(i) = initrd {
            *i = abs(i)?;
        }
    }
    Ok(spec)
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
    fn query_block_answers_are_read_and_matched_to_volumes() {
        let v = json!([
            {"device": "", "qdev": "vol-1", "inserted": {"node-name": "l00000000000000004", "file": "/p/l00000000000000004.qcow2",
                "image": {"virtual-size": 1073741824}}},
            {"device": "", "qdev": "/machine/peripheral/vol-2/virtio-backend", "inserted": {"node-name": "vol-2", "file": "/p/x.qcow2",
                "image": {"virtual-size": 5}}},
            {"device": "cd0", "qdev": "/machine/peripheral/cd0"}
        ]);
        let devs = parse_query_block(&v);
        assert_eq!(devs.len(), 2, "a device without a medium is skipped");
        assert_eq!(devs[0].node, "l00000000000000004");
        assert_eq!(devs[0].virtual_size, 1 << 30);
        assert!(device_is(&devs[0].qdev, "vol-1"));
        assert!(device_is(&devs[1].qdev, "vol-2"));
        assert!(device_is("/machine/peripheral/vol-2", "vol-2"));
        assert!(!device_is(&devs[1].qdev, "vol-"), "no prefix matches");
        assert!(!device_is("/machine/peripheral/vol-22/virtio-backend", "vol-2"));
    }

    #[test]
    fn named_nodes_and_block_job_ends_are_read() {
        let v = json!([
            {"node-name": "l00000000000000004", "drv": "qcow2", "file": "/p/l00000000000000004.qcow2", "ro": false},
            {"node-name": "#block123", "drv": "file", "file": "/p/l00000000000000004.qcow2"},
            {"node-name": "#block456", "drv": "copy-on-read", "file": "/p/l00000000000000004.qcow2"},
            {"node-name": "vol-1", "drv": "qcow2", "file": "/p/l00000000000000003.qcow2"}
        ]);
        let nodes = parse_named_nodes(&v);
        assert_eq!(nodes.len(), 4);
        let over = |p: &str| nodes.iter().filter(|n| n.is_format_node_of(p)).map(|n| n.name.as_str()).collect::<Vec<_>>();
        assert_eq!(over("/p/l00000000000000004.qcow2"), ["l00000000000000004"], "protocol and filter nodes are not the layer's");
        assert_eq!(over("/p/l00000000000000003.qcow2"), ["vol-1"]);

        let ev = |event: &str, data: Value| QmpEvent { event: event.into(), data };
        let done = ev("BLOCK_JOB_COMPLETED", json!({"device": "rebase-l1", "type": "stream", "len": 1, "offset": 1}));
        assert!(job_outcome("i-1", "rebase-l1", &done, None).is_ok());
        let failed = ev("BLOCK_JOB_COMPLETED", json!({"device": "rebase-l1", "error": "Input/output error"}));
        let err = job_outcome("i-1", "rebase-l1", &failed, Some(&json!({"operation": "write"}))).unwrap_err().to_string();
        assert!(err.contains("Input/output error") && err.contains("write"), "{err}");
        let cancelled = ev("BLOCK_JOB_CANCELLED", json!({"device": "rebase-l1"}));
        assert!(job_outcome("i-1", "rebase-l1", &cancelled, None).unwrap_err().to_string().contains("cancelled"));
    }

    #[test]
    fn generations_never_go_backwards_even_if_the_clock_does() {
        let clock = GenerationClock { last: AtomicU64::new(u64::MAX / 2) };
        let a = clock.next();
        assert_eq!(a, u64::MAX / 2 + 1);
        assert_eq!(clock.next(), a + 1);
    }
}
