//! Volumes on real guests: hot-plug and hot-unplug of `scsi-hd` disks, live snapshots, growing,
//! live rebases that drop layers from a chain, and failures that leave QEMU as it was. The
//! test guest (see `common`) runs with `corral.test=disks`: it watches `/sys/block` and, for
//! every disk that appears, prints the disk's serial, size and first sector, then writes
//! `CORRAL-DATA:<tag>:<dev>;` over that sector (tag from `corral.tag=` on its command line)
//! and says so. So what a guest wrote is read back by the next guest the volume is attached
//! to, and by the host with `qemu-img` once no VM holds the volume (or, for the rebase test,
//! right after QEMU flushed it).
//!
//! QEMU's side is checked through the agent's own QMP connection (`query-block`,
//! `query-named-block-nodes`; the rebase test also writes data at chosen offsets through HMP
//! `qemu-io` on the volume's device).

mod common;

use std::time::Instant;

use common::*;
use corral_agent::qemu::QemuAgent;
use corral_agent_api::{Agent, AgentError, BootMode, DiskBus, DiskSpec, LayerId, Storage, VmState};

const MIB: u64 = 1 << 20;

fn data_disk(target: u8, size_bytes: u64) -> DiskSpec {
    DiskSpec { volume_id: new_volume_id(), layer: new_layer(), backing: None, size_bytes, bus: DiskBus::Scsi { target } }
}

fn serial(volume_id: &str) -> String {
    volume_id.replacen('-', "", 1)
}

/// Boots a disk-watching guest and waits until it has written its root disk.
async fn boot(ctx: &Ctx, agent: &QemuAgent, tag: &str) -> String {
    let id = ctx.reaper.id();
    agent.vm_start(&ctx.spec(&id, &format!("corral.test=disks corral.tag={tag}"))).await.unwrap();
    wait_state(agent, &id, VmState::Running, RUNNING_DEADLINE).await;
    wait_console(agent, &id, &format!("CORRAL-TEST-DISK-WROTE vda CORRAL-DATA:{tag}:vda;"), 1, BOOT_DEADLINE).await;
    id
}

/// `(node name, file)` of every named block node of the VM.
async fn nodes(agent: &QemuAgent, id: &str) -> Vec<(String, String)> {
    let v = agent.vm_qmp(id, "query-named-block-nodes", Some(serde_json::json!({"flat": true}))).await.unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node-name"].as_str().unwrap_or("").to_string(), n["file"].as_str().unwrap_or("").to_string()))
        .collect()
}

/// The qdev ids/paths of the VM's block devices.
async fn devices(agent: &QemuAgent, id: &str) -> Vec<String> {
    let v = agent.vm_qmp(id, "query-block", None).await.unwrap();
    v.as_array().unwrap().iter().map(|b| b["qdev"].as_str().unwrap_or("").to_string()).collect()
}

/// Whether the VM's QEMU has anything of the volume: its device, a node named after it, or a
/// node on one of `layers`' files.
async fn has_any_of(agent: &QemuAgent, id: &str, volume_id: &str, layers: &[&LayerId]) -> bool {
    let devs = devices(agent, id).await;
    let nodes = nodes(agent, id).await;
    devs.iter().any(|d| d.contains(volume_id))
        || nodes.iter().any(|(n, f)| n == volume_id || layers.iter().any(|l| f.contains(l.as_str()) || n == l.as_str()))
}

fn chain(e: &AgentError) -> String {
    error_chain(e)
}

