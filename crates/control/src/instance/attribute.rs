//! Instance attributes and settings: ModifyInstanceAttribute (every member the model has),
//! credit specifications of burstable types, and detailed monitoring.

use super::Instance;
use super::{check_ids, check_user_data};
use crate::attribute::Target;
use crate::describe::{Describe, Described, FilterLine};
use crate::Control;
use corral_ec2_query::requests as rq;
use corral_store::{InstanceOptions, InstanceRecord, VolumeRecord};
use corral_types::instance_type::{instance_type, InstanceTypeInfo};
use corral_types::{Error, ErrorCode, IdKind, InstanceState, Result};

/// The attributes DescribeInstanceAttribute answers.
const ATTRIBUTES: &[&str] = &[
    "instanceType",
    "userData",
    "disableApiTermination",
    "instanceInitiatedShutdownBehavior",
    "disableApiStop",
    "rootDeviceName",
    "kernel",
    "ramdisk",
    "blockDeviceMapping",
    "productCodes",
    "sourceDestCheck",
    "groupSet",
    "ebsOptimized",
    "sriovNetSupport",
    "enaSupport",
    "enclaveOptions",
];

impl Control {
    /// DescribeInstanceAttribute: the instance as described (with its interfaces, groups,
    /// volumes and root device) and the attribute asked for.
    pub fn instance_attribute(&self, req: &rq::DescribeInstanceAttribute) -> Result<(Instance, String)> {
        let id = req.instance_id.as_deref();
        let (rec, attribute) = self.attribute_read::<InstanceRecord>(
            Target::new(IdKind::Instance, id, "InstanceId", req.dry_run),
            req.attribute.as_deref(),
            ATTRIBUTES,
        )?;
        let instance = self.store.read(|tx| {
            let mut tags = tx.tag_map_for(&[rec.instance_id.as_str()])?;
            Instance::assemble(tx, vec![rec], &mut tags)
        })?;
        let instance = instance.into_iter().next().ok_or_else(|| Error::internal("an instance assembled into nothing"))?;
        Ok((instance, attribute))
    }

