//! Instances: what the user asked for (`desired`) beside what the agent last reported
//! (`state`, `observed_generation`).

use crate::{Result, StoreError, Tx};
use corral_types::InstanceState;
use rusqlite::{params, OptionalExtension, Row};

/// What the control plane wants the VM to be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desired {
    Running,
    Stopped,
    Terminated,
}

impl Desired {
    pub fn as_str(self) -> &'static str {
        match self {
            Desired::Running => "running",
            Desired::Stopped => "stopped",
            Desired::Terminated => "terminated",
        }
    }

    fn parse(s: &str) -> Option<Desired> {
        match s {
            "running" => Some(Desired::Running),
            "stopped" => Some(Desired::Stopped),
            "terminated" => Some(Desired::Terminated),
            _ => None,
        }
    }
}

/// MetadataOptions, with AWS's defaults.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetadataOptions {
    /// "optional" or "required" (IMDSv2 only).
    pub http_tokens: String,
    /// "enabled" or "disabled".
    pub http_endpoint: String,
    pub hop_limit: u8,
    /// "enabled" or "disabled".
    pub instance_metadata_tags: String,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        MetadataOptions {
            http_tokens: "optional".into(),
            http_endpoint: "enabled".into(),
            hop_limit: 1,
            instance_metadata_tags: "disabled".into(),
        }
    }
}

/// Settings of an instance that EC2 keeps beside its state, read and changed by
/// DescribeInstanceAttribute, ModifyInstanceAttribute and friends. Missing fields take AWS's
/// defaults, so the column can grow without a migration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct InstanceOptions {
    pub disable_api_stop: bool,
    pub ebs_optimized: bool,
    /// Burstable types: "standard" or "unlimited"; empty for the type's default.
    pub cpu_credits: String,
    /// Detailed monitoring: "disabled" or "enabled".
    pub monitoring: String,
}