#[tokio::test]
async fn attach_write_detach_and_attach_to_another_vm() {
    let Some(ctx) = Ctx::new() else { return };
    let agent = ctx.agent(GRACEFUL_STOP_TIMEOUT).await;
    let a = boot(&ctx, &agent, "vma").await;
    let b = boot(&ctx, &agent, "vmb").await;

    // A new, empty volume: its layer is made by the attach.
    let vol = data_disk(2, 32 * MIB);
    assert!(!ctx.layer_path(&vol.layer).exists());
    let t = Instant::now();
    agent.vm_disk_attach(&a, &vol).await.unwrap();
    let attach = t.elapsed();
    let added = format!("CORRAL-TEST-DISK-ADDED sda serial={} size=65536 head=", serial(&vol.volume_id));
    wait_console(&agent, &a, &added, 1, DISK_DEADLINE).await;
    let seen = t.elapsed();
    assert!(!console(&agent, &a).await.contains(&format!("{added}CORRAL")), "a new volume reads as zeros");
    wait_console(&agent, &a, "CORRAL-TEST-DISK-WROTE sda CORRAL-DATA:vma:sda;", 1, DISK_DEADLINE).await;
    assert_eq!(agent.pool().layer_size(&vol.layer).await.unwrap(), Some(32 * MIB));
    assert!(devices(&agent, &a).await.contains(&vol.volume_id));
    assert_eq!(agent.vm_spec(&a).unwrap().unwrap().disks.last(), Some(&vol), "vm.json follows the attach");

    // Attaching it again is a no-op.
    agent.vm_disk_attach(&a, &vol).await.unwrap();
    assert_eq!(devices(&agent, &a).await.iter().filter(|d| d.contains(&vol.volume_id)).count(), 1);

    // While A has it, B cannot open it: QEMU's image locking refuses, and B is left as it was.
    let mut on_b = vol.clone();
    on_b.bus = DiskBus::Scsi { target: 0 };
    let before = nodes(&agent, &b).await;
    let err = chain(&agent.vm_disk_attach(&b, &on_b).await.unwrap_err());
    eprintln!("[error] attaching a volume another VM has: {err}");
    assert!(err.contains("lock"), "{err}");
    assert_eq!(nodes(&agent, &b).await, before);

    let t = Instant::now();
    agent.vm_disk_detach(&a, &vol.volume_id, false).await.unwrap();
    let detach = t.elapsed();
    wait_console(&agent, &a, "CORRAL-TEST-DISK-REMOVED sda", 1, DISK_DEADLINE).await;
    assert!(!has_any_of(&agent, &a, &vol.volume_id, &[&vol.layer]).await, "nothing of the volume left in A");
    agent.vm_disk_detach(&a, &vol.volume_id, false).await.unwrap(); // idempotent
    assert!(agent.vm_spec(&a).unwrap().unwrap().disks.iter().all(|d| d.volume_id != vol.volume_id));
    assert_eq!(disk_marker(&ctx.layer_path(&vol.layer)), "CORRAL-DATA:vma:sda;", "the host reads what guest A wrote");

    // B gets it now, reads A's bytes, writes its own.
    agent.vm_disk_attach(&b, &on_b).await.unwrap();
    wait_console(
        &agent,
        &b,
        &format!("CORRAL-TEST-DISK-ADDED sda serial={} size=65536 head=CORRAL-DATA:vma:sda;", serial(&vol.volume_id)),
        1,
        DISK_DEADLINE,
    )
    .await;
    wait_console(&agent, &b, "CORRAL-TEST-DISK-WROTE sda CORRAL-DATA:vmb:sda;", 1, DISK_DEADLINE).await;

    // Growing it live: QEMU and the guest (after the SCSI rescan it does) see the new size.
    agent.vm_disk_resize(&b, &vol.volume_id, 48 * MIB).await.unwrap();
    wait_console(&agent, &b, "CORRAL-TEST-DISK-SIZE sda 98304", 1, DISK_DEADLINE).await;
    assert_eq!(agent.pool().layer_size(&vol.layer).await.unwrap(), Some(48 * MIB));
    agent.vm_disk_resize(&b, &vol.volume_id, 16 * MIB).await.unwrap(); // never shrinks
    assert_eq!(agent.pool().layer_size(&vol.layer).await.unwrap(), Some(48 * MIB));

    // Forced detach works the same for a SCSI disk.
    agent.vm_disk_detach(&b, &vol.volume_id, true).await.unwrap();
    wait_console(&agent, &b, "CORRAL-TEST-DISK-REMOVED sda", 1, DISK_DEADLINE).await;
    assert!(!has_any_of(&agent, &b, &vol.volume_id, &[&vol.layer]).await);
    assert_eq!(disk_marker(&ctx.layer_path(&vol.layer)), "CORRAL-DATA:vmb:sda;");

    // Destroying the VMs leaves every layer: volumes outlive VMs.
    agent.vm_destroy(&a).await.unwrap();
    agent.vm_destroy(&b).await.unwrap();
    for l in [&vol.layer, &root_disk(&a).layer, &root_disk(&b).layer, &base_layer()] {
        assert!(ctx.layer_path(l).exists(), "{l} kept");
    }
    eprintln!("[figures] attach {attach:?} (guest sees the disk after {seen:?}), detach {detach:?}");
}