    pub fn instance_attribute_modify(&self, req: &rq::ModifyInstanceAttribute) -> Result<()> {
        let id = req.instance_id.as_deref().ok_or_else(|| Error::missing("InstanceId"))?;
        check_ids(&[id.to_string()])?;
        // The attribute comes either as Attribute + Value or as its own member.
        let mut changes: Vec<(&str, String)> = Vec::new();
        if let Some(a) = &req.attribute {
            let v = req.value.clone().ok_or_else(|| Error::missing("Value"))?;
            changes.push((a.as_str(), v));
        }
        if let Some(v) = req.instance_type.as_ref().and_then(|v| v.value.clone()) {
            changes.push(("instanceType", v));
        }
        if let Some(v) = req.user_data.as_ref().and_then(|v| v.value.clone()) {
            changes.push(("userData", v));
        }
        if let Some(v) = req.disable_api_termination.as_ref().and_then(|v| v.value) {
            changes.push(("disableApiTermination", v.to_string()));
        }
        if let Some(v) = req.instance_initiated_shutdown_behavior.as_ref().and_then(|v| v.value.clone()) {
            changes.push(("instanceInitiatedShutdownBehavior", v));
        }
        let flags = [
            ("sourceDestCheck", &req.source_dest_check),
            ("disableApiStop", &req.disable_api_stop),
            ("ebsOptimized", &req.ebs_optimized),
            ("enaSupport", &req.ena_support),
        ];
        for (name, v) in flags {
            if let Some(v) = v.as_ref().and_then(|v| v.value) {
                changes.push((name, v.to_string()));
            }
        }
        for (name, v) in [("sriovNetSupport", &req.sriov_net_support), ("kernel", &req.kernel), ("ramdisk", &req.ramdisk)] {
            if let Some(v) = v.as_ref().and_then(|v| v.value.clone()) {
                changes.push((name, v));
            }
        }
        if !req.block_device_mappings.is_empty() {
            if !changes.is_empty() || !req.groups.is_empty() {
                return Err(Error::combination("Only one attribute can be modified at a time."));
            }
            self.attribute_write(target(id, req.dry_run), |tx, r: &mut InstanceRecord| {
                not_terminated(r)?;
                let mut volumes = tx.doc_list_by_parent::<VolumeRecord>(id)?;
                for m in &req.block_device_mappings {
                    let device = m.device_name.as_deref().ok_or_else(|| Error::missing("BlockDeviceMapping.N.DeviceName"))?;
                    let v = volumes.iter_mut().find(|v| v.attachment.as_ref().is_some_and(|a| a.device == device)).ok_or_else(|| {
                        Error::new(ErrorCode::InvalidInstanceAttributeValue, format!("No device is currently mapped at {device}"))
                    })?;
                    if let Some(ebs) = &m.ebs {
                        if ebs.volume_id.as_deref().is_some_and(|x| x != v.volume_id) {
                            return Err(Error::new(
                                ErrorCode::InvalidInstanceAttributeValue,
                                format!("The volume at {device} is {}, not {}", v.volume_id, ebs.volume_id.clone().unwrap_or_default()),
                            ));
                        }
                        if let (Some(d), Some(a)) = (ebs.delete_on_termination, v.attachment.as_mut()) {
                            a.delete_on_termination = d;
                        }
                    }
                }
                for v in &volumes {
                    tx.doc_put(v)?;
                }
                Ok(())
            })?;
            return Ok(());
        }
        if !req.groups.is_empty() {
            if !changes.is_empty() {
                return Err(Error::combination("Only one attribute can be modified at a time."));
            }
            self.attribute_write(target(id, req.dry_run), |tx, r: &mut InstanceRecord| {
                not_terminated(r)?;
                self.instance_groups_set(tx, id, &req.groups)
            })?;
            self.host_mark([id.to_string()]);
            return Ok(());
        }
        if changes.is_empty() {
            return Err(Error::missing("Attribute"));
        }
        if changes.len() > 1 {
            return Err(Error::combination("Only one attribute can be modified at a time."));
        }
        let (attr, value) = changes.remove(0);
        self.attribute_write(target(id, req.dry_run), |tx, r: &mut InstanceRecord| {
            not_terminated(r)?;
            match attr {
                "instanceType" => {
                    let t = instance_type(&value).ok_or_else(|| {
                        Error::new(
                            ErrorCode::InvalidInstanceAttributeValue,
                            format!("Value ({value}) for parameter instanceType is invalid."),
                        )
                    })?;
                    if r.state != InstanceState::Stopped {
                        return Err(Error::new(
                            ErrorCode::IncorrectInstanceState,
                            format!("The instance '{id}' is not in the 'stopped' state."),
                        ));
                    }
                    r.instance_type = t.name.into();
                    r.vcpus = t.vcpus;
                    r.memory_mib = t.memory_mib;
                }
                "userData" => {
                    if r.state != InstanceState::Stopped {
                        return Err(Error::new(
                            ErrorCode::IncorrectInstanceState,
                            format!("The instance '{id}' is not in the 'stopped' state."),
                        ));
                    }
                    check_user_data(&value)?;
                    r.user_data = (!value.is_empty()).then_some(value);
                }
                "disableApiTermination" => {
                    r.disable_api_termination = parse_bool("disableApiTermination", &value)?;
                }
                // The instance's check is its primary interface's, as on AWS.
                "sourceDestCheck" => {
                    let check = parse_bool("sourceDestCheck", &value)?;
                    let mut eni = tx
                        .eni_list_for_instance(id)?
                        .into_iter()
                        .find(|e| e.device_index == 0)
                        .ok_or_else(|| Error::internal(format!("instance {id} has no primary interface")))?;
                    eni.source_dest_check = check;
                    tx.doc_put(&eni)?;
                }
                "disableApiStop" => r.options.disable_api_stop = parse_bool("disableApiStop", &value)?,
                "ebsOptimized" => r.options.ebs_optimized = parse_bool("ebsOptimized", &value)?,
                // Corral's guests always have these; turning them off is not something it can do.
                "enaSupport" => {
                    if !parse_bool("enaSupport", &value)? {
                        return Err(Error::new(ErrorCode::Unsupported, "ENA support cannot be turned off on Corral's instances."));
                    }
                }
                "sriovNetSupport" => {
                    if value != "simple" {
                        return Err(Error::invalid_value("sriovNetSupport", &value, "The only value supported is simple."));
                    }
                }
                "kernel" | "ramdisk" => {
                    return Err(Error::new(
                        ErrorCode::Unsupported,
                        format!("The {attr} attribute applies to paravirtual instances, which Corral does not run."),
                    ))
                }
                "instanceInitiatedShutdownBehavior" => {
                    if value != "stop" && value != "terminate" {
                        return Err(Error::new(
                            ErrorCode::InvalidParameterValue,
                            format!("Value ({value}) for parameter instanceInitiatedShutdownBehavior is invalid."),
                        ));
                    }
                    r.shutdown_behavior = value;
                }
                other => {
                    return Err(Error::new(
                        ErrorCode::InvalidParameterValue,
                        format!("Value ({other}) for parameter attribute is invalid. Modifying it is not supported."),
                    ))
                }
            }
            Ok(())
        })?;
        // The source/destination check is enforced on the host.
        self.host_mark([id.to_string()]);
        Ok(())
    }
}

