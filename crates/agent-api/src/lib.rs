//! The contract between the control plane and a host's agent: the [`Agent`] trait and its
//! request and report types. The control plane never touches the host; the agent never reads
//! the store; this crate is the only thing they share.
//!
//! Two implementations exist: the real agent (`corral_agent::qemu`, QEMU processes) and the
//! simulated one (`corral_agent::sim`, VM state in memory, for API and scale tests).
//!
//! Calls are idempotent requests for a desired state ("this VM should run", "should be
//! stopped", "should not exist"); what actually happened comes back through [`Agent::vm_list`]
//! as [`VmStatus`] reports, each with a generation that grows with every change the agent
//! observes, so the control plane applies only newer reports.

pub mod metadata;
pub mod net;
pub mod storage;

pub use storage::{DiskBus, DiskSpec, LayerFile, LayerId, PoolUsage, Storage};

use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("no VM for instance {0}")]
    NoSuchVm(String),
    #[error("VM {id} cannot do that while {state:?}")]
    WrongState { id: String, state: VmState },
    #[error("host capacity exhausted: {0}")]
    Capacity(String),
    #[error("{context}")]
    Host {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{0}")]
    Other(String),
}

impl AgentError {
    pub fn host(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        AgentError::Host { context: context.into(), source: Box::new(source) }
    }
}

/// How the VM boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootMode {
    /// Direct kernel boot on `-M microvm` (fast; no hotplug, no SMBIOS).
    DirectKernel { kernel: PathBuf, initrd: Option<PathBuf>, cmdline: String },
    /// The disk's own bootloader on q35 (SeaBIOS), with SMBIOS identity.
    Firmware,
}

/// One network interface of a VM. The control plane names the interface; the agent decides
/// which tap and namespace carry it (its data path made them when it applied the desired
/// network state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicSpec {
    pub eni_id: String,
    pub vpc_id: String,
    /// `02:xx:xx:xx:xx:xx`
    pub mac: String,
}

/// Everything this host should carry besides VMs: the networks of its instances and what
/// their metadata service answers. Sent whole; what is absent is removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredHost {
    pub net: net::DesiredNet,
    /// Shared with the control plane's cache (see `net::VpcSpec::ports`).
    pub instances: imbl::Vector<std::sync::Arc<metadata::InstanceView>>,
}

/// Everything the agent needs to run one instance's VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub instance_id: String,
    pub instance_type: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub boot: BootMode,
    /// The volumes attached to the instance, the root first (`DiskBus::Root`). Each is the
    /// top layer of its volume in the storage pool; the agent creates a disk's top layer
    /// (an overlay on `backing`) the first time it is needed, and never deletes layers
    /// itself: volumes outlive VMs, so `vm_destroy` leaves them to the control plane.
    pub disks: Vec<DiskSpec>,
    /// Network interfaces, the primary first.
    pub nics: Vec<NicSpec>,
}

/// What the agent sees a VM doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmState {
    /// The process is being started; the guest does not run yet.
    Starting,
    /// QEMU reports the guest running.
    Running,
    /// A power-down was requested; the guest has not gone yet.
    Stopping,
    /// No process; the root volume is kept. Reached by a stop we asked for, or by the guest
    /// powering itself off (or QEMU dying).
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmStatus {
    pub instance_id: String,
    pub state: VmState,
    /// Grows with every change this agent observes; never repeats across agent restarts.
    pub generation: u64,
}

/// The VMs that changed since a generation (see [`Agent::vm_changes_since`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmChanges {
    /// Every VM whose status changed after the generation asked about; every VM the agent
    /// knows when `complete`.
    pub vms: Vec<VmStatus>,
    /// The VMs gone after the generation asked about (empty when `complete`: a VM not in
    /// `vms` is gone).
    pub gone: Vec<String>,
    /// `vms` lists every VM: the agent could not tell what changed since.
    pub complete: bool,
    /// What to ask about next time.
    pub generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    pub hostname: String,
    /// "kvm" or "tcg".
    pub accelerator: String,
    pub vcpus: u32,
    pub memory_mib: u64,
}

