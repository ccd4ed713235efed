//! `corral doctor`: checks the host and says what to install.

use crate::StateArgs;

pub async fn run(state: &StateArgs) -> anyhow::Result<()> {
    let mut problems = 0;
    let mut check = |ok: bool, what: &str, fix: &str| {
        if ok {
            println!("ok    {what}");
        } else {
            problems += 1;
            println!("MISS  {what}: {fix}");
        }
    };
    let has = |bin: &str| corral_exec::run_blocking("sh", &["-c", &format!("command -v {bin}")]).is_ok();
    check(has("qemu-system-x86_64"), "qemu-system-x86_64", "run scripts/install-deps.sh (QEMU 10 from bookworm-backports)");
    check(has("qemu-img"), "qemu-img", "apt-get install qemu-utils");
    check(has("nft"), "nftables", "apt-get install nftables");
    check(has("ip"), "iproute2", "apt-get install iproute2");
    check(has("mmdebstrap"), "mmdebstrap (builds corral-debian-12)", "apt-get install mmdebstrap");
    let accel = corral_agent::qemu::detect_accel();
    println!(
        "info  accelerator: {}{}",
        accel.as_str(),
        if accel.as_str() == "tcg" { " (no hardware KVM: guests run under software emulation, slower)" } else { "" }
    );
    let cache = corral_images::default_cache_dir();
    for name in corral_images::DEFAULT_IMAGES {
        match corral_images::cached(name, &cache) {
            Some(b) => println!("ok    image {name}: {}", b.base_disk.display()),
            None => println!("info  image {name}: not built yet (built at first `corral serve`, or `corral images build`)"),
        }
    }
    if let Ok(out) = corral_exec::run_blocking("df", &["-h", "--output=avail", &state.state_dir.display().to_string()]) {
        let avail = String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap_or("").trim().to_string();
        println!("info  free space at {}: {avail}", state.state_dir.display());
    }
    storage_report(state).await;
    if problems > 0 {
        anyhow::bail!("{problems} problem(s) found");
    }
    Ok(())
}

/// Checks every region's store (`corral.db`, `regions/*/corral.db`) for references to records
/// that do not exist (see `corral_control::consistency`).
pub fn stores(state: &StateArgs) -> anyhow::Result<()> {
    let mut dbs = vec![state.state_dir.join("corral.db")];
    if let Ok(entries) = std::fs::read_dir(state.state_dir.join("regions")) {
        let mut more: Vec<_> = entries.flatten().map(|e| e.path().join("corral.db")).filter(|p| p.exists()).collect();
        more.sort();
        dbs.extend(more);
    }
    let mut problems = 0;
    for db in dbs.iter().filter(|p| p.exists()) {
        let store = corral_store::Store::open(db)?;
        let found = store.read(corral_control::consistency::problems).map_err(|e| anyhow::anyhow!("{e}: {:?}", e.internal))?;
        if found.is_empty() {
            println!("ok    store {}", db.display());
        }
        for p in &found {
            println!("FAIL  store {}: {p}", db.display());
        }
        problems += found.len();
    }
    if problems > 0 {
        anyhow::bail!("{problems} inconsistency(ies) found");
    }
    Ok(())
}

/// The storage pool's use: layer files and the bytes they really occupy, with what the store
/// says refers to them (volumes, snapshots, images), so space nobody owns shows up.
async fn storage_report(state: &StateArgs) {
    use corral_agent_api::Storage;
    let pool = corral_agent::pool::Pool::new(state.state_dir.join(crate::POOL_DIR));
    match pool.usage().await {
        Ok(u) => println!(
            "info  storage pool {}: {} layer file(s), {} used, {} free",
            state.state_dir.join(crate::POOL_DIR).display(),
            u.layers,
            human_bytes(u.used_bytes),
            human_bytes(u.free_bytes)
        ),
        Err(e) => println!("info  storage pool: cannot be read ({e})"),
    }
    let db = state.state_dir.join("corral.db");
    if !db.exists() {
        return;
    }
    let Ok(store) = corral_store::Store::open(&db) else { return };
    let counts = store.read(|tx| {
        let volumes = tx.doc_list::<corral_store::VolumeRecord>()?;
        let snapshots = tx.doc_list::<corral_store::SnapshotRecord>()?;
        let layers = tx.doc_list::<corral_store::LayerRecord>()?;
        let images = tx.image_list()?;
        Ok::<_, corral_store::StoreError>((volumes, snapshots, layers, images))
    });
    if let Ok((volumes, snapshots, layers, images)) = counts {
        let provisioned: u64 = volumes.iter().map(|v| v.size_gib).sum();
        println!(
            "info  storage records: {} volume(s) ({provisioned} GiB provisioned), {} snapshot(s), {} image(s), {} layer(s)",
            volumes.len(),
            snapshots.len(),
            images.len(),
            layers.len()
        );
        if let Ok(files) = pool.layers() {
            let known: std::collections::HashSet<&str> = layers.iter().map(|l| l.layer_id.as_str()).collect();
            let orphans: Vec<String> = files.iter().filter(|f| !known.contains(f.as_str())).map(|f| f.to_string()).collect();
            if !orphans.is_empty() {
                println!("warn  {} layer file(s) in the pool that nothing refers to: {}", orphans.len(), orphans.join(", "));
            }
        }
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}