fn target(id: &str, dry_run: bool) -> Target<'_> {
    Target::new(IdKind::Instance, Some(id), "InstanceId", dry_run)
}

fn not_terminated(r: &InstanceRecord) -> Result<()> {
    if r.state == InstanceState::Terminated {
        return Err(Error::incorrect_state(&r.instance_id, r.state.name(), "modified"));
    }
    Ok(())
}

fn parse_bool(name: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::invalid_value(name, v, "Expected true or false.")),
    }
}

/// (instance id, CPU credit option).
pub type CreditSpecification = (String, String);
/// (instance id, error code, message) of an instance ModifyInstanceCreditSpecification failed for.
pub type CreditFailure = (String, String, String);

/// The settings RunInstances asks for, checked against the instance type.
pub(super) fn launch_options(req: &rq::RunInstances, itype: &InstanceTypeInfo) -> Result<InstanceOptions> {
    let mut o = InstanceOptions { disable_api_stop: req.disable_api_stop.unwrap_or(false), ..InstanceOptions::default() };
    o.ebs_optimized = req.ebs_optimized.unwrap_or(false);
    if let Some(credits) = req.credit_specification.as_ref().and_then(|c| c.cpu_credits.as_deref()) {
        if !itype.burstable {
            return Err(Error::combination(format!(
                "The requested configuration is not supported: CreditSpecification is only for burstable performance instances, not {}.",
                itype.name
            )));
        }
        o.cpu_credits = check_credits(credits)?.to_string();
    }
    if req.monitoring.as_ref().and_then(|m| m.enabled).unwrap_or(false) {
        o.monitoring = "enabled".into();
    }
    Ok(o)
}

fn check_credits(v: &str) -> Result<&str> {
    match v {
        "standard" | "unlimited" => Ok(v),
        _ => Err(Error::invalid_value("CpuCredits", v, "Valid values are standard and unlimited.")),
    }
}

/// The CPU credit option of a burstable instance: what it was given, else its family's
/// default (`standard` for T2, `unlimited` for T3 and later), as on AWS.
pub fn cpu_credits(r: &InstanceRecord) -> String {
    if !r.options.cpu_credits.is_empty() {
        return r.options.cpu_credits.clone();
    }
    if r.instance_type.starts_with("t2.") { "standard" } else { "unlimited" }.to_string()
}

impl Control {
    /// GetInstanceUefiData: Corral's instances boot legacy BIOS or directly, so the variable
    /// store of an existing instance is empty. Returns the instance id.
    pub fn instance_uefi_data(&self, req: &rq::GetInstanceUefiData) -> Result<String> {
        let id = req.instance_id.as_deref().ok_or_else(|| Error::missing("InstanceId"))?;
        let r = self.instance_get(id)?;
        if req.dry_run {
            return Err(Error::dry_run());
        }
        Ok(r.instance_id)
    }
}

fn burstable(r: &InstanceRecord) -> bool {
    instance_type(&r.instance_type).is_some_and(|t| t.burstable)
}

