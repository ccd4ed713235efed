//! The VM's QEMU process from launch to its end, as the runner's requests: start (write
//! `vm.json`, create missing top layers, launch QEMU daemonized, inside the VPC's namespace when
//! the VM has interfaces), stop (ACPI power-down, then `quit` past the stop timeout, then
//! SIGKILL), reboot (`system_reset`) and destroy (SIGKILL, then delete the VM directory); and
//! [`adopt`], which takes over what a previous agent left in the VM's directory. A pid is
//! signalled only after the `/proc/<pid>/cmdline` check says it is this VM's QEMU.

use std::sync::Arc;
use std::time::Duration;

use corral_agent_api::{AgentError, VmSpec, VmState};
use tokio::time::{timeout, Instant};

use super::disk::ensure_layer;
use super::handle::{spawn, VmHandle};
use super::runner::{connect_qmp, Proc, Runner, QMP_RETRY_INTERVAL, QMP_TIMEOUT};
use super::{error_chain, Context};
use crate::qemu::cmdline::{check_disks, qemu_args};
use crate::qemu::files::VmDir;
use crate::qemu::process::{find_vm_process, kill_vm_process, read_pid_file, wait_gone};

/// QEMU's launcher exits once the daemon finished initialising (measured: ~0.1 s); anything
/// near this is a hung host.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);
/// After `quit`, how long before SIGKILL (QEMU flushes the overlay and exits in well under 1 s).
pub(super) const QUIT_GRACE: Duration = Duration::from_secs(3);
/// How long destroy (and a failed launch) waits for a SIGKILLed process to disappear.
const KILL_WAIT: Duration = Duration::from_secs(10);

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

impl Runner {
    pub(super) async fn start(&mut self, spec: VmSpec) -> Result<(), AgentError> {
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

    pub(super) async fn stop(&mut self, force: bool) -> Result<(), AgentError> {
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
    pub(super) async fn force_stop(&mut self) {
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

    pub(super) async fn reboot(&mut self) -> Result<(), AgentError> {
        match self.state {
            Some(VmState::Starting | VmState::Running) => self.qmp_execute("system_reset").await,
            None => Err(AgentError::NoSuchVm(self.id.clone())),
            Some(state @ (VmState::Stopping | VmState::Stopped)) => Err(AgentError::WrongState { id: self.id.clone(), state }),
        }
    }

    pub(super) async fn destroy(&mut self) -> Result<(), AgentError> {
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

    /// The VM's live QEMU when the runner holds none: from the pid file, else from `/proc`.
    fn find_pid(&self) -> Option<i32> {
        read_pid_file(&self.dir.pid_file())
            .filter(|&pid| self.ctx.is_ours(pid, &self.id))
            .or_else(|| find_vm_process(&self.ctx.qemu_binary_name, &self.id))
    }

    pub(super) fn sigkill(&self) {
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
