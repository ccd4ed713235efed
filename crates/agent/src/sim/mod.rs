//! The simulated agent: VMs are entries in memory. It serves fast API tests, scale tests and
//! users who want a cheap EC2 double; it is never a substitute for the QEMU agent in tests of
//! what a VM does.
//!
//! With `auto_advance` (what `corral serve --hypervisor sim` uses) a started VM is running at
//! once and a stopped one stopped at once; with [`SimAgent::with_delays`] (`--sim-delays aws`)
//! they get there after about as long as on EC2. Without either, VMs wait in
//! `Starting`/`Stopping` until the test calls [`SimAgent::advance`], so tests can observe every
//! intermediate state. A booted VM's console reads like a Linux boot.
//! [`SimAgent::fail_next`] injects a failure into the next call of an operation.

use corral_agent_api::{Agent, AgentError, DesiredHost, DiskSpec, HostInfo, LayerId, VmChanges, VmSpec, VmState, VmStatus};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

mod pool;
pub use pool::SimLayer;
use pool::{ensure_layers, layer_put, rebase};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimOp {
    Start,
    Stop,
    Reboot,
    Destroy,
    DiskAttach,
    DiskDetach,
    DiskSnapshot,
    DiskResize,
    DiskRebase,
    LayerCreate,
    LayerImport,
}

#[derive(Debug, Clone)]
pub struct SimVm {
    pub spec: VmSpec,
    pub state: VmState,
    pub generation: u64,
    pub boots: u32,
    pub reboots: u32,
    pub console: Vec<u8>,
    /// The disks the VM has now: those it started with, plus hot-plugged ones, minus
    /// hot-unplugged ones (with their current top layers).
    pub disks: Vec<DiskSpec>,
}

#[derive(Default)]
struct State {
    host: Option<Arc<DesiredHost>>,
    host_applies: u64,
    vms: HashMap<String, SimVm>,
    failures: HashMap<SimOp, String>,
    generation: u64,
    /// Each VM by the generation of its last change, so changes since a generation are found
    /// without looking at every VM.
    by_generation: BTreeMap<u64, String>,
    /// VMs destroyed, with the generation of their going (the last [`GONE_KEPT`]).
    gone: VecDeque<(u64, String)>,
    layers: HashMap<LayerId, SimLayer>,
    /// When each layer was made (its age, for the pool sweep).
    born: HashMap<LayerId, std::time::Instant>,
    /// How many layers each layer backs.
    children: HashMap<LayerId, usize>,
}

/// How long a simulated VM takes to boot and to shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimDelays {
    pub start: std::time::Duration,
    pub stop: std::time::Duration,
}

impl SimDelays {
    /// About what EC2 takes for a small Linux instance.
    pub const AWS: SimDelays = SimDelays { start: std::time::Duration::from_secs(8), stop: std::time::Duration::from_secs(6) };
}

pub struct SimAgent {
    state: Arc<Mutex<State>>,
    changes: Arc<Notify>,
    auto_advance: bool,
    delays: Option<SimDelays>,
}

impl SimAgent {
    pub fn new(auto_advance: bool) -> SimAgent {
        let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        SimAgent {
            state: Arc::new(Mutex::new(State { generation: start, ..State::default() })),
            changes: Arc::new(Notify::new()),
            auto_advance,
            delays: None,
        }
    }

