//! The instance reconciler: it takes no input, reads desired state (the store) and actual
//! state (the agent's reports), applies the difference, and is safe to run any number of
//! times. It runs on a timer, whenever an API action kicks it, and whenever the agent reports
//! a change.
//!
//! The EC2 state follows what the VM does, decided in one exhaustive match
//! (`reconcile_decide.rs`).

use crate::fleet_work::{fleet_sized, give_back_memory, PAGE};
use crate::layer::Collected;
use crate::reconcile_decide::{decide, idle, Action};
use crate::reconcile_queue::Work;
use crate::{limits, Control};
use corral_agent_api::{BootMode, NicSpec, VmSpec};
use corral_store::{Desired, InstanceRecord, Listed};
use corral_types::{Error, InstanceState, Result};
use rustc_hash::FxHashSet;
use std::sync::Arc;
use std::time::Duration;

/// How often the reconciler runs without being kicked: the backstop for missed notifications.
const RECONCILE_INTERVAL: Duration = Duration::from_millis(500);
/// How often the host state is sent again although it did not change, to repair drift (a
/// full network apply costs tens of milliseconds per VPC: see crates/net).
const HOST_RESYNC: Duration = Duration::from_secs(30);

/// What one reconciler pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Whether it was a backstop pass, which looks for changes no event reported among
    /// every instance (see `reconcile_queue.rs`).
    pub backstop: bool,
    /// Instances it looked at (read and decided on).
    pub examined: usize,
    /// Host actions it took (starts, stops, destroys).
    pub actions: usize,
    /// Instances whose part of the desired host state it recomputed (see `host_cache.rs`).
    pub host_parts: usize,
}

