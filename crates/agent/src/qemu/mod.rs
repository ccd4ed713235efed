//! The real hypervisor driver: [`QemuAgent`] runs each instance as its own daemonized QEMU
//! process, controlled over QMP, with its files under `<state_dir>/<instance-id>/` and its
//! disks in the storage pool ([`Pool`], `<pool_dir>/<layer-id>.qcow2`), which it also serves
//! as [`Storage`].
//!
//! ```text
//!  QemuAgent ── map: instance id ──▶ VmHandle ──(bounded channel)──▶ runner task
//!      │                                 ▲                             │ owns
//!      │ vm_list reads each handle's     └── last report (state, gen) ─┤ QEMU pid + QMP socket
//!      │ last report; changes() is                                     │ polls /proc, reads events
//!      │ notified by every runner                                      ▼
//!      └── new(): scans state_dir, re-adopts live QEMUs      qemu-system-x86_64 -daemonize
//! ```
//!
//! Pieces, each in its own file: [`host`] (accelerator detection and host figures),
//! [`cmdline`] (the QEMU command line, pure), [`qmp`] (the QMP client), [`process`] (pid
//! checks and signals), [`files`] (the per-VM directory), [`vm`] (the per-VM actor and its
//! state machine).
//!
//! QEMU processes outlive the agent (QEMU `setsid`s itself), so an agent that is dropped,
//! killed or restarted leaves its guests running; the next [`QemuAgent::new`] on the same
//! state directory picks them up again, checking each pid really is that instance's QEMU.

pub mod cmdline;
mod console;
mod files;
pub mod host;
mod hostnet;
mod process;
pub mod qmp;
mod vm;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_agent_api::{Agent, AgentError, DiskSpec, HostInfo, LayerId, PoolUsage, Storage, VmSpec, VmStatus};
use tokio::sync::Notify;

pub use cmdline::ec2_uuid;
pub use host::{decide_accel, detect_accel, Accel, AccelFacts};

use crate::pool::Pool;
use files::{is_instance_dir_name, VmDir, MAX_SOCKET_PATH};
use vm::{Context, GenerationClock, VmHandle};

/// Default graceful-stop window: a Debian guest under TCG powers off in 5-10 s; EC2 itself
/// waits minutes. A minute leaves room for a loaded host without stalling a stop for long.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Default TCG translation-cache size. QEMU otherwise reserves 1 GiB per VM and fills it as
/// the guest runs new code; measured here, an idle busybox guest touches ~43 MiB of it and a
/// full distribution boot much more. 128 MiB bounds the cache at a small cost in retranslation.
pub const DEFAULT_TCG_TB_SIZE_MIB: u32 = 128;

/// How the agent runs QEMU. Build one with [`QemuConfig::new`] and override fields.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// Where VM directories live, e.g. `<corral state>/vms`. Created if missing.
    pub state_dir: PathBuf,
    /// The storage pool: one qcow2 file per layer, e.g. `<corral state>/pool`. Created if
    /// missing. Layers record their backing layers by absolute path, so the pool stays put.
    pub pool_dir: PathBuf,
    /// Default `qemu-system-x86_64` (found on `PATH`).
    pub qemu_binary: PathBuf,
    /// Default `qemu-img`.
    pub qemu_img_binary: PathBuf,
    /// How long a guest gets to act on the ACPI power button before the stop is forced.
    pub stop_timeout: Duration,
    /// `None` detects ([`detect_accel`]); tests or operators may force one.
    pub accel: Option<Accel>,
    /// `-accel tcg,tb-size=N` in MiB; `None` keeps QEMU's default. Ignored under KVM.
    pub tcg_tb_size_mib: Option<u32>,
    /// The data path. `None`: VMs with network interfaces cannot start.
    pub net: Option<corral_net::NetConfig>,
}

impl QemuConfig {
    pub fn new(state_dir: impl Into<PathBuf>, pool_dir: impl Into<PathBuf>) -> Self {
        QemuConfig {
            state_dir: state_dir.into(),
            pool_dir: pool_dir.into(),
            qemu_binary: PathBuf::from("qemu-system-x86_64"),
            qemu_img_binary: PathBuf::from("qemu-img"),
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            accel: None,
            tcg_tb_size_mib: Some(DEFAULT_TCG_TB_SIZE_MIB),
            net: None,
        }
    }
}

/// The [`Agent`] that runs real QEMU processes.
pub struct QemuAgent {
    ctx: Arc<Context>,
    vms: Mutex<HashMap<String, VmHandle>>,
    net: Option<Arc<hostnet::HostNet>>,
}

fn utf8_path(what: &str, p: &Path) -> Result<String, AgentError> {
    p.to_str().map(str::to_string).ok_or_else(|| AgentError::Other(format!("{what} path {} is not UTF-8", p.display())))
}