impl Default for InstanceOptions {
    fn default() -> Self {
        InstanceOptions { disable_api_stop: false, ebs_optimized: false, cpu_credits: String::new(), monitoring: "disabled".into() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    pub instance_id: String,
    pub reservation_id: String,
    pub image_id: String,
    pub instance_type: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub key_name: Option<String>,
    pub state: InstanceState,
    pub desired: Desired,
    pub force_stop: bool,
    pub state_reason_code: Option<String>,
    pub state_reason_message: Option<String>,
    pub state_transition_reason: String,
    pub availability_zone: String,
    pub launch_time: String,
    pub ami_launch_index: u32,
    /// Base64, as given.
    pub user_data: Option<String>,
    pub client_token: Option<String>,
    pub disable_api_termination: bool,
    /// "stop" or "terminate".
    pub shutdown_behavior: String,
    pub host: String,
    pub observed_generation: u64,
    pub terminated_at: Option<String>,
    /// Insertion order, for stable pagination.
    pub seq: i64,
    pub metadata: MetadataOptions,
    pub options: InstanceOptions,
    /// Raised by the store with every write to what DescribeInstances shows of the instance
    /// (migration 8); a new record's is 0 and what is given here is never written.
    pub rev: u64,
}

/// The terminated instances: the condition the partial index `instances_terminated`
/// (migration 9) is made for, so reading them does not read the fleet.
const TERMINATED: &str = "state = 'terminated'";

/// One reservation's instances, as `instances_by_reservation` indexes them.
const BY_RESERVATION: &str = "reservation_id = ?1";

pub(crate) const COLS: &str =
    "instance_id, reservation_id, image_id, instance_type, vcpus, memory_mib, key_name, state, desired, force_stop, \
    state_reason_code, state_reason_message, state_transition_reason, availability_zone, launch_time, ami_launch_index, user_data, \
    client_token, disable_api_termination, shutdown_behavior, host, observed_generation, terminated_at, seq, metadata_options, options, rev";

pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<InstanceRecord>> {
    let state: String = r.get(7)?;
    let desired: String = r.get(8)?;
    let id: String = r.get(0)?;
    let (Some(state), Some(desired)) = (InstanceState::from_name(&state), Desired::parse(&desired)) else {
        return Ok(Err(StoreError::Corrupt(format!("instance {id}: state {state} desired {desired}"))));
    };
    Ok(Ok(InstanceRecord {
        instance_id: id.clone(),
        reservation_id: r.get(1)?,
        image_id: r.get(2)?,
        instance_type: r.get(3)?,
        vcpus: r.get(4)?,
        memory_mib: r.get::<_, i64>(5)? as u64,
        key_name: r.get(6)?,
        state,
        desired,
        force_stop: r.get(9)?,
        state_reason_code: r.get(10)?,
        state_reason_message: r.get(11)?,
        state_transition_reason: r.get(12)?,
        availability_zone: r.get(13)?,
        launch_time: r.get(14)?,
        ami_launch_index: r.get(15)?,
        user_data: r.get(16)?,
        client_token: r.get(17)?,
        disable_api_termination: r.get(18)?,
        shutdown_behavior: r.get(19)?,
        host: r.get(20)?,
        observed_generation: r.get::<_, i64>(21)? as u64,
        terminated_at: r.get(22)?,
        seq: r.get(23)?,
        metadata: {
            let s: String = r.get(24)?;
            if s.is_empty() {
                MetadataOptions::default()
            } else {
                match serde_json::from_str(&s) {
                    Ok(m) => m,
                    Err(e) => return Ok(Err(StoreError::Corrupt(format!("instance {id}: metadata options: {e}")))),
                }
            }
        },
        options: {
            let s: String = r.get(25)?;
            match serde_json::from_str(&s) {
                Ok(o) => o,
                Err(e) => return Ok(Err(StoreError::Corrupt(format!("instance {id}: options: {e}")))),
            }
        },
        rev: r.get::<_, i64>(26)? as u64,
    }))
}

fn metadata_json(m: &MetadataOptions) -> String {
    serde_json::to_string(m).unwrap_or_default()
}

fn options_json(o: &InstanceOptions) -> String {
    serde_json::to_string(o).unwrap_or_else(|_| "{}".into())
}

impl Tx<'_> {
    /// Inserts a new instance; its `seq` is assigned here.
    pub fn instance_insert(&self, i: &InstanceRecord) -> Result<()> {
        let seq: i64 = self.tx.prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM instances")?.query_row([], |r| r.get(0))?;
        self.tx.prepare_cached(&format!("INSERT INTO instances({COLS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,0)"))?.execute(params![
                i.instance_id, i.reservation_id, i.image_id, i.instance_type, i.vcpus, i.memory_mib as i64, i.key_name,
                i.state.name(), i.desired.as_str(), i.force_stop, i.state_reason_code, i.state_reason_message,
                i.state_transition_reason, i.availability_zone, i.launch_time, i.ami_launch_index, i.user_data,
                i.client_token, i.disable_api_termination, i.shutdown_behavior, i.host, i.observed_generation as i64,
                i.terminated_at, seq, metadata_json(&i.metadata), options_json(&i.options)
            ],
        )?;
        Ok(())
    }

    /// Writes every mutable field of `i` back.
    pub fn instance_update(&self, i: &InstanceRecord) -> Result<()> {
        self.tx
            .prepare_cached(
                "UPDATE instances SET instance_type=?2, vcpus=?3, memory_mib=?4, state=?5, desired=?6, force_stop=?7, state_reason_code=?8,
             state_reason_message=?9, state_transition_reason=?10, user_data=?11, disable_api_termination=?12, shutdown_behavior=?13,
             observed_generation=?14, terminated_at=?15, metadata_options=?16, options=?17 WHERE instance_id=?1",
            )?
            .execute(params![
                i.instance_id,
                i.instance_type,
                i.vcpus,
                i.memory_mib as i64,
                i.state.name(),
                i.desired.as_str(),
                i.force_stop,
                i.state_reason_code,
                i.state_reason_message,
                i.state_transition_reason,
                i.user_data,
                i.disable_api_termination,
                i.shutdown_behavior,
                i.observed_generation as i64,
                i.terminated_at,
                metadata_json(&i.metadata),
                options_json(&i.options)
            ])?;
        Ok(())
    }

    /// The instance `read` (a copy read earlier) as it is now: the copy while its revision
    /// is unchanged (every write to the row or to what it shows raises it, migration 8), one
    /// probe of the row, else the row read again; `None` when it is gone.
    pub fn instance_current(&self, read: &InstanceRecord) -> Result<Option<InstanceRecord>> {
        match self.instance_rev(&read.instance_id)? {
            None => Ok(None),
            Some(rev) if rev == read.rev => Ok(Some(read.clone())),
            Some(_) => self.instance_get(&read.instance_id),
        }
    }

    /// An instance's revision as it is now (`None`: there is no such instance).
    pub fn instance_rev(&self, id: &str) -> Result<Option<u64>> {
        let rev: Option<i64> =
            self.tx.prepare_cached("SELECT rev FROM instances WHERE instance_id = ?1")?.query_row([id], |r| r.get(0)).optional()?;
        Ok(rev.map(|r| r as u64))
    }

    pub fn instance_get(&self, id: &str) -> Result<Option<InstanceRecord>> {
        self.tx
            .prepare_cached(&format!("SELECT {COLS} FROM instances WHERE instance_id = ?1"))?
            .query_row([id], from_row)
            .optional()?
            .transpose()
    }

    /// The instances meeting `condition` (SQL of the code's, never a client's), in launch order.
    fn instances_where(&self, condition: &str, args: impl rusqlite::Params) -> Result<Vec<InstanceRecord>> {
        let mut st = self.tx.prepare_cached(&format!("SELECT {COLS} FROM instances WHERE {condition} ORDER BY seq"))?;
        let rows = st.query_map(args, from_row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r??);
        }
        Ok(out)
    }

