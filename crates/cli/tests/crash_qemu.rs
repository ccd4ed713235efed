//! Crash injection on real QEMU: the cycles of `crash_sim.rs` (launch, attach, live snapshot,
//! stop, start, detach, terminate, delete) on `corral-minimal` guests, `corral serve` killed with
//! SIGKILL at a random instant of each and restarted (guests outlive it and are re-adopted).
//! After each restart, besides the API's invariants (`common/crash.rs`), the host is checked
//! against the records once everything is cleaned up: no QEMU process, VM directory, namespace
//! (with its taps and nftables table), host guard table, dnsmasq file, public-IP route, temporary file or layer file that no
//! record names, after the sweep (`--sweep-grace-secs 2`: what the crash left is swept within
//! a few seconds of the restart, while the image the first start imports is not taken for a
//! leftover between its file and its record).

mod common;

use common::crash::{self, Ledger};
use common::*;
use rand::{Rng, SeedableRng};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ZONE: &str = "local-1a";
const DEADLINE: Duration = Duration::from_secs(120);
/// The storage pool under the state directory (`corral`'s `POOL_DIR`).
const POOL_DIR: &str = "pool";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_instants_leaks_nothing_on_the_host() {
    if skip() {
        return;
    }
    let cycles: usize = std::env::var("CORRAL_CRASH_QEMU_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let mut rng = rand::rngs::StdRng::seed_from_u64(crash::seed());
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut cloud = Cloud::start_args("minimal", &["--sweep-grace-secs", "2"]);
    let image = cloud.image("corral-minimal").await;

    let began = Instant::now();
    crash::cycle(&cloud.c, &image, ZONE, 0, &ledger, DEADLINE).await.expect("an uncut cycle");
    let span = began.elapsed();
    eprintln!("an uncut cycle takes {span:?}");
    wait_clean_host(&cloud).await;

    let mut cut = 0;
    for n in 1..=cycles {
        let c = cloud.c.clone();
        let (img, l) = (image.clone(), ledger.clone());
        let work = tokio::spawn(async move { crash::cycle(&c, &img, ZONE, n, &l, DEADLINE).await });
        let at = Duration::from_micros(rng.gen_range(0..=span.as_micros() as u64));
        tokio::time::sleep(at).await;
        cloud.kill_server();
        if work.await.expect("the cycle's task").is_err() {
            cut += 1;
        }
        if let Err(e) = crash::store_consistent(&cloud.state) {
            panic!("cycle {n}, killed after {at:?}: the store is inconsistent:\n{e}");
        }
        cloud.restart_server();
        let problems = crash::check_and_clean(&cloud.c, &image, ZONE, n, &ledger, DEADLINE).await;
        assert!(problems.is_empty(), "cycle {n}, killed after {at:?}:\n{}", problems.join("\n"));
        wait_clean_host(&cloud).await;
        eprintln!("cycle {n}: killed after {at:?}; nothing lost, nothing left on the host");
    }
    eprintln!("{cycles} cycles on QEMU: {cut} cut off by the kill; no problem, no leak");
    assert!(cut > 0, "no kill landed inside a cycle");
}

/// Waits until the host holds nothing that the records do not name, with every instance
/// terminated: no QEMU process of this cloud, no VM directory, no VPC namespace, no route to a
/// public IP in the test's host namespace, no temporary file in the pool, and no layer file
/// without its record.
async fn wait_clean_host(cloud: &Cloud) {
    let start = Instant::now();
    loop {
        let left = leftovers(cloud);
        if left.is_empty() {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "left on the host after {DEADLINE:?}:\n{}", left.join("\n"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn leftovers(cloud: &Cloud) -> Vec<String> {
    let mut out = Vec::new();
    let qemu = pids_with("qemu-system");
    for pid in pids_with(&cloud.state.display().to_string()).into_iter().filter(|p| qemu.contains(p)) {
        out.push(format!("QEMU process {pid}"));
    }
    for e in std::fs::read_dir(&cloud.state).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("i-") && e.path().is_dir() {
            out.push(format!("VM directory {name}"));
        }
    }
    out.extend(cloud.net.namespaces().into_iter().map(|ns| format!("namespace {ns}")));
    for e in std::fs::read_dir(corral_net::runtime_dir(&cloud.state)).into_iter().flatten().flatten() {
        out.push(format!("network runtime file {}", e.path().display()));
    }
    let routes = corral_exec::run_blocking("ip", &["-n", &cloud.net.host_ns, "route", "show"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.extend(routes.lines().filter(|l| l.starts_with("198.18.") || l.starts_with("198.19.")).map(|l| format!("public route {l}")));
    let tables = corral_exec::run_blocking("ip", &["netns", "exec", &cloud.net.host_ns, "nft", "list", "tables"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.extend(tables.lines().filter(|l| l.contains("corral")).map(|l| format!("nftables {l} in the host namespace")));
    let store = corral_store::Store::open(&cloud.state.join("corral.db")).expect("open the store");
    let layers: std::collections::HashSet<String> =
        store.read(|tx| tx.doc_list::<corral_store::LayerRecord>()).unwrap().into_iter().map(|l| l.layer_id).collect();
    for e in std::fs::read_dir(cloud.state.join(POOL_DIR)).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        match name.strip_suffix(".qcow2") {
            _ if name.ends_with(".tmp") => out.push(format!("temporary file {name}")),
            Some(id) if !layers.contains(id) => out.push(format!("layer file {name} without a record")),
            _ => {}
        }
    }
    out
}