#[tokio::test]
async fn live_snapshots_then_stop_and_start_boot_from_the_new_tops() {
    let Some(ctx) = Ctx::new() else { return };
    let agent = ctx.agent(GRACEFUL_STOP_TIMEOUT).await;
    let id = boot(&ctx, &agent, "one").await;
    let root = root_disk(&id);
    let vol = data_disk(1, 16 * MIB);
    agent.vm_disk_attach(&id, &vol).await.unwrap();
    wait_console(&agent, &id, "CORRAL-TEST-DISK-WROTE sda CORRAL-DATA:one:sda;", 1, DISK_DEADLINE).await;

    // Snapshot the root and, twice, the data volume, while the guest runs.
    let (s_root, s1, s2) = (new_layer(), new_layer(), new_layer());
    let t = Instant::now();
    agent.vm_disk_snapshot(&id, &root.volume_id, &s_root).await.unwrap();
    let snapshot = t.elapsed();
    agent.vm_disk_snapshot(&id, &vol.volume_id, &s1).await.unwrap();
    agent.vm_disk_snapshot(&id, &vol.volume_id, &s2).await.unwrap();
    agent.vm_disk_snapshot(&id, &vol.volume_id, &s2).await.unwrap(); // a retry of the same one
    let pool = agent.pool();
    assert_eq!(pool.backing_of(&s_root).unwrap(), Some(root.layer.clone()));
    assert_eq!(pool.backing_of(&s1).unwrap(), Some(vol.layer.clone()));
    assert_eq!(pool.backing_of(&s2).unwrap(), Some(s1.clone()));
    let names: Vec<String> = nodes(&agent, &id).await.into_iter().map(|(n, _)| n).collect();
    for n in [s_root.as_str(), s1.as_str(), s2.as_str(), &root.volume_id, &vol.volume_id] {
        assert!(names.iter().any(|x| x == n), "node {n} in {names:?}");
    }
    let stored = agent.vm_spec(&id).unwrap().unwrap();
    assert_eq!((&stored.disks[0].layer, stored.disks[0].backing.as_ref()), (&s_root, Some(&root.layer)));
    assert_eq!((&stored.disks[1].layer, stored.disks[1].backing.as_ref()), (&s2, Some(&s1)));

    // A snapshot onto a layer that exists is refused, and changes nothing.
    let err = chain(&agent.vm_disk_snapshot(&id, &vol.volume_id, &root.layer).await.unwrap_err());
    assert!(err.contains("exists already"), "{err}");
    let err = chain(&agent.vm_disk_snapshot(&id, "vol-0ffffffffffffffff", &new_layer()).await.unwrap_err());
    assert!(err.contains("no volume"), "{err}");
    assert_eq!(state(&agent, &id).await, Some(VmState::Running));

    // Detaching after snapshots removes every node of the volume; the frozen layers hold what
    // the guest wrote before the first snapshot.
    agent.vm_disk_detach(&id, &vol.volume_id, false).await.unwrap();
    assert!(!has_any_of(&agent, &id, &vol.volume_id, &[&vol.layer, &s1, &s2]).await, "{:?}", nodes(&agent, &id).await);
    assert_eq!(disk_marker(&ctx.layer_path(&vol.layer)), "CORRAL-DATA:one:sda;");
    assert_eq!(disk_marker(&ctx.layer_path(&s2)), "CORRAL-DATA:one:sda;", "the new top reads through its chain");

    // The root volume cannot be detached from a running VM.
    let err = chain(&agent.vm_disk_detach(&id, &root.volume_id, false).await.unwrap_err());
    assert!(err.contains("root"), "{err}");

    // Stop and start from the stored spec (the new top) with a new tag: the guest reads what
    // it wrote before the snapshot through the new top, and writes into the new top only.
    agent.vm_stop(&id, true).await.unwrap();
    wait_state(&agent, &id, VmState::Stopped, STOPPED_DEADLINE).await;
    let mut spec = agent.vm_spec(&id).unwrap().unwrap();
    spec.boot = ctx.spec(&id, "corral.test=disks corral.tag=two").boot;
    agent.vm_start(&spec).await.unwrap();
    wait_state(&agent, &id, VmState::Running, RUNNING_DEADLINE).await;
    let pid = ctx.pid(&id).unwrap();
    let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap()).replace('\0', " ");
    assert!(cmdline.contains(&format!("{}.qcow2", s_root)), "QEMU opens the new top: {cmdline}");
    wait_console(&agent, &id, "CORRAL-TEST-DISK-ADDED vda serial=", 1, BOOT_DEADLINE).await;
    assert!(console(&agent, &id).await.contains("head=CORRAL-DATA:one:vda;"), "{}", console_tail(&agent, &id).await);
    wait_console(&agent, &id, "CORRAL-TEST-DISK-WROTE vda CORRAL-DATA:two:vda;", 1, BOOT_DEADLINE).await;
    agent.vm_stop(&id, true).await.unwrap();
    wait_state(&agent, &id, VmState::Stopped, STOPPED_DEADLINE).await;
    assert_eq!(disk_marker(&ctx.layer_path(&root.layer)), "CORRAL-DATA:one:vda;", "the snapshot layer never changed");
    assert_eq!(disk_marker(&ctx.layer_path(&s_root)), "CORRAL-DATA:two:vda;");
    agent.vm_destroy(&id).await.unwrap();
    eprintln!("[figures] live snapshot {snapshot:?}");
}

