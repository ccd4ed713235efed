//! Finding, checking and killing a VM's QEMU process.
//!
//! After `-daemonize` QEMU is not our child (nor, after an agent restart, anyone's we know),
//! so it is tracked by the pid in its pid file, and a pid is only trusted while
//! `/proc/<pid>/cmdline` is a QEMU whose `-name` carries the instance id: pids are reused,
//! and a signal must never reach an unrelated process. A zombie has an empty cmdline, so it
//! counts as gone too.

use std::path::Path;
use std::time::Duration;

/// Reads a pid file; `None` when it is missing, empty or garbled.
pub(crate) fn read_pid_file(path: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse().ok().filter(|&pid: &i32| pid > 1)
}

/// Whether a NUL-separated `/proc/<pid>/cmdline` is QEMU running `instance_id`: the program is
/// a `qemu-system-*` (or the configured binary, `binary_name`), and `-name` names the instance,
/// either as `guest=<id>` among its options or as its first, implicit `guest` value.
pub(crate) fn cmdline_is_vm(cmdline: &[u8], binary_name: &str, instance_id: &str) -> bool {
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let Some(argv0) = args.first() else { return false };
    let prog = argv0.rsplit(|&b| b == b'/').next().unwrap_or(argv0);
    if !(prog.starts_with(b"qemu-system") || (!binary_name.is_empty() && prog == binary_name.as_bytes())) {
        return false;
    }
    args.windows(2).any(|w| (w[0] == b"-name" || w[0] == b"--name") && name_option_names(w[1], instance_id.as_bytes()))
}

fn name_option_names(value: &[u8], id: &[u8]) -> bool {
    // Instance ids hold no commas, so splitting on ',' cannot cut one in half.
    value.split(|&b| b == b',').enumerate().any(|(i, part)| part.strip_prefix(b"guest=") == Some(id) || (i == 0 && part == id))
}

/// The pid is alive (signal 0 reaches it) and is our VM's QEMU.
pub(crate) fn is_vm_process(pid: i32, binary_name: &str, instance_id: &str) -> bool {
    if !signal_reaches(pid) {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => cmdline_is_vm(&cmdline, binary_name, instance_id),
        Err(_) => false,
    }
}

/// Scans `/proc` for the VM's QEMU: the fallback when its pid file is missing or stale, so a
/// lost pid file never makes a running VM look stopped (and get a second QEMU on its disk).
pub(crate) fn find_vm_process(binary_name: &str, instance_id: &str) -> Option<i32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|&pid| pid > 1)
        .find(|&pid| is_vm_process(pid, binary_name, instance_id))
}

/// `kill(pid, 0)`: the process exists (EPERM also means it exists, but is not ours to signal).
#[allow(unsafe_code)] // libc::kill: no memory is shared; the pid is checked > 1 by callers
fn signal_reaches(pid: i32) -> bool {
    if pid <= 1 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// SIGKILLs `pid`, but only after checking it still is our VM's QEMU.
#[allow(unsafe_code)] // libc::kill on a pid verified just before
pub(crate) fn kill_vm_process(pid: i32, binary_name: &str, instance_id: &str) -> std::io::Result<()> {
    if !is_vm_process(pid, binary_name, instance_id) {
        return Ok(());
    }
    // SAFETY: sends a signal; no memory is involved.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

/// Waits until the VM's process is gone; `false` if it still runs at the deadline.
pub(crate) async fn wait_gone(pid: i32, binary_name: &str, instance_id: &str, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if !is_vm_process(pid, binary_name, instance_id) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmdline(args: &[&str]) -> Vec<u8> {
        let mut v = args.join("\0").into_bytes();
        v.push(0);
        v
    }

    #[test]
    fn recognises_our_qemu_only() {
        let id = "i-0123456789abcdef0";
        let ours = cmdline(&["/usr/bin/qemu-system-x86_64", "-name", "guest=i-0123456789abcdef0", "-m", "512M"]);
        assert!(cmdline_is_vm(&ours, "qemu-system-x86_64", id));
        assert!(cmdline_is_vm(&cmdline(&["qemu-system-x86_64", "-name", id]), "", id));
        assert!(cmdline_is_vm(&cmdline(&["qemu-system-x86_64", "-name", "x,guest=i-0123456789abcdef0,debug-threads=on"]), "", id));
        // Another instance, a longer id sharing the prefix, another program, no -name.
        assert!(!cmdline_is_vm(&ours, "", "i-0123456789abcdef1"));
        assert!(!cmdline_is_vm(&cmdline(&["qemu-system-x86_64", "-name", "guest=i-0123456789abcdef01"]), "", id));
        assert!(!cmdline_is_vm(&cmdline(&["/bin/sleep", "-name", "guest=i-0123456789abcdef0"]), "", id));
        assert!(!cmdline_is_vm(&cmdline(&["qemu-system-x86_64", "-m", "guest=i-0123456789abcdef0"]), "", id));
        assert!(!cmdline_is_vm(b"", "", id), "a zombie's cmdline is empty");
        // A configured wrapper binary name counts as QEMU.
        assert!(cmdline_is_vm(&cmdline(&["/opt/myqemu", "-name", "guest=i-0123456789abcdef0"]), "myqemu", id));
    }

    #[test]
    fn pid_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("qemu.pid");
        assert_eq!(read_pid_file(&p), None);
        std::fs::write(&p, "4242\n").unwrap();
        assert_eq!(read_pid_file(&p), Some(4242));
        std::fs::write(&p, "x").unwrap();
        assert_eq!(read_pid_file(&p), None);
        std::fs::write(&p, "1").unwrap();
        assert_eq!(read_pid_file(&p), None, "never trust pid 1");
    }

    #[test]
    fn this_process_is_not_a_vm_and_is_never_killed() {
        let me = std::process::id() as i32;
        assert!(signal_reaches(me));
        assert!(!is_vm_process(me, "", "i-0123456789abcdef0"));
        kill_vm_process(me, "", "i-0123456789abcdef0").unwrap(); // a no-op: not our VM
        assert!(!signal_reaches(0) && !signal_reaches(1));
    }
}
