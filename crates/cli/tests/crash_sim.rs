//! Crash injection on the simulated hypervisor: 100 cycles of launch, attach, snapshot, stop,
//! start, detach, terminate and delete, `corral serve` killed with SIGKILL at a random instant
//! of each, restarted, and checked (see `common/crash.rs` for the invariants). The simulated
//! hypervisor keeps its VMs in memory, so this tests the store and the control plane across
//! crashes; `crash_qemu.rs` checks processes, namespaces and pool files on real guests.

mod common;

use common::crash::{self, Ledger};
use rand::{Rng, SeedableRng};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ZONE: &str = "local-1a";
const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_instants_loses_nothing_and_leaves_the_store_consistent() {
    let cycles: usize = std::env::var("CORRAL_CRASH_CYCLES").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let mut rng = rand::rngs::StdRng::seed_from_u64(crash::seed());
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    // One cycle without a kill says how long a cycle takes; kills fall anywhere in that span.
    let mut server = common::start_sim_server(dir.path(), &[]);
    let image = wait_image(&server.client).await;
    let began = Instant::now();
    crash::cycle(&server.client, &image, ZONE, 0, &ledger, DEADLINE).await.expect("an uncut cycle");
    let span = began.elapsed();
    eprintln!("an uncut cycle takes {span:?}");

    let (mut cut, mut whole) = (0, 0);
    for n in 1..=cycles {
        let c = server.client.clone();
        let (img, l) = (image.clone(), ledger.clone());
        let work = tokio::spawn(async move { crash::cycle(&c, &img, ZONE, n, &l, DEADLINE).await });
        let at = Duration::from_micros(rng.gen_range(0..=span.as_micros() as u64));
        tokio::time::sleep(at).await;
        drop(server); // SIGKILL, then wait for it
        match work.await.expect("the cycle's task") {
            Ok(()) => whole += 1,
            Err(_) => cut += 1,
        }
        if let Err(e) = crash::store_consistent(dir.path()) {
            panic!("cycle {n}, killed after {at:?}: the store is inconsistent:\n{e}");
        }
        server = common::start_sim_server(dir.path(), &[]);
        let problems = crash::check_and_clean(&server.client, &image, ZONE, n, &ledger, DEADLINE).await;
        assert!(problems.is_empty(), "cycle {n}, killed after {at:?}:\n{}", problems.join("\n"));
    }
    drop(server);
    crash::store_consistent(dir.path()).expect("consistent at the end");
    eprintln!("{cycles} cycles: {cut} cut off by the kill, {whole} finished before it; no problem found");
    assert!(cut >= cycles / 4, "too few kills landed inside a cycle ({cut} of {cycles}) for the test to mean much");
}

async fn wait_image(c: &corral_testkit::Client) -> String {
    corral_testkit::wait_for("corral-minimal registered", Duration::from_secs(30), || async {
        c.call("DescribeImages", &[("Filter.1.Name", "name"), ("Filter.1.Value.1", "corral-minimal")]).await.text("imageId")
    })
    .await
}