#[tokio::test]
async fn failed_attaches_leave_nothing_in_qemu_and_the_vm_runs_on() {
    let Some(ctx) = Ctx::new() else { return };
    let agent = ctx.agent(GRACEFUL_STOP_TIMEOUT).await;
    let id = boot(&ctx, &agent, "f").await;
    let pool = agent.pool();

    // blockdev-add fails: the layer's backing file vanished behind the agent's back.
    let backing = new_layer();
    pool.layer_create(&backing, None, 8 * MIB).await.unwrap();
    let broken = DiskSpec { backing: Some(backing.clone()), ..data_disk(3, 8 * MIB) };
    pool.layer_create(&broken.layer, Some(&backing), 8 * MIB).await.unwrap();
    std::fs::remove_file(ctx.layer_path(&backing)).unwrap();
    let before = nodes(&agent, &id).await;
    let err = chain(&agent.vm_disk_attach(&id, &broken).await.unwrap_err());
    eprintln!("[error] attach over a missing backing file: {err}");
    assert!(err.contains("blockdev-add") && err.contains(backing.as_str()), "QEMU's message: {err}");
    assert_eq!(nodes(&agent, &id).await, before);
    assert!(!has_any_of(&agent, &id, &broken.volume_id, &[&broken.layer]).await);

    // device_add fails (the SCSI target is taken): the node blockdev-add made is removed.
    let first = data_disk(5, 8 * MIB);
    agent.vm_disk_attach(&id, &first).await.unwrap();
    let clash = data_disk(5, 8 * MIB);
    let before = nodes(&agent, &id).await;
    let err = chain(&agent.vm_disk_attach(&id, &clash).await.unwrap_err());
    eprintln!("[error] attach at a taken SCSI target: {err}");
    assert!(err.contains("device_add") && err.contains("already used"), "{err}");
    assert_eq!(nodes(&agent, &id).await, before);
    assert!(!has_any_of(&agent, &id, &clash.volume_id, &[&clash.layer]).await);

    // The guest never saw either, and runs on with the good disk.
    wait_console(&agent, &id, "CORRAL-TEST-DISK-WROTE sda CORRAL-DATA:f:sda;", 1, DISK_DEADLINE).await;
    assert!(!console(&agent, &id).await.contains("sdb"));
    assert_eq!(state(&agent, &id).await, Some(VmState::Running));
    assert_eq!(agent.vm_qmp(&id, "query-status", None).await.unwrap()["status"], "running");

    // Bad requests.
    let err = chain(&agent.vm_disk_attach(&id, &DiskSpec { bus: DiskBus::Root, ..data_disk(0, MIB) }).await.unwrap_err());
    assert!(err.contains("root"), "{err}");
    let err = chain(&agent.vm_disk_attach(&id, &DiskSpec { volume_id: "vol-x,y".into(), ..data_disk(0, MIB) }).await.unwrap_err());
    assert!(err.contains("not a volume id"), "{err}");
    agent.vm_disk_detach(&id, "vol-0ffffffffffffffff", false).await.unwrap(); // not attached: fine

    // Only a running VM takes volume requests.
    agent.vm_stop(&id, true).await.unwrap();
    wait_state(&agent, &id, VmState::Stopped, STOPPED_DEADLINE).await;
    let vol = data_disk(1, MIB);
    assert!(matches!(agent.vm_disk_attach(&id, &vol).await, Err(AgentError::WrongState { state: VmState::Stopped, .. })));
    assert!(matches!(agent.vm_disk_detach(&id, &first.volume_id, false).await, Err(AgentError::WrongState { .. })));
    assert!(matches!(agent.vm_disk_snapshot(&id, &first.volume_id, &new_layer()).await, Err(AgentError::WrongState { .. })));
    assert!(matches!(agent.vm_disk_resize(&id, &first.volume_id, 2 * MIB).await, Err(AgentError::WrongState { .. })));
    assert!(matches!(agent.vm_disk_rebase(&id, &first.volume_id, &first.layer, None).await, Err(AgentError::WrongState { .. })));
    assert!(matches!(agent.vm_disk_attach("i-0000000000000dead", &vol).await, Err(AgentError::NoSuchVm(_))));
    agent.vm_destroy(&id).await.unwrap();
}