    /// All instances in launch order.
    pub fn instance_list(&self) -> Result<Vec<InstanceRecord>> {
        self.instances_where("1", [])
    }

    /// The instances of one reservation, in launch order: found in its index, not the fleet.
    pub fn instance_list_by_reservation(&self, reservation_id: &str) -> Result<Vec<InstanceRecord>> {
        self.instances_where(BY_RESERVATION, [reservation_id])
    }

    /// Up to `limit` instances of `host` not terminated, launched after position `after`, in
    /// launch order, each with its position.
    pub fn instance_page_live(&self, host: &str, after: i64, limit: usize) -> Result<Vec<(i64, InstanceRecord)>> {
        let n = COLS.split(',').count();
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {COLS}, seq FROM instances WHERE state != 'terminated' AND host = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = st.query_map(rusqlite::params![host, after, limit], |r| Ok((r.get::<_, i64>(n)?, from_row(r)?)))?;
        let mut out = Vec::new();
        for r in rows {
            let (pos, rec) = r?;
            out.push((pos, rec?));
        }
        Ok(out)
    }

    /// Up to `limit` instances after position `after` in the table's own order (not launch
    /// order), each as its id and revision: what the reconciler's backstop pass compares with
    /// what it last found settled, without decoding a record.
    pub fn instance_revisions(&self, after: i64, limit: usize) -> Result<Vec<(i64, (String, u64))>> {
        let mut st = self.tx.prepare_cached("SELECT rowid, instance_id, rev FROM instances WHERE rowid > ?1 ORDER BY rowid LIMIT ?2")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = st.query_map(rusqlite::params![after, limit], |r| {
            Ok((r.get::<_, i64>(0)?, (r.get::<_, String>(1)?, r.get::<_, i64>(2)? as u64)))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Terminated instances (those that may have expired).
    pub fn instance_list_terminated(&self) -> Result<Vec<InstanceRecord>> {
        self.instances_where(TERMINATED, [])
    }

    /// The instances that may have a VM running (neither stopped nor terminated).
    pub fn instance_ids_with_vms(&self) -> Result<Vec<String>> {
        let mut st = self.tx.prepare_cached("SELECT instance_id FROM instances WHERE state NOT IN ('stopped', 'terminated')")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Instances not terminated.
    pub fn instance_count_active(&self) -> Result<usize> {
        Ok(self.tx.prepare_cached("SELECT n FROM counters WHERE name = 'live_instances'")?.query_row([], |r| r.get::<_, i64>(0))? as usize)
    }

    pub fn instance_delete(&self, id: &str) -> Result<()> {
        self.tx.prepare_cached("DELETE FROM instances WHERE instance_id = ?1")?.execute([id])?;
        Ok(())
    }

    /// The reservation an earlier request with this client token made, with the hash of that
    /// request's parameters.
    pub fn client_token_get(&self, token: &str, action: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .tx
            .prepare_cached("SELECT request_hash, reservation_id FROM client_tokens WHERE token = ?1 AND action = ?2")?
            .query_row([token, action], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    pub fn client_token_insert(&self, token: &str, action: &str, request_hash: &str, reservation_id: &str) -> Result<()> {
        self.tx
            .prepare_cached("INSERT INTO client_tokens(token, action, request_hash, reservation_id) VALUES (?1, ?2, ?3, ?4)")?
            .execute([token, action, request_hash, reservation_id])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{InstanceRecord, BY_RESERVATION, COLS, TERMINATED};
    use crate::{Desired, Store};

    fn instance(id: &str) -> InstanceRecord {
        crate::example::instance_record(id)
    }

    /// The backstop pass's walk: page after page, every instance once, with the revision each
    /// has now (raised by a write; a deleted instance is not there).
    #[test]
    fn revisions_are_read_page_by_page_each_instance_once_with_its_revision() {
        let store = Store::open_in_memory().unwrap();
        let ids: Vec<String> = (0..8).map(|i| format!("i-{i:017x}")).collect();
        store.transaction(|tx| ids.iter().try_for_each(|id| tx.instance_insert(&instance(id)))).unwrap();
        let mut stopped = store.read(|tx| tx.instance_get(&ids[2])).unwrap().unwrap();
        stopped.desired = Desired::Stopped;
        store.transaction(|tx| tx.instance_update(&stopped)).unwrap();
        store.transaction(|tx| tx.instance_delete(&ids[7])).unwrap();
        let mut pages = Vec::new();
        store
            .read_pages(
                3,
                |tx, after, n| tx.instance_revisions(after, n),
                |_, page| {
                    pages.push(page.into_iter().map(|(_, r)| r).collect::<Vec<_>>());
                    Ok::<_, crate::StoreError>(())
                },
            )
            .unwrap();
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
        let want: Vec<(String, u64)> = ids[..7].iter().enumerate().map(|(i, id)| (id.clone(), u64::from(i == 2))).collect();
        assert_eq!(pages.concat(), want);
    }

    #[test]
    fn the_terminated_are_read_from_their_index_not_the_fleet() {
        let plan = crate::query_plan(&format!("SELECT {COLS} FROM instances WHERE {TERMINATED} ORDER BY seq"));
        assert_eq!(plan, ["SCAN instances USING INDEX instances_terminated"], "{plan:?}");
    }

    #[test]
    fn a_reservation_is_read_from_its_index_not_the_fleet() {
        let plan = crate::query_plan(&format!("SELECT {COLS} FROM instances WHERE {BY_RESERVATION} ORDER BY seq"));
        assert_eq!(plan[0], "SEARCH instances USING INDEX instances_by_reservation (reservation_id=?)", "{plan:?}");
    }
}
