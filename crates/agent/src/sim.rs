//! The simulated agent: VMs are entries in memory. It serves fast API tests, scale tests and
//! users who want a cheap EC2 double; it is never a substitute for the QEMU agent in tests of
//! what a VM does.
//!
//! With `auto_advance` (what `corral serve --hypervisor sim` uses) a started VM is running at
//! once and a stopped one stopped at once. Without it, VMs wait in `Starting`/`Stopping` until
//! the test calls [`SimAgent::advance`], so tests can observe every intermediate state.
//! [`SimAgent::fail_next`] injects a failure into the next call of an operation.

use corral_agent_api::{Agent, AgentError, DesiredHost, HostInfo, VmSpec, VmState, VmStatus};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimOp {
    Start,
    Stop,
    Reboot,
    Destroy,
}

#[derive(Debug, Clone)]
pub struct SimVm {
    pub spec: VmSpec,
    pub state: VmState,
    pub generation: u64,
    pub boots: u32,
    pub reboots: u32,
    pub console: Vec<u8>,
}

#[derive(Default)]
struct State {
    host: Option<DesiredHost>,
    host_applies: u64,
    vms: HashMap<String, SimVm>,
    failures: HashMap<SimOp, String>,
    generation: u64,
}

pub struct SimAgent {
    state: Mutex<State>,
    changes: Arc<Notify>,
    auto_advance: bool,
}

impl SimAgent {
    pub fn new(auto_advance: bool) -> SimAgent {
        let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        SimAgent { state: Mutex::new(State { generation: start, ..State::default() }), changes: Arc::new(Notify::new()), auto_advance }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, st: &mut State, id: &str, to: VmState) {
        st.generation += 1;
        let g = st.generation;
        if let Some(vm) = st.vms.get_mut(id) {
            if to == VmState::Running && vm.state != VmState::Running {
                vm.boots += 1;
                vm.console.extend_from_slice(format!("sim: {id} boot {}\n", vm.boots).as_bytes());
            }
            vm.state = to;
            vm.generation = g;
        }
        self.changes.notify_one();
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
        (st.host.clone(), st.host_applies)
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
                if let Some(vm) = st.vms.get_mut(&id) {
                    vm.spec = spec.clone();
                }
            }
            None => {
                st.vms.insert(
                    id.clone(),
                    SimVm { spec: spec.clone(), state: VmState::Stopped, generation: 0, boots: 0, reboots: 0, console: Vec::new() },
                );
            }
        }
        self.set(&mut st, &id, VmState::Starting);
        if self.auto_advance {
            self.set(&mut st, &id, VmState::Running);
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
        if st.vms.remove(id).is_some() {
            st.generation += 1;
            self.changes.notify_one();
        }
        Ok(())
    }

    async fn vm_list(&self) -> Result<Vec<VmStatus>, AgentError> {
        Ok(self.lock().vms.iter().map(|(id, v)| VmStatus { instance_id: id.clone(), state: v.state, generation: v.generation }).collect())
    }

    async fn vm_console(&self, id: &str) -> Result<Vec<u8>, AgentError> {
        self.lock().vms.get(id).map(|v| v.console.clone()).ok_or_else(|| AgentError::NoSuchVm(id.to_string()))
    }

    async fn host_apply(&self, desired: &DesiredHost) -> Result<(), AgentError> {
        let mut st = self.lock();
        st.host = Some(desired.clone());
        st.host_applies += 1;
        Ok(())
    }

    fn changes(&self) -> Arc<Notify> {
        Arc::clone(&self.changes)
    }
}