#[tokio::test]
async fn volumes_hot_plug_on_q35_too_and_survive_a_new_agent() {
    let Some(ctx) = Ctx::new() else { return };
    let id = ctx.reaper.id();
    let vol = data_disk(0, 8 * MIB);
    {
        let agent = ctx.agent(GRACEFUL_STOP_TIMEOUT).await;
        let mut spec = ctx.spec(&id, "");
        spec.boot = BootMode::Firmware;
        agent.vm_start(&spec).await.unwrap();
        wait_state(&agent, &id, VmState::Running, RUNNING_DEADLINE).await;
        let devs = devices(&agent, &id).await;
        assert!(devs.iter().any(|d| d.contains(&root_disk(&id).volume_id)), "{devs:?}");
        agent.vm_disk_attach(&id, &vol).await.unwrap();
        assert!(devices(&agent, &id).await.iter().any(|d| d.contains(&vol.volume_id)));
        // the agent goes away; QEMU stays
    }
    // A new agent finds the volume through QEMU and can snapshot and detach it.
    let agent = ctx.agent(GRACEFUL_STOP_TIMEOUT).await;
    wait_state(&agent, &id, VmState::Running, RUNNING_DEADLINE).await;
    let snap = new_layer();
    agent.vm_disk_snapshot(&id, &vol.volume_id, &snap).await.unwrap();
    // The root on q35 is a virtio-blk-pci, which query-block names by its QOM path.
    let root_snap = new_layer();
    agent.vm_disk_snapshot(&id, &root_disk(&id).volume_id, &root_snap).await.unwrap();
    agent.vm_disk_resize(&id, &root_disk(&id).volume_id, 2 * ROOT_SIZE).await.unwrap();
    assert_eq!(agent.pool().layer_size(&root_snap).await.unwrap(), Some(2 * ROOT_SIZE));
    agent.vm_disk_detach(&id, &vol.volume_id, false).await.unwrap();
    assert!(!has_any_of(&agent, &id, &vol.volume_id, &[&vol.layer, &snap]).await, "{:?}", nodes(&agent, &id).await);
    let stored = agent.vm_spec(&id).unwrap().unwrap();
    assert_eq!(stored.disks.len(), 1);
    assert_eq!((&stored.disks[0].layer, stored.disks[0].size_bytes), (&root_snap, 2 * ROOT_SIZE));
    agent.vm_destroy(&id).await.unwrap();
    assert!(ctx.layer_path(&snap).exists() && ctx.layer_path(&vol.layer).exists());
}

/// Runs a `qemu-io` command on a disk of the running VM, through its device (HMP). QEMU
/// prints qemu-io's own output on its (daemonized) stdout, so only the monitor's errors come
/// back: success is an empty answer.
async fn qemu_io(agent: &QemuAgent, id: &str, device: &str, command: &str) {
    let line = format!("qemu-io -d {device} \"{command}\"");
    let v = agent.vm_qmp(id, "human-monitor-command", Some(serde_json::json!({ "command-line": line }))).await.unwrap();
    assert_eq!(v.as_str(), Some(""), "{line}");
}

