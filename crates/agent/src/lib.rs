//! The host agent: everything that touches the host to run instances. It implements
//! [`corral_agent_api::Agent`] twice: [`qemu::QemuAgent`] runs real QEMU processes,
//! [`sim::SimAgent`] keeps VMs in memory for API and scale tests.

pub mod qemu;
pub mod sim;
