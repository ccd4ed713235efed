//! Helpers shared by the image tests: the cache directory, booting an image under QEMU the way
//! the VMM does (microvm, direct kernel boot, TCG), waiting on its serial console and talking
//! QMP. Everything waits on conditions with deadlines, never on fixed sleeps.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use corral_images::BuiltImage;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

pub fn cache_dir() -> PathBuf {
    corral_images::default_cache_dir()
}

/// Building corral-debian-12 needs root (mmdebstrap --mode=root); says so when skipping.
pub fn running_as_root(test: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    if !root {
        eprintln!("[images] SKIPPED {test}: building corral-debian-12 needs root");
    }
    root
}

pub fn progress(line: &str) {
    eprintln!("[images] {line}");
}

/// The host TSC frequency in kHz, for `tsc_early_khz=` (microvm under TCG hangs without it).
pub fn host_khz() -> u64 {
    if let Ok(s) = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/tsc_freq_khz") {
        if let Ok(k) = s.trim().parse() {
            return k;
        }
    }
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("cpu MHz").and_then(|r| r.split(':').nth(1)))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|mhz| (mhz * 1000.0) as u64)
        .unwrap_or(2_000_000)
}

/// A running guest: QEMU as the VMM starts it, with a fresh qcow2 overlay.
pub struct Guest {
    pub dir: tempfile::TempDir,
    pub child: tokio::process::Child,
    pub console: PathBuf,
    pub qmp: PathBuf,
    pub started: Instant,
}

pub async fn boot(image: &BuiltImage, memory_mib: u32) -> Guest {
    boot_with(image, memory_mib, &[], &[]).await
}

/// Boots like [`boot`], running QEMU through `wrapper` (e.g. `ip netns exec NS`, which execs,
/// so the child's pid is QEMU's) and with `extra` arguments appended (e.g. a NIC).
pub async fn boot_with(image: &BuiltImage, memory_mib: u32, wrapper: &[String], extra: &[String]) -> Guest {
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("overlay.qcow2");
    corral_exec::run(
        "qemu-img",
        &[
            "create".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            "-b".as_ref(),
            image.base_disk.as_os_str(),
            "-F".as_ref(),
            "qcow2".as_ref(),
            overlay.as_os_str(),
        ] as &[&std::ffi::OsStr],
    )
    .await
    .unwrap();
    let console = dir.path().join("console.log");
    let qmp = dir.path().join("qmp.sock");
    let append = format!("console=ttyS0 tsc_early_khz={} tsc=reliable {}", host_khz(), image.cmdline);
    let mut args: Vec<String> = vec![
        "-name".into(),
        "corral-image-test".into(),
        "-M".into(),
        "microvm,rtc=on,pic=off".into(),
        "-accel".into(),
        "tcg".into(),
        "-cpu".into(),
        "max".into(),
        "-m".into(),
        memory_mib.to_string(),
        "-smp".into(),
        "1".into(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-nographic".into(),
        "-kernel".into(),
        image.kernel.as_ref().unwrap().display().to_string(),
        "-initrd".into(),
        image.initrd.as_ref().unwrap().display().to_string(),
        "-append".into(),
        append,
        "-drive".into(),
        format!("id=root,file={},format=qcow2,if=none", overlay.display()),
        "-device".into(),
        "virtio-blk-device,drive=root".into(),
        "-serial".into(),
        format!("file:{}", console.display()),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", qmp.display()),
    ];
    args.extend(extra.iter().cloned());
    let mut argv: Vec<String> = wrapper.to_vec();
    argv.push("qemu-system-x86_64".into());
    argv.extend(args);
    eprintln!("[images] {}", argv.join(" "));
    let started = Instant::now();
    let child = corral_exec::command(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start qemu-system-x86_64");
    Guest { dir, child, console, qmp, started }
}

impl Guest {
    pub fn console_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).into_owned()
    }

    /// Waits until the console shows `needle` (or QEMU exits, or the deadline passes).
    pub async fn wait_console(&mut self, needle: &str, limit: Duration) -> Result<Duration, String> {
        let deadline = Instant::now() + limit;
        loop {
            if self.console_text().contains(needle) {
                return Ok(self.started.elapsed());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("QEMU exited ({status}) before `{needle}`:\n{}", self.console_text()));
            }
            if Instant::now() > deadline {
                return Err(format!("no `{needle}` within {limit:?}:\n{}", self.console_text()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the console shows `needle` at least `count` times.
    pub async fn wait_console_count(&mut self, needle: &str, count: usize, limit: Duration) -> Result<Duration, String> {
        let deadline = Instant::now() + limit;
        loop {
            if self.console_text().matches(needle).count() >= count {
                return Ok(self.started.elapsed());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("QEMU exited ({status}) before `{needle}` x{count}:\n{}", self.console_text()));
            }
            if Instant::now() > deadline {
                return Err(format!("no `{needle}` x{count} within {limit:?}:\n{}", self.console_text()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends one QMP command (after the capabilities handshake) and returns its reply line.
    pub async fn qmp(&self, command: &str) -> String {
        let stream = UnixStream::connect(&self.qmp).await.expect("connect to QMP");
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let greeting = lines.next_line().await.unwrap().unwrap();
        assert!(greeting.contains("QMP"), "{greeting}");
        write.write_all(b"{\"execute\":\"qmp_capabilities\"}\n").await.unwrap();
        next_return(&mut lines).await;
        write.write_all(format!("{{\"execute\":\"{command}\"}}\n").as_bytes()).await.unwrap();
        next_return(&mut lines).await
    }

    /// Waits for QEMU to exit; `Err` after `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Result<std::process::ExitStatus, String> {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("QEMU still running after {limit:?}:\n{}", self.console_text())),
        }
    }
}

async fn next_return(lines: &mut tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>) -> String {
    loop {
        let line = lines.next_line().await.unwrap().expect("QMP closed");
        if line.contains("\"return\"") || line.contains("\"error\"") {
            return line;
        }
    }
}

pub fn is_elf(path: &Path) -> bool {
    std::fs::read(path).map(|d| d.starts_with(b"\x7fELF")).unwrap_or(false)
}