/// Writes `byte` over `len` bytes at `offset` of an attached volume, as the guest would.
async fn live_write(agent: &QemuAgent, id: &str, volume_id: &str, byte: u8, offset: u64, len: u64) {
    qemu_io(agent, id, volume_id, &format!("write -P {byte} {offset} {len}")).await;
}

/// What the data volume of the rebase test holds after every step: `(offset, len, byte)`.
const REBASE_DATA: [(u64, u64, u8); 7] = [
    (MIB, 256 << 10, 0x11),                  // in the volume's backing layer (a snapshot's)
    (2 * MIB, 64 << 10, 0x4a),               // the third layer's, over the second's
    (2 * MIB + (64 << 10), 192 << 10, 0x22), // the volume's first layer
    (3 * MIB, 256 << 10, 0x33),              // the first live snapshot's new top
    (4 * MIB, 256 << 10, 0x44),              // the second's
    (5 * MIB, 256 << 10, 0x55),              // the third's (the top)
    (6 * MIB, 256 << 10, 0x00),              // never written
];

/// Checks that the disk `top` is the top layer of reads [`REBASE_DATA`] and starts with the
/// guest's marker `marker`, from the host, through the chain the qcow2 headers name. While a
/// VM runs it, QEMU flushes the volume first (its metadata caches), and nothing writes
/// meanwhile.
async fn check_reads(agent: &QemuAgent, id: Option<&str>, volume_id: &str, top: &std::path::Path, marker: &str, when: &str) {
    if let Some(id) = id {
        qemu_io(agent, id, volume_id, "flush").await;
    }
    let disk = disk_head(top, 8 * MIB as usize);
    assert!(disk.starts_with(marker.as_bytes()), "{when}: the guest's marker {marker}");
    for (offset, len, byte) in REBASE_DATA {
        let range = &disk[offset as usize..(offset + len) as usize];
        assert!(range.iter().all(|&x| x == byte), "{when}: {byte:#x} at {offset}");
    }
}