impl QemuAgent {
    /// Prepares the state directory, picks the accelerator, and re-adopts every VM found
    /// there: live, verified QEMU processes are reconnected over QMP; the rest are `Stopped`.
    pub async fn new(config: QemuConfig) -> Result<QemuAgent, AgentError> {
        let state_dir = std::path::absolute(&config.state_dir)
            .map_err(|e| AgentError::host(format!("resolving state directory {}", config.state_dir.display()), e))?;
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| AgentError::host(format!("creating state directory {}", state_dir.display()), e))?;
        // Every VM's QMP socket lives under it; a unix socket path has a hard length limit.
        let longest = VmDir::new(&state_dir, "i-0123456789abcdef0").qmp_socket();
        if longest.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(AgentError::Other(format!(
                "state directory {} is too deep: QMP socket paths like {} exceed {MAX_SOCKET_PATH} bytes",
                state_dir.display(),
                longest.display()
            )));
        }
        let net = match &config.net {
            Some(c) => Some(Arc::new(hostnet::HostNet::new(
                corral_net::LinuxNet::new(c.clone()).map_err(|e| AgentError::host("starting the data path", e))?,
            ))),
            None => None,
        };
        let pool_dir = std::path::absolute(&config.pool_dir)
            .map_err(|e| AgentError::host(format!("resolving pool directory {}", config.pool_dir.display()), e))?;
        std::fs::create_dir_all(&pool_dir).map_err(|e| AgentError::host(format!("creating pool directory {}", pool_dir.display()), e))?;
        let pool = Pool::new(pool_dir).with_qemu_img(utf8_path("qemu-img binary", &config.qemu_img_binary)?);
        let accel = config.accel.unwrap_or_else(detect_accel);
        let cpuinfo = host::read_cpuinfo();
        let qemu_binary = utf8_path("QEMU binary", &config.qemu_binary)?;
        let ctx = Arc::new(Context {
            qemu_binary_name: config.qemu_binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            qemu_binary,
            pool,
            stop_timeout: config.stop_timeout,
            launch: cmdline::LaunchOptions { accel, tcg_tb_size_mib: config.tcg_tb_size_mib, tsc_khz: host::cpuinfo_tsc_khz(&cpuinfo) },
            clock: GenerationClock::default(),
            ns_prefix: config.net.as_ref().map(|n| n.ns_prefix.clone()),
            changes: Arc::new(Notify::new()),
            state_dir,
        });
        tracing::info!(state_dir = %ctx.state_dir.display(), pool = %ctx.pool.dir().display(), accel = accel.as_str(), "QEMU agent starting");

        let mut vms = HashMap::new();
        let entries = std::fs::read_dir(&ctx.state_dir)
            .map_err(|e| AgentError::host(format!("reading state directory {}", ctx.state_dir.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| AgentError::host(format!("reading state directory {}", ctx.state_dir.display()), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_instance_dir_name(&name) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            vms.insert(name.clone(), vm::adopt(ctx.clone(), &name).await);
        }
        if !vms.is_empty() {
            tracing::info!(count = vms.len(), "re-adopted VMs");
        }
        Ok(QemuAgent { ctx, vms: Mutex::new(vms), net })
    }

    /// The accelerator guests run under.
    pub fn accel(&self) -> Accel {
        self.ctx.launch.accel
    }

    /// The (absolute) directory holding one directory per VM.
    pub fn state_dir(&self) -> &Path {
        &self.ctx.state_dir
    }

    /// The storage pool the VMs' disks are layers of.
    pub fn pool(&self) -> &Pool {
        &self.ctx.pool
    }

    /// The spec the VM was last started with (its `vm.json`), `None` for a VM never started
    /// here: with it a restarted agent can start a stopped VM again on its own.
    pub fn vm_spec(&self, instance_id: &str) -> Result<Option<VmSpec>, AgentError> {
        Self::check_id(instance_id)?;
        let dir = VmDir::new(&self.ctx.state_dir, instance_id);
        dir.read_spec().map_err(|e| AgentError::host(format!("reading {}", dir.spec_file().display()), e))
    }

    fn handle(&self, instance_id: &str) -> Option<VmHandle> {
        let vms = self.vms.lock().unwrap_or_else(|e| e.into_inner());
        vms.get(instance_id).filter(|h| !h.is_gone()).cloned()
    }

    /// The live handle for `instance_id`, creating a runner for a VM not seen before.
    fn handle_or_new(&self, instance_id: &str) -> VmHandle {
        let mut vms = self.vms.lock().unwrap_or_else(|e| e.into_inner());
        match vms.get(instance_id) {
            Some(h) if !h.is_gone() => h.clone(),
            _ => {
                let h = vm::spawn_new(self.ctx.clone(), instance_id);
                vms.insert(instance_id.to_string(), h.clone());
                h
            }
        }
    }

    /// Forgets `handle` if its runner has ended (and nobody replaced it meanwhile).
    fn forget_if_gone(&self, instance_id: &str, handle: &VmHandle) {
        let mut vms = self.vms.lock().unwrap_or_else(|e| e.into_inner());
        if vms.get(instance_id).is_some_and(|h| h.same(handle) && h.is_gone()) {
            vms.remove(instance_id);
        }
    }

    /// Runs one QMP command on the VM's QEMU, in turn with the agent's own requests, and
    /// returns QEMU's answer. For diagnostics and tests: anything that changes the VM behind
    /// the agent's back (devices, power) is the caller's problem.
    pub async fn vm_qmp(
        &self,
        instance_id: &str,
        command: &str,
        arguments: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, AgentError> {
        let gone = || AgentError::NoSuchVm(instance_id.to_string());
        self.existing(instance_id)?.qmp(command, arguments).await.unwrap_or_else(|| Err(gone()))
    }

    /// The runner of a VM that exists, or `NoSuchVm`.
    fn existing(&self, instance_id: &str) -> Result<VmHandle, AgentError> {
        self.handle(instance_id).ok_or_else(|| AgentError::NoSuchVm(instance_id.to_string()))
    }

    fn check_id(instance_id: &str) -> Result<(), AgentError> {
        if is_instance_dir_name(instance_id) {
            Ok(())
        } else {
            Err(AgentError::Other(format!("{instance_id:?} is not an instance id")))
        }
    }
}

#[async_trait::async_trait]
impl Agent for QemuAgent {
    async fn host_info(&self) -> Result<HostInfo, AgentError> {
        let cpuinfo = host::read_cpuinfo();
        let vcpus = match host::cpuinfo_vcpus(&cpuinfo) {
            0 => std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1),
            n => n,
        };
        Ok(HostInfo {
            hostname: host::hostname(),
            accelerator: self.accel().as_str().to_string(),
            vcpus,
            memory_mib: host::total_memory_mib().map_err(|e| AgentError::host("reading /proc/meminfo", e))?,
        })
    }

    async fn vm_start(&self, spec: &VmSpec) -> Result<(), AgentError> {
        Self::check_id(&spec.instance_id)?;
        // A runner that ends while our request waits in its queue (a concurrent destroy) drops
        // the request; a fresh runner then takes it.
        for _ in 0..3 {
            let handle = self.handle_or_new(&spec.instance_id);
            let answer = handle.start(spec.clone()).await;
            self.forget_if_gone(&spec.instance_id, &handle);
            if let Some(result) = answer {
                return result;
            }
        }
        Err(AgentError::Other(format!("VM {} was destroyed while being started", spec.instance_id)))
    }

    async fn vm_stop(&self, instance_id: &str, force: bool) -> Result<(), AgentError> {
        let handle = self.handle(instance_id).ok_or_else(|| AgentError::NoSuchVm(instance_id.to_string()))?;
        handle.stop(force).await.unwrap_or_else(|| Err(AgentError::NoSuchVm(instance_id.to_string())))
    }

    async fn vm_reboot(&self, instance_id: &str) -> Result<(), AgentError> {
        let handle = self.handle(instance_id).ok_or_else(|| AgentError::NoSuchVm(instance_id.to_string()))?;
        handle.reboot().await.unwrap_or_else(|| Err(AgentError::NoSuchVm(instance_id.to_string())))
    }

    async fn vm_destroy(&self, instance_id: &str) -> Result<(), AgentError> {
        Self::check_id(instance_id)?;
        let handle = match self.handle(instance_id) {
            Some(h) => h,
            // Not known, but something may have appeared on disk since we scanned: adopt it
            // so it is torn down the same careful way.
            None if VmDir::new(&self.ctx.state_dir, instance_id).root().exists() => {
                let h = vm::adopt(self.ctx.clone(), instance_id).await;
                let mut vms = self.vms.lock().unwrap_or_else(|e| e.into_inner());
                vms.entry(instance_id.to_string()).or_insert(h).clone()
            }
            None => return Ok(()),
        };
        let result = handle.destroy().await.unwrap_or(Ok(()));
        self.forget_if_gone(instance_id, &handle);
        result
    }

    async fn vm_list(&self) -> Result<Vec<VmStatus>, AgentError> {
        let vms = self.vms.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<VmStatus> = vms.iter().filter_map(|(id, h)| h.status(id)).collect();
        list.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        Ok(list)
    }

    async fn vm_console(&self, instance_id: &str) -> Result<Vec<u8>, AgentError> {
        let known = self.handle(instance_id).is_some_and(|h| h.status(instance_id).is_some());
        if !known {
            return Err(AgentError::NoSuchVm(instance_id.to_string()));
        }
        let path = VmDir::new(&self.ctx.state_dir, instance_id).console();
        // The tail only: the file may hold up to a megabyte, and callers show 64 KiB of it.
        let read = tokio::task::spawn_blocking({
            let path = path.clone();
            move || console::tail(&path, console::KEEP_BYTES)
        })
        .await
        .map_err(|e| AgentError::host(format!("reading console log {}", path.display()), std::io::Error::other(e)))?;
        read.map_err(|e| AgentError::host(format!("reading console log {}", path.display()), e))
    }

    async fn vm_disk_attach(&self, instance_id: &str, disk: &DiskSpec) -> Result<(), AgentError> {
        let gone = || AgentError::NoSuchVm(instance_id.to_string());
        self.existing(instance_id)?.disk_attach(disk.clone()).await.unwrap_or_else(|| Err(gone()))
    }

    async fn vm_disk_detach(&self, instance_id: &str, volume_id: &str, force: bool) -> Result<(), AgentError> {
        let gone = || AgentError::NoSuchVm(instance_id.to_string());
        self.existing(instance_id)?.disk_detach(volume_id, force).await.unwrap_or_else(|| Err(gone()))
    }

    async fn vm_disk_snapshot(&self, instance_id: &str, volume_id: &str, new_top: &LayerId) -> Result<(), AgentError> {
        let gone = || AgentError::NoSuchVm(instance_id.to_string());
        self.existing(instance_id)?.disk_snapshot(volume_id, new_top).await.unwrap_or_else(|| Err(gone()))
    }

    async fn vm_disk_rebase(
        &self,
        instance_id: &str,
        volume_id: &str,
        layer: &LayerId,
        backing: Option<&LayerId>,
    ) -> Result<(), AgentError> {
        let gone = || AgentError::NoSuchVm(instance_id.to_string());
        self.existing(instance_id)?.disk_rebase(volume_id, layer, backing).await.unwrap_or_else(|| Err(gone()))
    }

    async fn vm_disk_resize(&self, instance_id: &str, volume_id: &str, size_bytes: u64) -> Result<(), AgentError> {
        let gone = || AgentError::NoSuchVm(instance_id.to_string());
        self.existing(instance_id)?.disk_resize(volume_id, size_bytes).await.unwrap_or_else(|| Err(gone()))
    }

    async fn host_apply(&self, desired: Arc<corral_agent_api::DesiredHost>) -> Result<(), AgentError> {
        match &self.net {
            Some(n) => n.apply(&desired).await,
            None if desired.net.vpcs.iter().all(|v| v.ports.is_empty()) => Ok(()),
            None => Err(AgentError::Other("this agent runs without a data path: VMs with network interfaces cannot run".into())),
        }
    }

    fn changes(&self) -> Arc<Notify> {
        self.ctx.changes.clone()
    }
}

/// The pool side of block storage, served by the agent's [`Pool`].
#[async_trait::async_trait]
impl Storage for QemuAgent {
    async fn layer_create(&self, id: &LayerId, backing: Option<&LayerId>, size_bytes: u64) -> Result<(), AgentError> {
        self.ctx.pool.layer_create(id, backing, size_bytes).await
    }
    async fn layer_import(&self, id: &LayerId, source: &Path) -> Result<u64, AgentError> {
        self.ctx.pool.layer_import(id, source).await
    }
    async fn layer_flatten(&self, id: &LayerId, source: &LayerId) -> Result<(), AgentError> {
        self.ctx.pool.layer_flatten(id, source).await
    }
    async fn layer_rebase(&self, id: &LayerId, backing: Option<&LayerId>) -> Result<(), AgentError> {
        self.ctx.pool.layer_rebase(id, backing).await
    }
    async fn layer_resize(&self, id: &LayerId, size_bytes: u64) -> Result<(), AgentError> {
        self.ctx.pool.layer_resize(id, size_bytes).await
    }
    async fn layer_delete(&self, id: &LayerId) -> Result<(), AgentError> {
        self.ctx.pool.layer_delete(id).await
    }
    async fn layer_size(&self, id: &LayerId) -> Result<Option<u64>, AgentError> {
        self.ctx.pool.layer_size(id).await
    }
    async fn usage(&self) -> Result<PoolUsage, AgentError> {
        self.ctx.pool.usage().await
    }
    async fn layer_files(&self) -> Result<Vec<corral_agent_api::LayerFile>, AgentError> {
        self.ctx.pool.layer_files().await
    }
    async fn temp_sweep(&self, older_than: std::time::Duration) -> Result<Vec<String>, AgentError> {
        self.ctx.pool.temp_sweep(older_than).await
    }
}
