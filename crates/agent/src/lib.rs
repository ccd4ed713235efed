//! The host agent: everything that touches the host to run instances. It implements
//! [`corral_agent_api::Agent`] twice: [`qemu::QemuAgent`] runs real QEMU processes,
//! [`sim::SimAgent`] keeps VMs in memory for API and scale tests. [`pool::Pool`] is the host's
//! storage pool of qcow2 layers, the file side of block storage.

pub mod pool;
pub mod qemu;
pub mod sim;
