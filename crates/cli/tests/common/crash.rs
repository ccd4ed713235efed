//! Crash injection: a cycle of launch, attach, snapshot, stop, start, detach, terminate and
//! delete that `corral serve` is killed in the middle of (SIGKILL, at a random instant), and the
//! invariants checked after each restart, from what the client was told before the kill:
//!
//! - no instance lost or duplicated: every instance id the client was given is still there,
//!   once; RunInstances retried with the cycle's ClientToken answers the same instance (or,
//!   when the first call never committed, launches exactly one);
//! - every volume and snapshot whose creation was answered exists unless its deletion was
//!   answered (a deletion cut off may have happened or not), and one whose deletion was
//!   answered is gone;
//! - everything settles: instances `running`, `stopped` or `terminated`; volumes `available` or
//!   `in-use`, attached only to instances that exist and are not terminated; snapshots not
//!   `pending`;
//! - everything left can be cleaned up through the API, and the store is consistent
//!   (`corral doctor --store`, run on the state directory while no serve runs).
//!
//! Host-side checks (processes, namespaces, pool files) belong to the QEMU harness.

use corral_testkit::{Client, Response};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a resource's deletion got to, as far as the client knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Live,
    /// Sent; no answer came (the server died). It may have happened or not.
    Deleting,
    Deleted,
}

/// What the client was told, across cycles.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Each cycle's ClientToken and the instance RunInstances answered with (if it answered).
    pub launches: BTreeMap<String, Option<String>>,
    pub volumes: BTreeMap<String, Fate>,
    pub snapshots: BTreeMap<String, Fate>,
}

/// One request of a cycle: `Err` when the server is gone (no answer), a panic when it answers
/// with an error (a cycle never asks for something it should be refused).
async fn call(c: &Client, action: &str, params: &[(&str, &str)]) -> Result<Response, String> {
    match c.try_call(action, params).await {
        Ok(r) if r.status == 0 => Err(format!("{action}: no answer")),
        Ok(r) if r.status != 200 => panic!("{action} {params:?} answered {}: {}", r.status, r.body),
        Ok(r) => Ok(r),
        Err(e) => Err(format!("{action}: {e}")),
    }
}

/// The RunInstances of cycle `n` (a retry must send the very same parameters).
fn launch_params<'a>(image: &'a str, token: &'a str, zone: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("ImageId", image),
        ("InstanceType", "t3.micro"),
        ("MinCount", "1"),
        ("MaxCount", "1"),
        ("ClientToken", token),
        ("Placement.AvailabilityZone", zone),
    ]
}

pub fn token(n: usize) -> String {
    format!("crash-cycle-{n}")
}

/// Every instance (id, state, ClientToken) DescribeInstances lists.
pub async fn instances(c: &Client) -> Vec<(String, String, String)> {
    let r = c.call("DescribeInstances", &[]).await;
    r.ok();
    let doc = roxmltree::Document::parse(&r.body).expect("DescribeInstances parses");
    doc.descendants()
        .filter(|n| n.has_tag_name("item") && n.children().any(|c| c.has_tag_name("instanceId")))
        .map(|n| {
            let child = |tag: &str| n.children().find(|c| c.has_tag_name(tag));
            let text = |tag: &str| child(tag).and_then(|c| c.text()).unwrap_or("").to_string();
            let state = child("instanceState")
                .and_then(|s| s.children().find(|c| c.has_tag_name("name")))
                .and_then(|c| c.text())
                .unwrap_or("")
                .to_string();
            (text("instanceId"), state, text("clientToken"))
        })
        .collect()
}

/// Items of a Describe call's `set`: each item's direct children's text by tag (and a
/// volume's attachment's instance as `attachedTo`).
async fn items(c: &Client, action: &str, params: &[(&str, &str)], set: &str) -> Vec<HashMap<String, String>> {
    try_items(c, action, params, set).await.unwrap_or_else(|e| panic!("{e}"))
}

