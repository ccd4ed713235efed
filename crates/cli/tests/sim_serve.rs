//! `corral serve --hypervisor sim` as a process, with the commands an operator runs beside it:
//! a private state directory (0700), one serve per state directory (a second on the same directory is refused at once, saying
//! why, while the first runs), and `corral credentials create | list | revoke` (a created key
//! signs requests at once, a revoked one is refused from the next request on, and the last key
//! cannot be revoked), and serve living on while such commands open its store.

use corral_testkit::Client;
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

/// The address the serve on `state` listens on, once it says.
fn wait_for_endpoint(state: &Path) -> std::net::SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(line) = std::fs::read_to_string(state.join("endpoint")).ok().and_then(|t| t.lines().next().map(String::from)) {
            return line.trim_start_matches("http://").parse().expect("endpoint address");
        }
        assert!(Instant::now() < deadline, "no endpoint file within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn corral(state: &Path, args: &[&str]) -> std::process::Output {
    corral_exec::std_command(env!("CARGO_BIN_EXE_corral")).args(args).arg("--state-dir").arg(state).output().expect("run corral")
}

#[test]
fn a_second_serve_on_the_same_state_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut first = serve(dir.path());
    wait_for_endpoint(dir.path());
    // The state directory is its owner's alone (the store holds the secret keys).
    assert_eq!(std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777, 0o700);

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

/// (access key id, secret) from `corral credentials [create]` output.
fn key_of(out: &std::process::Output) -> (String, String) {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string()).expect(name);
    (field("access key id:"), field("secret access key:"))
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path());
    let addr = wait_for_endpoint(dir.path());
    let root = key_of(&corral(dir.path(), &["credentials"]));
    let made = key_of(&corral(dir.path(), &["credentials", "create"]));
    assert_ne!(root.0, made.0);

    let as_root = Client::new(addr, &root.0, &root.1);
    let as_made = Client::new(addr, &made.0, &made.1);
    as_made.call("DescribeRegions", &[]).await.ok();

    let list = corral(dir.path(), &["credentials", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.contains(&root.0) && listed.contains(&made.0), "{listed}");
    assert!(!listed.contains(&made.1) && !listed.contains(&root.1), "list shows no secret: {listed}");

    let revoked = corral(dir.path(), &["credentials", "revoke", &made.0]);
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    as_made.call("DescribeRegions", &[]).await.err("AuthFailure");
    as_root.call("DescribeRegions", &[]).await.ok();

    // The root key is now the last: it stays.
    let last = corral(dir.path(), &["credentials", "revoke", &root.0]);
    assert!(!last.status.success());
    assert!(String::from_utf8_lossy(&last.stderr).contains("last access key"));
    as_root.call("DescribeRegions", &[]).await.ok();

    server.kill().unwrap();
    server.wait().unwrap();
}

/// Commands beside a running serve open its store (`corral credentials`, `corral images
/// import`). Each is a second process on the same SQLite file: it must find serve's lock on
/// the shared memory and leave that memory alone. Before 2026-12-05 serve dropped its own lock
/// at start (it narrowed `corral.db-shm`'s mode through a descriptor it then closed, and POSIX
/// locks go with any closed descriptor), so the next command truncated the memory serve had
/// mapped, and serve died of SIGBUS within a few hundred such commands.
#[tokio::test(flavor = "multi_thread")]
async fn serve_lives_through_commands_that_open_its_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path());
    let addr = wait_for_endpoint(dir.path());
    let root = key_of(&corral(dir.path(), &["credentials"]));
    let c = Client::new(addr, &root.0, &root.1);

    // The API reads the store all along (each read maps the shared memory's header).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = tokio::spawn({
        let (c, done) = (c.clone(), done.clone());
        async move {
            let mut calls = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if c.try_call("DescribeInstances", &[]).await.is_err() {
                    return Err(format!("the API stopped answering after {calls} calls"));
                }
                calls += 1;
            }
            Ok(calls)
        }
    });
    let state = dir.path().to_path_buf();
    let opened = tokio::task::spawn_blocking(move || {
        for n in 0..1000 {
            let out = corral(&state, &["credentials", "list"]);
            if !out.status.success() {
                return Err(format!("command {n} failed: {}", String::from_utf8_lossy(&out.stderr)));
            }
        }
        Ok(())
    })
    .await
    .unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let calls = reader.await.unwrap();
    let status = server.try_wait().unwrap();
    assert_eq!(status, None, "serve ended while commands opened its store ({opened:?}, {calls:?})");
    opened.unwrap();
    assert!(calls.unwrap() > 0);
    server.kill().unwrap();
    server.wait().unwrap();
}
