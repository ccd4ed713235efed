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
    if problems > 0 {
        anyhow::bail!("{problems} problem(s) found");
    }
    Ok(())
}