async fn try_items(c: &Client, action: &str, params: &[(&str, &str)], set: &str) -> Result<Vec<HashMap<String, String>>, String> {
    let r = call(c, action, params).await?;
    let doc = roxmltree::Document::parse(&r.body).expect("a Describe parses");
    let Some(list) = doc.descendants().find(|n| n.has_tag_name(set)) else { return Ok(Vec::new()) };
    Ok(list
        .children()
        .filter(|n| n.has_tag_name("item"))
        .map(|item| {
            let mut m: HashMap<String, String> = item
                .children()
                .filter(|c| c.is_element())
                .map(|c| (c.tag_name().name().to_string(), c.text().unwrap_or("").to_string()))
                .collect();
            if let Some(a) = item.descendants().find(|n| n.has_tag_name("attachmentSet")) {
                if let Some(i) = a.descendants().find(|n| n.has_tag_name("instanceId")).and_then(|n| n.text()) {
                    m.insert("attachedTo".into(), i.to_string());
                }
            }
            m
        })
        .collect())
}

async fn wait_instance(c: &Client, id: &str, want: &str, deadline: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let r = call(c, "DescribeInstances", &[("InstanceId.1", id)]).await?;
        let doc = roxmltree::Document::parse(&r.body).expect("parses");
        let state = doc
            .descendants()
            .find(|n| n.has_tag_name("instanceState"))
            .and_then(|s| s.children().find(|c| c.has_tag_name("name")))
            .and_then(|n| n.text())
            .unwrap_or("");
        if state == want {
            return Ok(());
        }
        assert!(start.elapsed() < deadline, "{id} not {want} within {deadline:?} (it is {state})");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_volume(c: &Client, id: &str, want: &str, deadline: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let v = try_items(c, "DescribeVolumes", &[("VolumeId.1", id)], "volumeSet").await?;
        let status = v.first().and_then(|v| v.get("status")).cloned().unwrap_or_default();
        if status == want {
            return Ok(());
        }
        assert!(start.elapsed() < deadline, "{id} not {want} within {deadline:?} (it is {status})");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One cycle of work, noting each answer in the ledger as it comes. Returns `Err` when the
/// server went away under it.
pub async fn cycle(c: &Client, image: &str, zone: &str, n: usize, ledger: &Mutex<Ledger>, deadline: Duration) -> Result<(), String> {
    let tok = token(n);
    ledger.lock().unwrap().launches.insert(tok.clone(), None);
    let r = call(c, "RunInstances", &launch_params(image, &tok, zone)).await?;
    let id = r.text("instanceId").expect("an instance id");
    ledger.lock().unwrap().launches.insert(tok.clone(), Some(id.clone()));
    wait_instance(c, &id, "running", deadline).await?;

    let r = call(c, "CreateVolume", &[("Size", "1"), ("AvailabilityZone", zone)]).await?;
    let vol = r.text("volumeId").expect("a volume id");
    ledger.lock().unwrap().volumes.insert(vol.clone(), Fate::Live);
    call(c, "AttachVolume", &[("VolumeId", &vol), ("InstanceId", &id), ("Device", "/dev/sdf")]).await?;
    wait_volume(c, &vol, "in-use", deadline).await?;
    let r = call(c, "CreateSnapshot", &[("VolumeId", &vol)]).await?;
    let snap = r.text("snapshotId").expect("a snapshot id");
    ledger.lock().unwrap().snapshots.insert(snap.clone(), Fate::Live);

    call(c, "StopInstances", &[("InstanceId.1", &id)]).await?;
    wait_instance(c, &id, "stopped", deadline).await?;
    call(c, "StartInstances", &[("InstanceId.1", &id)]).await?;
    wait_instance(c, &id, "running", deadline).await?;
    call(c, "DetachVolume", &[("VolumeId", &vol)]).await?;
    wait_volume(c, &vol, "available", deadline).await?;
    call(c, "TerminateInstances", &[("InstanceId.1", &id)]).await?;
    wait_instance(c, &id, "terminated", deadline).await?;

    ledger.lock().unwrap().volumes.insert(vol.clone(), Fate::Deleting);
    call(c, "DeleteVolume", &[("VolumeId", &vol)]).await?;
    ledger.lock().unwrap().volumes.insert(vol, Fate::Deleted);
    ledger.lock().unwrap().snapshots.insert(snap.clone(), Fate::Deleting);
    call(c, "DeleteSnapshot", &[("SnapshotId", &snap)]).await?;
    ledger.lock().unwrap().snapshots.insert(snap, Fate::Deleted);
    Ok(())
}

/// After a restart: waits for everything to settle, checks the invariants against the ledger,
/// then cleans up through the API what the cut-off cycle left (terminating its instance,
/// deleting its volume and snapshot), so every cycle starts from the same fleet. Returns the
/// problems found (empty: none).
pub async fn check_and_clean(c: &Client, image: &str, zone: &str, last: usize, ledger: &Mutex<Ledger>, deadline: Duration) -> Vec<String> {
    let mut problems = Vec::new();
    // Settled states.
    let start = Instant::now();
    let (insts, vols, snaps) = loop {
        let insts = instances(c).await;
        let vols = items(c, "DescribeVolumes", &[], "volumeSet").await;
        let snaps = items(c, "DescribeSnapshots", &[("Owner.1", "self")], "snapshotSet").await;
        let settled = insts.iter().all(|(_, s, _)| matches!(s.as_str(), "running" | "stopped" | "terminated"))
            && vols.iter().all(|v| matches!(v.get("status").map(String::as_str), Some("available" | "in-use")))
            && snaps.iter().all(|s| s.get("status").map(String::as_str) != Some("pending"));
        if settled {
            break (insts, vols, snaps);
        }
        if start.elapsed() > deadline {
            problems.push(format!("not settled within {deadline:?}: {insts:?} {vols:?} {snaps:?}"));
            break (insts, vols, snaps);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Instances: each once; the last cycle's ClientToken answers its instance again.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut by_token: HashMap<&str, usize> = HashMap::new();
    for (id, _, tok) in &insts {
        *seen.entry(id).or_default() += 1;
        if !tok.is_empty() {
            *by_token.entry(tok).or_default() += 1;
        }
    }
    problems.extend(seen.iter().filter(|(_, n)| **n > 1).map(|(id, n)| format!("instance {id} listed {n} times")));
    problems.extend(by_token.iter().filter(|(_, n)| **n > 1).map(|(t, n)| format!("ClientToken {t} has {n} instances")));
    let known: Vec<(String, Option<String>)> = ledger.lock().unwrap().launches.iter().map(|(t, i)| (t.clone(), i.clone())).collect();
    for (tok, id) in &known {
        if let Some(id) = id {
            if !seen.contains_key(id.as_str()) {
                problems.push(format!("instance {id} (ClientToken {tok}) is lost"));
            }
        }
    }
    let tok = token(last);
    let retry = c.call("RunInstances", &launch_params(image, &tok, zone)).await;
    match retry.text("instanceId") {
        None => problems.push(format!("retrying RunInstances with ClientToken {tok}: {}", retry.body)),
        Some(again) => {
            let before = ledger.lock().unwrap().launches.get(&tok).cloned().flatten();
            if before.as_ref().is_some_and(|b| *b != again) {
                problems.push(format!("ClientToken {tok} answered {before:?} before the kill and {again} after"));
            }
            ledger.lock().unwrap().launches.insert(tok.clone(), Some(again));
        }
    }

    // Volumes and snapshots against what the client was told.
    let live_ids: HashMap<&str, &str> =
        insts.iter().filter(|(_, s, _)| s != "terminated").map(|(i, s, _)| (i.as_str(), s.as_str())).collect();
    let vol_ids: HashMap<&str, &HashMap<String, String>> = vols.iter().filter_map(|v| Some((v.get("volumeId")?.as_str(), v))).collect();
    let snap_ids: HashMap<&str, &HashMap<String, String>> = snaps.iter().filter_map(|s| Some((s.get("snapshotId")?.as_str(), s))).collect();
    let (vol_fates, snap_fates) = {
        let l = ledger.lock().unwrap();
        (l.volumes.clone(), l.snapshots.clone())
    };
    for (id, fate) in &vol_fates {
        match (fate, vol_ids.contains_key(id.as_str())) {
            (Fate::Live, false) => problems.push(format!("volume {id} is lost")),
            (Fate::Deleted, true) => problems.push(format!("volume {id} was deleted but is listed")),
            _ => {}
        }
    }
    for v in &vols {
        if let Some(i) = v.get("attachedTo").filter(|i| !live_ids.contains_key(i.as_str())) {
            problems.push(format!("volume {:?} is attached to {i}, which is not a live instance", v.get("volumeId")));
        }
    }
    for (id, fate) in &snap_fates {
        match (fate, snap_ids.contains_key(id.as_str())) {
            (Fate::Live, false) => problems.push(format!("snapshot {id} is lost")),
            (Fate::Deleted, true) => problems.push(format!("snapshot {id} was deleted but is listed")),
            _ => {}
        }
    }

    // Clean up: every instance the cycles launched that still lives, every data volume and
    // snapshot left. A root volume goes with its instance.
    let ids: Vec<String> = instances(c).await.into_iter().filter(|(_, s, _)| s != "terminated").map(|(i, _, _)| i).collect();
    for id in &ids {
        c.call("TerminateInstances", &[("InstanceId.1", id)]).await.ok();
    }
    for id in &ids {
        if let Err(e) = wait_instance(c, id, "terminated", deadline).await {
            problems.push(format!("terminating {id}: {e}"));
        }
    }
    for v in items(c, "DescribeVolumes", &[], "volumeSet").await {
        let Some(id) = v.get("volumeId") else { continue };
        if let Err(e) = wait_volume(c, id, "available", deadline).await {
            problems.push(format!("volume {id}: {e}"));
        }
        let r = c.call("DeleteVolume", &[("VolumeId", id)]).await;
        if r.status != 200 {
            problems.push(format!("deleting volume {id} after the restart: {}", r.body));
        }
        ledger.lock().unwrap().volumes.insert(id.clone(), Fate::Deleted);
    }
    let images = c.call("DescribeImages", &[("Owner.1", "self")]).await;
    let of_images = images.ok().texts("snapshotId");
    for s in items(c, "DescribeSnapshots", &[("Owner.1", "self")], "snapshotSet").await {
        let Some(id) = s.get("snapshotId").filter(|id| !of_images.contains(id)) else { continue };
        let r = c.call("DeleteSnapshot", &[("SnapshotId", id)]).await;
        if r.status != 200 {
            problems.push(format!("deleting snapshot {id} after the restart: {}", r.body));
        }
        ledger.lock().unwrap().snapshots.insert(id.clone(), Fate::Deleted);
    }
    problems
}

/// A small deterministic generator for kill instants, seeded from `CORRAL_CRASH_SEED` or the
/// clock (the seed is printed, so a failure can be replayed).
pub fn seed() -> u64 {
    let seed = std::env::var("CORRAL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    eprintln!("crash injection seed: {seed} (CORRAL_CRASH_SEED={seed} replays it)");
    seed
}

/// `corral doctor --store` on a state directory no serve holds: the store is consistent.
pub fn store_consistent(state: &std::path::Path) -> Result<(), String> {
    let out = corral_exec::std_command(env!("CARGO_BIN_EXE_corral"))
        .args(["doctor", "--store", "--state-dir"])
        .arg(state)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}
