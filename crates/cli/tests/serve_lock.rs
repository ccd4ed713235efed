//! One `corral serve` per state directory: a second one on the same directory is refused at
//! once, saying why, while the first runs; once the first is gone, it starts.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn serve(state: &Path) -> Child {
    corral_exec::std_command(env!("CARGO_BIN_EXE_corral"))
        .args(["serve", "--hypervisor", "sim", "--listen", "127.0.0.1:0", "--images", "none", "--regions", "local-1", "--state-dir"])
        .arg(state)
        .env("CORRAL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start corral serve")
}

fn wait_for_endpoint(state: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !state.join("endpoint").exists() {
        assert!(Instant::now() < deadline, "no endpoint file within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_serve_on_the_same_state_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = serve(dir.path());
    wait_for_endpoint(dir.path());

    let second = serve(dir.path());
    let out = second.wait_with_output().expect("the second one ends");
    assert!(!out.status.success(), "a second serve ran on the same state directory");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another `corral serve` is running"), "{stderr}");
    assert!(first.try_wait().unwrap().is_none(), "the first one is still serving");

    first.kill().unwrap();
    first.wait().unwrap();
    std::fs::remove_file(dir.path().join("endpoint")).unwrap();
    let mut again = serve(dir.path());
    wait_for_endpoint(dir.path());
    assert!(again.try_wait().unwrap().is_none());
    again.kill().unwrap();
    again.wait().unwrap();
}