impl Control {
    /// Runs the reconciler until the process ends.
    pub fn spawn_reconciler(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = this.storage_recover().await {
                tracing::error!(error = %e, internal = ?e.internal, "recovering storage steps left halfway failed");
            }
            let changes = this.agent.changes();
            let mut swept_at: Option<std::time::Instant> = None;
            loop {
                match this.reconcile_once().await {
                    // Settled: the pass acted on nothing and nothing waits for the next one.
                    Ok(pass) => {
                        this.settled.send_replace(pass.actions == 0 && this.work.is_idle());
                    }
                    Err(e) => tracing::warn!(error = %e, internal = ?e.internal, "reconcile pass failed"),
                }
                // The sweep after the first pass (which destroys the VMs no instance names, so
                // no VM has a swept file open), then every grace period (at most 10 minutes).
                if swept_at.is_none_or(|at| at.elapsed() >= crate::sweep::sweep_interval(this.config.sweep_grace)) {
                    if let Err(e) = this.sweep().await {
                        tracing::warn!(error = %e, internal = ?e.internal, "sweeping the storage pool failed");
                    }
                    swept_at = Some(std::time::Instant::now());
                }
                tokio::select! {
                    _ = this.kick.notified() => {}
                    _ = changes.notified() => {}
                    _ = tokio::time::sleep(RECONCILE_INTERVAL) => {}
                }
            }
        })
    }

    /// Sends the desired host state to the agent when a part of it was recomputed (see
    /// `host_cache.rs`), when the last try failed, and every [`HOST_RESYNC`] regardless, to
    /// repair drift. Returns whether the host is in sync, and how many instances' parts of
    /// the state it recomputed.
    async fn host_sync(&self, known: &[InstanceRecord]) -> (bool, usize) {
        let recomputed = match self.host_refresh(known) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, internal = ?e.internal, "computing the desired host state");
                return (false, 0);
            }
        };
        (self.host_send(recomputed.changed).await, recomputed.computed)
    }

    async fn host_send(&self, changed: bool) -> bool {
        if !changed {
            let last = self.host_applied.lock().await;
            if last.is_some_and(|at| at.elapsed() < HOST_RESYNC) {
                return true;
            }
        }
        // A part changed, the last try failed, or the resync is due: send it.
        let desired = Arc::new(self.host_desired());
        let mut last = self.host_applied.lock().await;
        match self.agent.host_apply(desired).await {
            Ok(()) => {
                *last = Some(std::time::Instant::now());
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "applying the desired host state");
                *last = None;
                false
            }
        }
    }

    /// The next pass is a backstop pass, as the first after start is.
    pub fn reconcile_everything_next(&self) {
        self.work.mark_all();
    }

    /// For a backstop pass: the instances it looks at (those not settled as they are now,
    /// see `reconcile_queue.rs`), and the id of every instance. The revisions are read a
    /// page per transaction so the API is not held up behind one long read of the fleet.
    fn instances_unsettled(&self) -> Result<(Vec<InstanceRecord>, Vec<String>)> {
        let mut revisions = Vec::new();
        self.store.read_pages(
            PAGE,
            |tx, after, n| tx.instance_revisions(after, n),
            |_, page| {
                revisions.extend(page.into_iter().map(|(_, r)| r));
                Ok::<_, Error>(())
            },
        )?;
        let instances = self.instances_with_ids(&self.work.unsettled(&revisions))?;
        Ok((instances, revisions.into_iter().map(|(id, _)| id).collect()))
    }

    /// These instances (those that exist), a page of ids per transaction: after a big launch
    /// a pass may look at thousands.
    fn instances_with_ids(&self, ids: &[String]) -> Result<Vec<InstanceRecord>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(PAGE) {
            out.extend(self.store.read(|tx| InstanceRecord::with_ids(tx, chunk))?.into_iter().map(|(_, r)| r));
        }
        Ok(out)
    }

    /// One pass over what changed (see `reconcile_queue.rs`); says how many instances it
    /// looked at and how many host actions it took.
    pub async fn reconcile_once(&self) -> Result<Pass> {
        let report = self.agent.vm_changes_since(self.work.since()).await.map_err(|e| Error::internal(format!("listing VMs: {e}")))?;
        // The instances first, then the host state: every instance this pass may start has its
        // interfaces in the state applied just before.
        let work = fleet_sized(report.complete, || self.work.take(self.work.vm_report(report)));
        let full = work == Work::All;
        // Fleet-sized: every instance, or more marked than a page (after a big launch).
        let heavy = match &work {
            Work::All => true,
            Work::Only(ids) => ids.len() > PAGE,
        };
        // On a backstop pass, `every` is the id of every instance.
        let (instances, every) = fleet_sized(heavy, || match &work {
            Work::All => self.instances_unsettled(),
            Work::Only(ids) => Ok((self.instances_with_ids(ids)?, Vec::new())),
        })?;
        let (host_in_sync, host_parts) = self.host_sync(&instances).await;
        let now = crate::now_iso();
        let mut pass = Pass { backstop: full, examined: instances.len(), actions: 0, host_parts };
        // Cheap checks outside a transaction: most instances need nothing, and are settled
        // as they are, so the backstop passes skip them until they change.
        let due: Vec<&InstanceRecord> = fleet_sized(heavy, || {
            instances
                .iter()
                .filter(|inst| {
                    let vm = self.work.vm(&inst.instance_id);
                    let idle = idle(inst, vm.as_ref(), &now);
                    match idle {
                        true => self.work.settle(&inst.instance_id, inst.rev, vm.as_ref()),
                        false => self.work.unsettle(&inst.instance_id),
                    }
                    !idle
                })
                .collect()
        });
        for inst in due {
            let vm = self.work.vm(&inst.instance_id);
            let vm = vm.as_ref();
            // Decide inside a transaction, on the instance as it is now, so an API change in
            // between is not lost.
            let decided = self.store.transaction(|tx| {
                let Some(mut r) = tx.instance_current(inst)? else { return Ok::<_, Error>(None) };
                let before = r.clone();
                let action = decide(&mut r, vm, &now);
                if r != before {
                    tx.instance_update(&r)?;
                }
                if r.state != before.state {
                    // Its ports change with it.
                    self.host_mark([r.instance_id.clone()]);
                }
                let mut doomed = Collected::default();
                let stopped = r.state == InstanceState::Stopped && before.state != InstanceState::Stopped;
                let terminated = r.state == InstanceState::Terminated && before.state != InstanceState::Terminated;
                if stopped || terminated {
                    // Layers this VM had open with another may be droppable now.
                    self.chains_dirty_at(crate::chain::chains_under(tx, &r.instance_id)?);
                }
                if terminated {
                    crate::eni::release_for_instance(self, tx, &r.instance_id)?;
                    doomed = Control::volumes_release(tx, &r.instance_id)?;
                }
                if stopped {
                    crate::eni::release_public_ips(self, tx, &r.instance_id)?;
                }
                // What a start needs, read only for one.
                let (image, nics) = match action {
                    Action::Start => (tx.image_get(&r.image_id)?, nics_of(tx, &r.instance_id)?),
                    _ => (None, Vec::new()),
                };
                // Written and needing nothing more (as a launch that is now running): settled
                // at the revision the store gave it, so the backstop does not read it again.
                if action == Action::None {
                    r.rev = tx.instance_rev(&r.instance_id)?.unwrap_or(r.rev);
                }
                Ok(Some((r, action, image, nics, doomed)))
            })?;
            let Some((rec, action, image, nics, doomed)) = decided else { continue };
            if action == Action::None && idle(&rec, vm, &now) {
                self.work.settle(&rec.instance_id, rec.rev, vm);
            }
            self.layers_delete(doomed).await;
            if action == Action::Start && !nics.is_empty() && !host_in_sync {
                // Its taps may not exist yet; the next pass tries again.
                self.work.mark([rec.instance_id.clone()]);
                continue;
            }
            if action != Action::None {
                pass.actions += 1;
            }
            if let Err(e) = self.act(&rec, action, image.as_ref(), nics).await {
                tracing::warn!(instance = %rec.instance_id, ?action, error = %e, "host action failed");
                self.action_failed(&rec, action, &e.to_string())?;
            }
        }
        // VMs with no instance at all (left by a crash between steps, or a deleted record):
        // among every VM on a full pass, among those looked at otherwise.
        let orphans: Vec<String> = fleet_sized(heavy, || match work {
            Work::All => {
                let known: FxHashSet<&str> = every.iter().map(String::as_str).collect();
                self.work.vm_ids().into_iter().filter(|id| !known.contains(id.as_str())).collect()
            }
            Work::Only(ids) => {
                let known: FxHashSet<&str> = instances.iter().map(|i| i.instance_id.as_str()).collect();
                ids.into_iter().filter(|id| self.work.vm(id).is_some() && !known.contains(id.as_str())).collect()
            }
        });
        for id in orphans {
            tracing::info!(instance = %id, "destroying orphan VM");
            pass.actions += 1;
            if let Err(e) = self.agent.vm_destroy(&id).await {
                tracing::warn!(instance = %id, error = %e, "destroying orphan VM failed");
            }
        }
        if full {
            self.expire_terminated()?;
        }
        self.chains_collapse_if_dirty();
        if heavy {
            drop((instances, every));
            fleet_sized(true, give_back_memory);
        }
        Ok(pass)
    }

    async fn act(
        &self,
        rec: &InstanceRecord,
        action: Action,
        image: Option<&corral_store::ImageRecord>,
        nics: Vec<NicSpec>,
    ) -> Result<(), String> {
        match action {
            Action::None => Ok(()),
            Action::Start => {
                // The disks are read under the disk lock so a snapshot never freezes a layer
                // this VM is about to open. How it boots comes with its root volume, so an
                // instance outlives the deregistration of its image, as on EC2.
                let _disks = self.disk_lock.lock().await;
                let (disks, boot) = self
                    .store
                    .read(|tx| {
                        let root = self.root_device_of(tx, rec)?;
                        let boot = tx
                            .doc_list_by_parent::<corral_store::VolumeRecord>(&rec.instance_id)?
                            .into_iter()
                            .find(|v| v.attachment.as_ref().is_some_and(|a| a.device == root))
                            .and_then(|v| v.boot);
                        Ok::<_, Error>((crate::volume::disks_of(tx, rec, &root)?, boot))
                    })
                    .map_err(|e| format!("reading the instance's volumes: {e}"))?;
                if !disks.iter().any(|d| d.bus == corral_agent_api::DiskBus::Root) {
                    return Err(format!("instance {} has no root volume", rec.instance_id));
                }
                for d in &disks {
                    self.layer_ensure_backing(d.backing.as_ref()).await.map_err(|e| format!("preparing {}: {e:?}", d.volume_id))?;
                }
                let boot = match (boot, image) {
                    (Some(b), _) => Some(b),
                    (None, Some(i)) => i.kernel.as_ref().map(|k| corral_store::KernelBoot {
                        kernel: k.clone(),
                        initrd: i.initrd.clone(),
                        cmdline: i.cmdline.clone(),
                    }),
                    (None, None) => None,
                };
                let mut spec = vm_spec(rec, boot.as_ref());
                spec.nics = nics;
                spec.disks = disks;
                self.agent.vm_start(&spec).await.map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))
            }
            Action::Stop { force } => self.agent.vm_stop(&rec.instance_id, force).await.map_err(|e| e.to_string()),
            Action::Destroy => self.agent.vm_destroy(&rec.instance_id).await.map_err(|e| e.to_string()),
        }
    }

    /// A start that failed: a first launch ends terminated (as a failed launch does on EC2),
    /// a restart ends stopped; either way the reason says why.
    fn action_failed(&self, rec: &InstanceRecord, action: Action, detail: &str) -> Result<()> {
        if action != Action::Start {
            return Ok(());
        }
        let now = crate::now_iso();
        self.store.transaction(|tx| {
            let Some(mut r) = tx.instance_get(&rec.instance_id)? else { return Ok::<_, Error>(()) };
            r.state_reason_code = Some("Server.InternalError".into());
            r.state_reason_message = Some("Server.InternalError: Internal error on launch".into());
            r.state_transition_reason = format!("Server error ({now})");
            if r.observed_generation == 0 {
                r.desired = Desired::Terminated;
                r.state = InstanceState::ShuttingDown;
            } else {
                r.desired = Desired::Stopped;
                r.state = InstanceState::Stopping;
            }
            tx.instance_update(&r)?;
            Ok(())
        })?;
        tracing::error!(instance = %rec.instance_id, %detail, "start failed");
        self.kick_instances([rec.instance_id.clone()]);
        Ok(())
    }

    fn expire_terminated(&self) -> Result<()> {
        let cutoff = chrono::Utc::now() - chrono::Duration::seconds(limits::TERMINATED_VISIBLE_SECS);
        self.store.transaction(|tx| {
            for r in tx.instance_list_terminated()? {
                let old = r.terminated_at.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).is_some_and(|t| t < cutoff);
                if r.state == InstanceState::Terminated && old {
                    tx.instance_delete(&r.instance_id)?;
                    tx.tag_delete_all(&r.instance_id)?;
                }
            }
            Ok::<_, Error>(())
        })
    }
}

/// The VM of an instance, its disks and interfaces aside. A kernel boots directly (microvm);
/// without one the disk's own bootloader runs (q35 firmware boot).
pub fn vm_spec(rec: &InstanceRecord, boot: Option<&corral_store::KernelBoot>) -> VmSpec {
    let boot = match boot {
        Some(k) => {
            BootMode::DirectKernel { kernel: (&k.kernel).into(), initrd: k.initrd.as_ref().map(Into::into), cmdline: k.cmdline.clone() }
        }
        None => BootMode::Firmware,
    };
    VmSpec {
        instance_id: rec.instance_id.clone(),
        instance_type: rec.instance_type.clone(),
        vcpus: rec.vcpus,
        memory_mib: rec.memory_mib,
        boot,
        disks: vec![],
        nics: vec![],
    }
}

/// The interfaces of an instance, primary first.
fn nics_of(tx: &corral_store::Tx<'_>, instance_id: &str) -> Result<Vec<NicSpec>> {
    let mut enis = tx.eni_list_for_instance(instance_id)?;
    enis.sort_by_key(|e| e.device_index);
    Ok(enis.into_iter().map(|e| NicSpec { eni_id: e.eni_id, vpc_id: e.vpc_id, mac: e.mac }).collect())
}