#[async_trait::async_trait]
pub trait Agent: Send + Sync + 'static {
    async fn host_info(&self) -> Result<HostInfo, AgentError>;

    /// Makes the VM run: creates its root volume if it has none, starts the process if none
    /// runs. Returns once the process is started (the guest may still be `Starting`).
    async fn vm_start(&self, spec: &VmSpec) -> Result<(), AgentError>;

    /// Asks the guest to power down (ACPI); forced after the agent's stop timeout, or at once
    /// with `force`. Returns at once; the report moves to `Stopped` when the process is gone.
    async fn vm_stop(&self, instance_id: &str, force: bool) -> Result<(), AgentError>;

    /// Resets a running VM.
    async fn vm_reboot(&self, instance_id: &str) -> Result<(), AgentError>;

    /// Ends the process if any and deletes everything the VM had on the host (root overlay,
    /// console log, sockets). Idempotent: destroying an unknown VM is not an error.
    async fn vm_destroy(&self, instance_id: &str) -> Result<(), AgentError>;

    /// Every VM this agent knows, including ones re-adopted after a restart.
    async fn vm_list(&self) -> Result<Vec<VmStatus>, AgentError>;

    /// The VMs that changed after `since` (a [`VmChanges::generation`] from an earlier call),
    /// so a caller that follows changes need not list every VM; every VM when `since` is
    /// `None` or too old to answer.
    async fn vm_changes_since(&self, since: Option<u64>) -> Result<VmChanges, AgentError> {
        let _ = since;
        Ok(VmChanges { vms: self.vm_list().await?, gone: vec![], complete: true, generation: 0 })
    }

    /// The serial console output so far (empty if none).
    async fn vm_console(&self, instance_id: &str) -> Result<Vec<u8>, AgentError>;

    /// Hot-plugs a volume into a running VM (blockdev-add + device_add over QMP); the disk
    /// appears in the guest without a reboot. Creates the disk's top layer if missing. On any
    /// error nothing of the attempt is left in QEMU. `WrongState` unless the VM runs.
    async fn vm_disk_attach(&self, instance_id: &str, disk: &DiskSpec) -> Result<(), AgentError>;

    /// Hot-unplugs a volume from a running VM (device_del, then blockdev-del of its nodes).
    /// Without `force` the agent waits (bounded) for the guest to release the device; with it,
    /// the device is pulled regardless. Detaching a volume the VM does not have is not an
    /// error (idempotent).
    async fn vm_disk_detach(&self, instance_id: &str, volume_id: &str, force: bool) -> Result<(), AgentError>;

    /// Live, crash-consistent snapshot of an attached volume of a running VM: QEMU starts
    /// writing to a new top layer `new_top` whose backing is the volume's current top, which
    /// from then on never changes (it becomes the snapshot's layer). On error the VM keeps
    /// writing to the old top and `new_top` does not exist.
    async fn vm_disk_snapshot(&self, instance_id: &str, volume_id: &str, new_top: &LayerId) -> Result<(), AgentError>;

    /// Like [`Storage::layer_rebase`], for a layer in the chain of an attached volume of a running
    /// VM: QEMU copies the skipped layers' data into `layer` and switches its backing
    /// (`block-stream` into that node with the new base), so the skipped layers can be
    /// deleted afterwards. Returns when the job has completed. `layer` may be the volume's top.
    async fn vm_disk_rebase(
        &self,
        instance_id: &str,
        volume_id: &str,
        layer: &LayerId,
        backing: Option<&LayerId>,
    ) -> Result<(), AgentError>;

    /// Grows an attached volume of a running VM to `size_bytes` (block_resize); the guest sees
    /// the new capacity at once.
    async fn vm_disk_resize(&self, instance_id: &str, volume_id: &str, size_bytes: u64) -> Result<(), AgentError>;

    /// Converges this host's networks (namespaces, taps, security group rules, DHCP, DNS,
    /// NAT) and metadata service to `desired`. Idempotent; called before VMs that need the
    /// networks start, and again whenever the desired state changes. Shared: the caller keeps
    /// it to compare with the next one.
    async fn host_apply(&self, desired: Arc<DesiredHost>) -> Result<(), AgentError>;

    /// Notified whenever a VM's state changes, so the control plane reacts at once instead of
    /// waiting for its next poll.
    fn changes(&self) -> Arc<tokio::sync::Notify>;
}