#[tokio::test]
async fn live_rebase_drops_layers_from_a_running_volumes_chain() {
    let Some(ctx) = Ctx::new() else { return };
    let agent = ctx.agent(GRACEFUL_STOP_TIMEOUT).await;
    let id = boot(&ctx, &agent, "rb").await;
    let pool = agent.pool();

    // A volume made from a snapshot (layer b, holding data), and a second one from the same
    // snapshot, so b is open twice in this VM.
    let b = new_layer();
    pool.layer_create(&b, None, 32 * MIB).await.unwrap();
    let io = |cmd: String, path: std::path::PathBuf| {
        corral_exec::run_blocking("qemu-io", &["-f".as_ref(), "qcow2".as_ref(), "-c".as_ref(), cmd.as_ref(), path.as_os_str()]).unwrap();
    };
    io(format!("write -P 0x11 {} {}", MIB, 256 << 10), ctx.layer_path(&b));
    let vol = DiskSpec { backing: Some(b.clone()), ..data_disk(1, 32 * MIB) };
    let other = DiskSpec { backing: Some(b.clone()), ..data_disk(2, 32 * MIB) };
    let v0 = vol.layer.clone();
    agent.vm_disk_attach(&id, &vol).await.unwrap();
    wait_console(&agent, &id, "CORRAL-TEST-DISK-WROTE sda CORRAL-DATA:rb:sda;", 1, DISK_DEADLINE).await;
    agent.vm_disk_attach(&id, &other).await.unwrap();
    wait_console(&agent, &id, "CORRAL-TEST-DISK-WROTE sdb CORRAL-DATA:rb:sdb;", 1, DISK_DEADLINE).await;

    // Data in every layer, three live snapshots in between: b <- v0 <- s1 <- s2 <- top.
    let (s1, s2, top) = (new_layer(), new_layer(), new_layer());
    live_write(&agent, &id, &vol.volume_id, 0x22, 2 * MIB, 256 << 10).await;
    agent.vm_disk_snapshot(&id, &vol.volume_id, &s1).await.unwrap();
    live_write(&agent, &id, &vol.volume_id, 0x33, 3 * MIB, 256 << 10).await;
    agent.vm_disk_snapshot(&id, &vol.volume_id, &s2).await.unwrap();
    live_write(&agent, &id, &vol.volume_id, 0x44, 4 * MIB, 256 << 10).await;
    live_write(&agent, &id, &vol.volume_id, 0x4a, 2 * MIB, 64 << 10).await;
    agent.vm_disk_snapshot(&id, &vol.volume_id, &top).await.unwrap();
    live_write(&agent, &id, &vol.volume_id, 0x55, 5 * MIB, 256 << 10).await;
    check_reads(&agent, Some(&id), &vol.volume_id, &ctx.layer_path(&top), "CORRAL-DATA:rb:sda;", "before").await;
    let file_nodes = |nodes: &[(String, String)], l: &LayerId| nodes.iter().filter(|(_, f)| f.contains(l.as_str())).count();
    let nodes0 = nodes(&agent, &id).await;
    assert_eq!(file_nodes(&nodes0, &b), 4, "b is open in both chains (format and file nodes): {nodes0:?}");

    // Refusals change nothing: a new backing not below the layer, a layer not in the
    // volume's chain, an unknown volume; and the offline rebase, while QEMU has the layer.
    let refused = [
        (vol.volume_id.clone(), top.clone(), Some(other.layer.clone()), "is not below"),
        (vol.volume_id.clone(), s1.clone(), Some(s2.clone()), "is not below"),
        (vol.volume_id.clone(), other.layer.clone(), None, "is not in the chain"),
        ("vol-0ffffffffffffffff".to_string(), top.clone(), None, "no volume"),
    ];
    for (v, l, bk, needle) in refused {
        let err = chain(&agent.vm_disk_rebase(&id, &v, &l, bk.as_ref()).await.unwrap_err());
        eprintln!("[error] live rebase of {l} of {v} onto {bk:?}: {err}");
        assert!(err.contains(needle), "{err}");
    }
    let err = chain(&pool.layer_rebase(&top, Some(&b)).await.unwrap_err());
    eprintln!("[error] offline rebase of a layer a VM writes: {err}");
    assert!(err.contains("lock"), "{err}");
    assert_eq!(nodes(&agent, &id).await, nodes0);
    assert_eq!(pool.backing_of(&top).unwrap(), Some(s2.clone()));

    // 1. An intermediate layer: s2 onto v0, dropping s1 (a snapshot overlay node).
    let t = Instant::now();
    agent.vm_disk_rebase(&id, &vol.volume_id, &s2, Some(&v0)).await.unwrap();
    let intermediate = t.elapsed();
    assert_eq!(pool.backing_of(&s2).unwrap(), Some(v0.clone()));
    let n = nodes(&agent, &id).await;
    assert_eq!(file_nodes(&n, &s1), 0, "nothing has s1 open: {n:?}");
    assert!(n.iter().all(|(name, _)| name != s1.as_str()));
    check_reads(&agent, Some(&id), &vol.volume_id, &ctx.layer_path(&top), "CORRAL-DATA:rb:sda;", "after dropping s1").await;
    pool.layer_delete(&s1).await.unwrap();
    assert!(!ctx.layer_path(&s1).exists());

    // 2. The top onto b, dropping s2 and v0 (the node named after the volume, which the agent
    //    deletes). b is open twice, so QEMU finds this chain's by file name.
    let t = Instant::now();
    agent.vm_disk_rebase(&id, &vol.volume_id, &top, Some(&b)).await.unwrap();
    let top_rebase = t.elapsed();
    assert_eq!(pool.backing_of(&top).unwrap(), Some(b.clone()));
    let info: serde_json::Value = serde_json::from_slice(
        &corral_exec::run_blocking(
            "qemu-img",
            &["info".as_ref(), "-U".as_ref(), "--output=json".as_ref(), ctx.layer_path(&top).as_os_str()],
        )
        .unwrap()
        .stdout,
    )
    .unwrap();
    assert_eq!(info["backing-filename"].as_str(), ctx.layer_path(&b).to_str(), "the header names b by its absolute path");
    assert_eq!(info["backing-filename-format"].as_str(), Some("qcow2"));
    let n = nodes(&agent, &id).await;
    for l in [&s2, &v0] {
        assert_eq!(file_nodes(&n, l), 0, "nothing has {l} open: {n:?}");
    }
    assert!(n.iter().all(|(name, _)| name != &vol.volume_id && name != s2.as_str()), "{n:?}");
    assert!(n.iter().any(|(name, _)| name == &other.volume_id), "the other volume keeps its node");
    assert_eq!(file_nodes(&n, &b), 4, "b still open in both chains: {n:?}");
    check_reads(&agent, Some(&id), &vol.volume_id, &ctx.layer_path(&top), "CORRAL-DATA:rb:sda;", "after dropping s2 and v0").await;
    let stored = agent.vm_spec(&id).unwrap().unwrap();
    let d = stored.disks.iter().find(|d| d.volume_id == vol.volume_id).unwrap();
    assert_eq!((&d.layer, d.backing.as_ref()), (&top, Some(&b)), "vm.json follows");
    for l in [&s2, &v0] {
        pool.layer_delete(l).await.unwrap();
        assert!(!ctx.layer_path(l).exists());
    }
    // A retry of the same request is done already.
    agent.vm_disk_rebase(&id, &vol.volume_id, &top, Some(&b)).await.unwrap();

    // 3. The top onto nothing: b leaves this chain and stays in the other volume's. The job
    //    is started as an agent that died mid-request would have left it (copied, waiting to
    //    be finalized): the request finishes that one.
    let args = serde_json::json!({ "job-id": format!("rebase-{top}"), "device": top.as_str(), "auto-finalize": false });
    agent.vm_qmp(&id, "block-stream", Some(args)).await.unwrap();
    let end = Instant::now() + DISK_DEADLINE;
    loop {
        let jobs = agent.vm_qmp(&id, "query-jobs", None).await.unwrap();
        if jobs[0]["status"] == "pending" {
            break;
        }
        assert!(Instant::now() < end, "the job never got to pending: {jobs}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(pool.backing_of(&top).unwrap(), Some(b.clone()), "not switched before it is finalized");
    let t = Instant::now();
    agent.vm_disk_rebase(&id, &vol.volume_id, &top, None).await.unwrap();
    let flatten = t.elapsed();
    assert_eq!(agent.vm_qmp(&id, "query-jobs", None).await.unwrap(), serde_json::json!([]));
    assert_eq!(pool.backing_of(&top).unwrap(), None);
    assert_eq!(file_nodes(&nodes(&agent, &id).await, &b), 2, "only the other volume's chain has b");
    check_reads(&agent, Some(&id), &vol.volume_id, &ctx.layer_path(&top), "CORRAL-DATA:rb:sda;", "after dropping b").await;
    let stored = agent.vm_spec(&id).unwrap().unwrap();
    assert_eq!(stored.disks.iter().find(|d| d.volume_id == vol.volume_id).unwrap().backing, None);
    assert_eq!(state(&agent, &id).await, Some(VmState::Running));

    // A cold start opens the top from its header: the guest reads what it wrote before the
    // snapshots through the rebased volume.
    agent.vm_stop(&id, true).await.unwrap();
    wait_state(&agent, &id, VmState::Stopped, STOPPED_DEADLINE).await;
    assert!(matches!(agent.vm_disk_rebase(&id, &vol.volume_id, &top, None).await, Err(AgentError::WrongState { .. })));
    let mut spec = agent.vm_spec(&id).unwrap().unwrap();
    spec.boot = ctx.spec(&id, "corral.test=disks corral.tag=rb2").boot;
    agent.vm_start(&spec).await.unwrap();
    wait_state(&agent, &id, VmState::Running, RUNNING_DEADLINE).await;
    let added = format!("serial={} size=65536 head=CORRAL-DATA:rb:sd", serial(&vol.volume_id));
    wait_console(&agent, &id, &added, 1, BOOT_DEADLINE).await;
    wait_console(&agent, &id, "CORRAL-DATA:rb2:sd", 2, DISK_DEADLINE).await; // both volumes written
    agent.vm_destroy(&id).await.unwrap();
    check_reads(&agent, None, &vol.volume_id, &ctx.layer_path(&top), "CORRAL-DATA:rb2:sd", "after the second boot").await;
    eprintln!(
        "[figures] live rebase: intermediate layer {intermediate:?}, top over two layers {top_rebase:?}, top onto nothing {flatten:?}"
    );
}
