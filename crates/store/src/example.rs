//! A filled-in [`InstanceRecord`] for tests here and in the control plane: running, wanted
//! running, on host `h`, with nothing optional set. Tests change the fields they look at.

use crate::{Desired, InstanceRecord};
use corral_types::InstanceState;

/// An instance named `instance_id`, running and wanted running.
pub fn instance_record(instance_id: &str) -> InstanceRecord {
    InstanceRecord {
        instance_id: instance_id.into(),
        reservation_id: "r-1".into(),
        image_id: "ami-1".into(),
        instance_type: "t3.micro".into(),
        vcpus: 2,
        memory_mib: 1024,
        key_name: None,
        state: InstanceState::Running,
        desired: Desired::Running,
        force_stop: false,
        state_reason_code: None,
        state_reason_message: None,
        state_transition_reason: String::new(),
        availability_zone: "local-1a".into(),
        launch_time: "2026-01-01T00:00:00.000Z".into(),
        ami_launch_index: 0,
        user_data: None,
        client_token: None,
        disable_api_termination: false,
        shutdown_behavior: "stop".into(),
        host: "h".into(),
        observed_generation: 0,
        terminated_at: None,
        seq: 0,
        metadata: Default::default(),
        options: Default::default(),
        rev: 0,
    }
}