    /// VMs boot and shut down after these delays (needs a Tokio runtime).
    pub fn with_delays(delays: SimDelays) -> SimAgent {
        SimAgent { delays: Some(delays), ..SimAgent::new(false) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn set(&self, st: &mut State, id: &str, to: VmState) {
        set(st, id, to, &self.changes)
    }

    /// After `after`, moves the VM from `from` on (if it is still there).
    fn advance_later(&self, id: &str, from: VmState, after: std::time::Duration) {
        let (state, changes, id) = (Arc::clone(&self.state), Arc::clone(&self.changes), id.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let mut st = lock(&state);
            if st.vms.get(&id).map(|v| v.state) == Some(from) {
                let to = if from == VmState::Starting { VmState::Running } else { VmState::Stopped };
                set(&mut st, &id, to, &changes);
            }
        });
    }

    /// Moves a VM one step on: `Starting` → `Running`, `Stopping` → `Stopped`.
    pub fn advance(&self, id: &str) -> bool {
        let mut st = self.lock();
        let next = match st.vms.get(id).map(|v| v.state) {
            Some(VmState::Starting) => VmState::Running,
            Some(VmState::Stopping) => VmState::Stopped,
            _ => return false,
        };
        self.set(&mut st, id, next);
        true
    }

    /// The guest powers itself off.
    pub fn guest_poweroff(&self, id: &str) -> bool {
        let mut st = self.lock();
        if st.vms.get(id).map(|v| v.state) != Some(VmState::Running) {
            return false;
        }
        self.set(&mut st, id, VmState::Stopped);
        true
    }

    /// The next call of `op` fails with `message`.
    pub fn fail_next(&self, op: SimOp, message: &str) {
        self.lock().failures.insert(op, message.to_string());
    }

    pub fn vm(&self, id: &str) -> Option<SimVm> {
        self.lock().vms.get(id).cloned()
    }

    /// The last desired host state applied, and how many applies there were.
    pub fn host(&self) -> (Option<DesiredHost>, u64) {
        let st = self.lock();
        (st.host.as_deref().cloned(), st.host_applies)
    }

    /// The simulated pool's layers.
    pub fn layers(&self) -> HashMap<LayerId, SimLayer> {
        self.lock().layers.clone()
    }

    pub fn vm_count(&self) -> usize {
        self.lock().vms.len()
    }

    fn injected(&self, st: &mut State, op: SimOp) -> Result<(), AgentError> {
        match st.failures.remove(&op) {
            Some(m) => Err(AgentError::Other(format!("injected failure: {m}"))),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Agent for SimAgent {
    async fn host_info(&self) -> Result<HostInfo, AgentError> {
        Ok(HostInfo { hostname: "sim".into(), accelerator: "sim".into(), vcpus: 1024, memory_mib: 1 << 30 })
    }

    async fn vm_start(&self, spec: &VmSpec) -> Result<(), AgentError> {
        let mut st = self.lock();
        self.injected(&mut st, SimOp::Start)?;
        let id = spec.instance_id.clone();
        match st.vms.get(&id).map(|v| v.state) {
            Some(VmState::Running | VmState::Starting) => return Ok(()),
            Some(VmState::Stopping) => {
                return Err(AgentError::WrongState { id, state: VmState::Stopping });
            }
            Some(VmState::Stopped) => {
                ensure_layers(&mut st, &spec.disks)?;
                if let Some(vm) = st.vms.get_mut(&id) {
                    vm.spec = spec.clone();
                    vm.disks = spec.disks.clone();
                }
            }
            None => {
                ensure_layers(&mut st, &spec.disks)?;
                st.vms.insert(
                    id.clone(),
                    SimVm {
                        spec: spec.clone(),
                        state: VmState::Stopped,
                        generation: 0,
                        boots: 0,
                        reboots: 0,
                        console: Vec::new(),
                        disks: spec.disks.clone(),
                    },
                );
            }
        }
        self.set(&mut st, &id, VmState::Starting);
        if self.auto_advance {
            self.set(&mut st, &id, VmState::Running);
        } else if let Some(d) = self.delays {
            self.advance_later(&id, VmState::Starting, d.start);
        }
        Ok(())
    }

    async fn vm_stop(&self, id: &str, force: bool) -> Result<(), AgentError> {
        let mut st = self.lock();
        self.injected(&mut st, SimOp::Stop)?;
        match st.vms.get(id).map(|v| v.state) {
            None => Err(AgentError::NoSuchVm(id.to_string())),
            Some(VmState::Stopped) => Ok(()),
            Some(VmState::Stopping) if !force => Ok(()),
            Some(_) => {
                if force || self.auto_advance {
                    self.set(&mut st, id, VmState::Stopped);
                } else {
                    self.set(&mut st, id, VmState::Stopping);
                    if let Some(d) = self.delays {
                        self.advance_later(id, VmState::Stopping, d.stop);
                    }
                }
                Ok(())
            }
        }
    }

    async fn vm_reboot(&self, id: &str) -> Result<(), AgentError> {
        let mut st = self.lock();
        self.injected(&mut st, SimOp::Reboot)?;
        let vm = st.vms.get_mut(id).ok_or_else(|| AgentError::NoSuchVm(id.to_string()))?;
        if vm.state != VmState::Running {
            return Err(AgentError::WrongState { id: id.to_string(), state: vm.state });
        }
        vm.reboots += 1;
        vm.console.extend_from_slice(format!("sim: {id} reboot {}\n", vm.reboots).as_bytes());
        Ok(())
    }

    async fn vm_destroy(&self, id: &str) -> Result<(), AgentError> {
        let mut st = self.lock();
        self.injected(&mut st, SimOp::Destroy)?;
        if let Some(vm) = st.vms.remove(id) {
            st.generation += 1;
            let g = st.generation;
            st.by_generation.remove(&vm.generation);
            st.gone.push_back((g, id.to_string()));
            if st.gone.len() > GONE_KEPT {
                st.gone.pop_front();
            }
            self.changes.notify_one();
        }
        Ok(())
    }

    async fn vm_list(&self) -> Result<Vec<VmStatus>, AgentError> {
        Ok(self.lock().vms.iter().map(|(id, v)| VmStatus { instance_id: id.clone(), state: v.state, generation: v.generation }).collect())
    }

    async fn vm_changes_since(&self, since: Option<u64>) -> Result<VmChanges, AgentError> {
        let st = self.lock();
        let oldest_gone = st.gone.front().map(|(g, _)| *g);
        let answerable = since.filter(|s| st.gone.len() < GONE_KEPT || oldest_gone.is_some_and(|g| g <= *s));
        let Some(since) = answerable else {
            let vms = st.vms.iter().map(|(id, v)| VmStatus { instance_id: id.clone(), state: v.state, generation: v.generation }).collect();
            return Ok(VmChanges { vms, gone: vec![], complete: true, generation: st.generation });
        };
        let vms = st
            .by_generation
            .range(since + 1..)
            .filter_map(|(_, id)| st.vms.get(id).map(|v| VmStatus { instance_id: id.clone(), state: v.state, generation: v.generation }))
            .collect();
        let gone = st.gone.iter().rev().take_while(|(g, _)| *g > since).map(|(_, id)| id.clone()).collect();
        Ok(VmChanges { vms, gone, complete: false, generation: st.generation })
    }

    async fn vm_console(&self, id: &str) -> Result<Vec<u8>, AgentError> {
        self.lock().vms.get(id).map(|v| v.console.clone()).ok_or_else(|| AgentError::NoSuchVm(id.to_string()))
    }

    async fn vm_disk_attach(&self, id: &str, disk: &DiskSpec) -> Result<(), AgentError> {
        let mut st = self.lock();
        self.injected(&mut st, SimOp::DiskAttach)?;
        running(&st, id)?;
        ensure_layers(&mut st, std::slice::from_ref(disk))?;
        let vm = st.vms.get_mut(id).ok_or_else(|| AgentError::NoSuchVm(id.to_string()))?;
        if vm.disks.iter().any(|d| d.volume_id == disk.volume_id) {
            return Ok(());
        }
        if vm.disks.iter().any(|d| d.bus == disk.bus) {
            return Err(AgentError::Other(format!("{id} already has a disk at {:?}", disk.bus)));
        }
        vm.disks.push(disk.clone());
        Ok(())
    }

    async fn vm_disk_detach(&self, id: &str, volume_id: &str, _force: bool) -> Result<(), AgentError> {
        let mut st = self.lock();
        self.injected(&mut st, SimOp::DiskDetach)?;
        running(&st, id)?;
        if let Some(vm) = st.vms.get_mut(id) {
            vm.disks.retain(|d| d.volume_id != volume_id);
        }
        Ok(())
    }

    async fn vm_disk_snapshot(&self, id: &str, volume_id: &str, new_top: &LayerId) -> Result<(), AgentError> {
        let mut st = self.lock();
        self.injected(&mut st, SimOp::DiskSnapshot)?;
        running(&st, id)?;
        let disk = st.vms.get(id).and_then(|vm| vm.disks.iter().find(|d| d.volume_id == volume_id).cloned());
        let disk = disk.ok_or_else(|| AgentError::Other(format!("{id} has no disk {volume_id}")))?;
        if disk.layer == *new_top {
            return Ok(()); // this very snapshot was taken already
        }
        if st.layers.contains_key(new_top) {
            return Err(AgentError::Other(format!("layer {new_top} exists already; a snapshot needs a new one")));
        }
        layer_put(&mut st, new_top.clone(), SimLayer { backing: Some(disk.layer.clone()), size_bytes: disk.size_bytes });
        if let Some(d) = st.vms.get_mut(id).and_then(|vm| vm.disks.iter_mut().find(|d| d.volume_id == volume_id)) {
            d.backing = Some(d.layer.clone());
            d.layer = new_top.clone();
        }
        Ok(())
    }

    async fn vm_disk_rebase(&self, id: &str, volume_id: &str, layer: &LayerId, backing: Option<&LayerId>) -> Result<(), AgentError> {
        let mut st = self.lock();
        self.injected(&mut st, SimOp::DiskRebase)?;
        running(&st, id)?;
        if !st.vms.get(id).is_some_and(|vm| vm.disks.iter().any(|d| d.volume_id == volume_id)) {
            return Err(AgentError::Other(format!("{id} has no disk {volume_id}")));
        }
        rebase(&mut st, layer, backing)?;
        if let Some(d) = st.vms.get_mut(id).and_then(|vm| vm.disks.iter_mut().find(|d| d.layer == *layer)) {
            d.backing = backing.cloned();
        }
        Ok(())
    }

    async fn vm_disk_resize(&self, id: &str, volume_id: &str, size_bytes: u64) -> Result<(), AgentError> {
        let mut st = self.lock();
        self.injected(&mut st, SimOp::DiskResize)?;
        running(&st, id)?;
        let top = st.vms.get_mut(id).and_then(|vm| vm.disks.iter_mut().find(|d| d.volume_id == volume_id)).map(|d| {
            d.size_bytes = d.size_bytes.max(size_bytes);
            d.layer.clone()
        });
        let top = top.ok_or_else(|| AgentError::Other(format!("{id} has no disk {volume_id}")))?;
        if let Some(l) = st.layers.get_mut(&top) {
            l.size_bytes = l.size_bytes.max(size_bytes);
        }
        Ok(())
    }

    async fn host_apply(&self, desired: Arc<DesiredHost>) -> Result<(), AgentError> {
        let mut st = self.lock();
        st.host = Some(desired);
        st.host_applies += 1;
        Ok(())
    }

    fn changes(&self) -> Arc<Notify> {
        Arc::clone(&self.changes)
    }
}

/// How many destroyed VMs the change feed remembers; a caller further behind gets every VM.
const GONE_KEPT: usize = 65_536;

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn set(st: &mut State, id: &str, to: VmState, changes: &Notify) {
    st.generation += 1;
    let g = st.generation;
    if let Some(vm) = st.vms.get_mut(id) {
        if to == VmState::Running && vm.state != VmState::Running {
            vm.boots += 1;
            vm.console.extend_from_slice(boot_log(id, &vm.spec, vm.boots).as_bytes());
        }
        vm.state = to;
        let old = std::mem::replace(&mut vm.generation, g);
        st.by_generation.remove(&old);
        st.by_generation.insert(g, id.to_string());
    }
    changes.notify_one();
}

/// What a simulated VM's serial console shows when it boots: the lines of a Debian guest's
/// boot that tools look for (the kernel banner, memory and CPUs, cloud-init, the login prompt).
fn boot_log(id: &str, spec: &VmSpec, boot: u32) -> String {
    let host = format!("ip-{}", id.trim_start_matches("i-"));
    let mut log = String::new();
    let mut line = |t: f64, text: &str| log.push_str(&format!("[{t:>12.6}] {text}\n"));
    line(0.0, "Linux version 6.1.0-28-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1");
    line(0.0, "Command line: BOOT_IMAGE=/boot/vmlinuz-6.1.0-28-amd64 root=/dev/nvme0n1p1 ro console=tty0 console=ttyS0,115200");
    line(0.0, &format!("Memory: {}K/{}K available", spec.memory_mib * 1024 * 95 / 100, spec.memory_mib * 1024));
    line(0.001, &format!("smp: Brought up 1 node, {} CPUs", spec.vcpus));
    line(0.412, "EXT4-fs (nvme0n1p1): mounted filesystem with ordered data mode. Quota mode: none.");
    line(1.107, "systemd[1]: systemd 252.31-1~deb12u1 running in system mode");
    line(1.388, &format!("systemd[1]: Hostname set to <{host}>."));
    log.push_str(&format!("Cloud-init v. 22.4.2 running 'init' at boot {boot}. Up 2.91 seconds.\n"));
    log.push_str("Cloud-init v. 22.4.2 finished. Datasource DataSourceEc2Local.  Up 4.20 seconds\n\n");
    log.push_str(&format!("Debian GNU/Linux 12 {host} ttyS0\n\n{host} login: \n"));
    log
}

fn running(st: &State, id: &str) -> Result<(), AgentError> {
    match st.vms.get(id).map(|v| v.state) {
        None => Err(AgentError::NoSuchVm(id.to_string())),
        Some(VmState::Running) => Ok(()),
        Some(state) => Err(AgentError::WrongState { id: id.to_string(), state }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_agent_api::BootMode;

    fn spec(id: &str) -> VmSpec {
        VmSpec {
            instance_id: id.into(),
            instance_type: "t3.micro".into(),
            vcpus: 1,
            memory_mib: 512,
            boot: BootMode::Firmware,
            disks: vec![],
            nics: vec![],
        }
    }

    #[tokio::test]
    async fn the_change_feed_lists_what_changed_and_what_went() {
        let agent = SimAgent::new(true);
        for id in ["i-1", "i-2", "i-3"] {
            agent.vm_start(&spec(id)).await.unwrap();
        }
        let first = agent.vm_changes_since(None).await.unwrap();
        assert!(first.complete);
        assert_eq!(first.vms.len(), 3);
        let quiet = agent.vm_changes_since(Some(first.generation)).await.unwrap();
        assert_eq!((quiet.vms.len(), quiet.gone.len(), quiet.complete), (0, 0, false));

        agent.vm_stop("i-2", false).await.unwrap();
        agent.vm_destroy("i-3").await.unwrap();
        let feed = agent.vm_changes_since(Some(quiet.generation)).await.unwrap();
        assert!(!feed.complete);
        assert_eq!(feed.vms.iter().map(|v| (v.instance_id.as_str(), v.state)).collect::<Vec<_>>(), [("i-2", VmState::Stopped)]);
        assert_eq!(feed.gone, ["i-3"]);
        assert!(feed.generation > quiet.generation);
    }
}