impl Control {
    /// DescribeInstanceCreditSpecifications: the burstable instances named (all of them when
    /// none is named), with their CPU credit option.
    pub fn instance_credit_describe(
        &self,
        req: &rq::DescribeInstanceCreditSpecifications,
    ) -> Result<(Vec<CreditSpecification>, Option<String>)> {
        const FILTERS: &[FilterLine<Instance>] = &[("instance-id", |i, _| vec![i.rec.instance_id.clone()])];
        let d = Describe::new(&req.instance_ids, &req.filters, req.dry_run, req.max_results, req.next_token.as_deref());
        d.ids_without_max_results("instanceIdSet")?;
        // Ids asked for must exist (not terminated); a listing pages the burstable ones. Ids
        // and MaxResults do not go together, so the pages hold only burstable instances.
        let named = !req.instance_ids.is_empty();
        let (items, next) = self.describe(&d.table(FILTERS).without_tag_filters(), |i| {
            i.rec.state != InstanceState::Terminated && (named || burstable(&i.rec))
        })?;
        Ok((items.iter().filter(|i| burstable(&i.rec)).map(|i| (i.rec.instance_id.clone(), cpu_credits(&i.rec))).collect(), next))
    }

    /// ModifyInstanceCreditSpecification: each instance succeeds or fails on its own, as on
    /// AWS. Returns (succeeded ids, failed (id, code, message)).
    pub fn instance_credit_modify(&self, req: &rq::ModifyInstanceCreditSpecification) -> Result<(Vec<String>, Vec<CreditFailure>)> {
        if req.instance_credit_specifications.is_empty() {
            return Err(Error::missing("InstanceCreditSpecification"));
        }
        let mut specs = Vec::new();
        for s in &req.instance_credit_specifications {
            let id = s.instance_id.clone().ok_or_else(|| Error::missing("InstanceCreditSpecification.N.InstanceId"))?;
            let credits = s.cpu_credits.as_deref().ok_or_else(|| Error::missing("InstanceCreditSpecification.N.CpuCredits"))?;
            check_ids(std::slice::from_ref(&id))?;
            specs.push((id, check_credits(credits)?.to_string()));
        }
        if req.dry_run {
            return Err(Error::dry_run());
        }
        self.store.transaction(|tx| {
            let (mut ok, mut failed) = (Vec::new(), Vec::new());
            for (id, credits) in &specs {
                match tx.instance_get(id)?.filter(|r| r.state != InstanceState::Terminated) {
                    None => {
                        failed.push((id.clone(), "InvalidInstanceID.NotFound".into(), format!("The instance ID '{id}' does not exist")))
                    }
                    Some(r) if !burstable(&r) => failed.push((
                        id.clone(),
                        "InvalidInstanceType".into(),
                        format!("The instance type {} does not support credit specifications.", r.instance_type),
                    )),
                    Some(mut r) => {
                        r.options.cpu_credits = credits.clone();
                        tx.instance_update(&r)?;
                        ok.push(id.clone());
                    }
                }
            }
            Ok((ok, failed))
        })
    }

    /// MonitorInstances and UnmonitorInstances: (id, new monitoring state) for each.
    pub fn instance_monitoring_set(&self, ids: &[String], enabled: bool, dry_run: bool) -> Result<Vec<(String, String)>> {
        if ids.is_empty() {
            return Err(Error::missing("InstanceId"));
        }
        check_ids(ids)?;
        self.store.transaction(|tx| {
            let mut records = Vec::new();
            let mut missing = Vec::new();
            for id in ids {
                match tx.instance_get(id)?.filter(|r| r.state != InstanceState::Terminated) {
                    Some(r) => records.push(r),
                    None => missing.push(id.as_str()),
                }
            }
            if !missing.is_empty() {
                return Err(Error::not_found(IdKind::Instance, &missing.join(", ")));
            }
            if dry_run {
                return Err(Error::dry_run());
            }
            let state = if enabled { "enabled" } else { "disabled" };
            for r in &mut records {
                r.options.monitoring = state.into();
                tx.instance_update(r)?;
            }
            Ok(records.iter().map(|r| (r.instance_id.clone(), state.to_string())).collect())
        })
    }
}
