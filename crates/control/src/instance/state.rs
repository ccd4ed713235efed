//! Instance state changes the user asks for: StartInstances, StopInstances (stop protection
//! and forced stops), TerminateInstances (termination protection), RebootInstances. Each
//! changes the desired state in one transaction, after checking every named instance; the
//! reconciler then drives the VM.

use super::{check_ids, StateChange};
use crate::Control;
use corral_ec2_query::requests as rq;
use corral_store::{Desired, InstanceRecord};
use corral_types::{Error, ErrorCode, IdKind, InstanceState, Result};

impl Control {
    /// Applies `f` to each named instance in one transaction, after checking all of them.
    fn instance_transition(
        &self,
        ids: &[String],
        dry_run: bool,
        f: impl Fn(&corral_store::Tx<'_>, &mut InstanceRecord) -> Result<()>,
    ) -> Result<Vec<StateChange>> {
        if ids.is_empty() {
            return Err(Error::missing("InstanceId"));
        }
        check_ids(ids)?;
        let out = self.store.transaction(|tx| {
            let mut recs = Vec::new();
            let mut missing = Vec::new();
            for id in ids {
                match tx.instance_get(id)? {
                    Some(r) => recs.push(r),
                    None => missing.push(id.as_str()),
                }
            }
            if !missing.is_empty() {
                return Err(Error::not_found(IdKind::Instance, &missing.join(", ")));
            }
            let mut changes = Vec::new();
            for r in &mut recs {
                let previous = r.state;
                f(tx, r)?;
                changes.push(StateChange { instance_id: r.instance_id.clone(), previous, current: r.state });
            }
            if dry_run {
                return Err(Error::dry_run());
            }
            for r in &recs {
                tx.instance_update(r)?;
            }
            Ok(changes)
        })?;
        self.kick_instances(out.iter().map(|c| c.instance_id.clone()));
        Ok(out)
    }

    pub fn instance_start(&self, req: &rq::StartInstances) -> Result<Vec<StateChange>> {
        self.instance_transition(&req.instance_ids, req.dry_run, |tx, r| match r.state {
            InstanceState::Stopped => {
                crate::eni::assign_public_ips(self, tx, &r.instance_id)?;
                r.state = InstanceState::Pending;
                r.desired = Desired::Running;
                r.state_transition_reason = String::new();
                r.state_reason_code = None;
                r.state_reason_message = None;
                Ok(())
            }
            InstanceState::Pending | InstanceState::Running => Ok(()),
            InstanceState::Stopping | InstanceState::ShuttingDown | InstanceState::Terminated => {
                Err(Error::incorrect_state(&r.instance_id, r.state.name(), "started"))
            }
        })
    }

    pub fn instance_stop(&self, req: &rq::StopInstances) -> Result<Vec<StateChange>> {
        if req.hibernate {
            return Err(Error::new(ErrorCode::Unsupported, "Hibernation is not supported."));
        }
        let force = req.force;
        self.instance_transition(&req.instance_ids, req.dry_run, |_, r| match r.state {
            InstanceState::Pending | InstanceState::Running if r.options.disable_api_stop => Err(Error::new(
                ErrorCode::OperationNotPermitted,
                format!(
                    "The instance '{}' may not be stopped. Modify its 'disableApiStop' instance attribute and try again.",
                    r.instance_id
                ),
            )),
            InstanceState::Pending | InstanceState::Running => {
                r.state = InstanceState::Stopping;
                r.desired = Desired::Stopped;
                r.force_stop = force;
                r.state_transition_reason = format!("User initiated ({})", now_reason());
                r.state_reason_code = Some("Client.UserInitiatedShutdown".into());
                r.state_reason_message = Some("Client.UserInitiatedShutdown: User initiated shutdown".into());
                Ok(())
            }
            InstanceState::Stopping => {
                r.force_stop |= force;
                Ok(())
            }
            InstanceState::Stopped => Ok(()),
            InstanceState::ShuttingDown | InstanceState::Terminated => {
                Err(Error::incorrect_state(&r.instance_id, r.state.name(), "stopped"))
            }
        })
    }

    pub fn instance_terminate(&self, req: &rq::TerminateInstances) -> Result<Vec<StateChange>> {
        self.instance_transition(&req.instance_ids, req.dry_run, |_, r| {
            if r.disable_api_termination {
                return Err(Error::new(
                    ErrorCode::OperationNotPermitted,
                    format!(
                        "The instance '{}' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.",
                        r.instance_id
                    ),
                ));
            }
            match r.state {
                InstanceState::Terminated | InstanceState::ShuttingDown => Ok(()),
                _ => {
                    r.state = InstanceState::ShuttingDown;
                    r.desired = Desired::Terminated;
                    r.state_transition_reason = format!("User initiated ({})", now_reason());
                    r.state_reason_code = Some("Client.UserInitiatedShutdown".into());
                    r.state_reason_message = Some("Client.UserInitiatedShutdown: User initiated shutdown".into());
                    Ok(())
                }
            }
        })
    }

    /// Reboots running instances now, through the agent. EC2 answers success with no body.
    pub async fn instance_reboot(&self, req: &rq::RebootInstances) -> Result<()> {
        let changes = self.instance_transition(&req.instance_ids, req.dry_run, |_, r| match r.state {
            InstanceState::Running | InstanceState::Pending => Ok(()),
            _ => Err(Error::incorrect_state(&r.instance_id, r.state.name(), "rebooted")),
        })?;
        for c in changes {
            if c.current == InstanceState::Running {
                self.agent.vm_reboot(&c.instance_id).await.map_err(|e| Error::internal(format!("rebooting {}: {e}", c.instance_id)))?;
            }
        }
        Ok(())
    }
}

fn now_reason() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S GMT").to_string()
}
