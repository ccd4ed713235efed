//! The QEMU command line for one VM, built as a pure function of the spec, the VM's files and
//! the host facts, so every flag can be checked in a unit test without starting anything.
//!
//! Two machine shapes:
//! - [`BootMode::DirectKernel`] on `-M microvm,rtc=on`: qboot, the kernel's PVH entry,
//!   virtio-mmio devices found through ACPI. Fastest boot; no SMBIOS, no hotplug.
//! - [`BootMode::Firmware`] on `-M q35`: SeaBIOS boots the disk's own bootloader; the disk is
//!   virtio-blk-pci and SMBIOS type 1 carries the EC2 identity cloud-init looks for.
//!
//! Disks, the same on both: each volume is one `-blockdev` qcow2 node over its top layer in
//! the storage pool (the backing chain opens from the qcow2 headers), **named after the volume
//! id**, and a device with the volume id as its qdev id and (without the dash) its serial.
//! The root is virtio-blk (`virtio-blk-device` / `virtio-blk-pci`); data volumes are `scsi-hd`
//! on the one virtio-scsi controller every VM has (`scsi0`), so they hot-plug on microvm too.
//! The node that QEMU's monitor owns (the only kind `blockdev-del` removes) is always the one
//! named after the volume, whatever live snapshots stacked on it since (those overlays are
//! named after their layer ids and belong to the device), so detaching needs no graph walk.
//!
//! Every VM runs daemonized (`-daemonize -pidfile`, QEMU calls `setsid`) so it outlives the
//! agent, and carries `-name guest=<instance-id>` so a re-adopting agent can tell its process
//! from an unrelated one that reused the pid.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use corral_agent_api::{BootMode, DiskBus, DiskSpec, VmSpec};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::pool::Pool;

use super::files::VmDir;
use super::host::Accel;

/// Host-dependent choices for a launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LaunchOptions {
    pub accel: Accel,
    /// `-accel tcg,tb-size=N` (MiB); `None` leaves QEMU's default (a 1 GiB reservation).
    pub tcg_tb_size_mib: Option<u32>,
    /// Host TSC frequency for `tsc_early_khz=` (TCG direct-kernel boots only).
    pub tsc_khz: Option<u64>,
}

/// The kernel command line for a direct-kernel boot: the serial console, under TCG the TSC
/// hints without which about one boot in five hangs on microvm, then the image's own.
pub(crate) fn kernel_cmdline(opts: &LaunchOptions, image_cmdline: &str) -> String {
    let mut parts = vec!["console=ttyS0".to_string()];
    if opts.accel == Accel::Tcg {
        if let Some(khz) = opts.tsc_khz {
            parts.push(format!("tsc_early_khz={khz}"));
            parts.push("tsc=reliable".to_string());
        }
    }
    let extra = image_cmdline.trim();
    if !extra.is_empty() {
        parts.push(extra.to_string());
    }
    parts.join(" ")
}

/// A UUID derived from the instance id, starting `ec2` so cloud-init's ds-identify picks the
/// Ec2 data source (it wants DMI `product_uuid` and `product_serial` equal and `ec2`-prefixed).
pub fn ec2_uuid(instance_id: &str) -> String {
    let digest = Sha256::digest(format!("corral-instance-uuid:{instance_id}").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let hex = format!("ec2{}", &hex[3..]);
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// QEMU's option syntax ends a value at a comma; a literal comma is written twice.
fn opt_value(value: &OsStr) -> OsString {
    let mut out = Vec::with_capacity(value.len());
    for &b in value.as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

/// `prefix` followed by `value` escaped for QEMU's option syntax.
fn opt(prefix: &str, value: impl AsRef<OsStr>) -> OsString {
    let mut s = OsString::from(prefix);
    s.push(opt_value(value.as_ref()));
    s
}

/// The virtio-scsi controller's qdev id; its bus is `scsi0.0`.
pub(crate) const SCSI_CONTROLLER: &str = "scsi0";

/// Volume ids are `vol-` plus hex digits (8 or 17 on EC2). They name a QEMU block node (at
/// most 31 characters, a letter first) and a device, so nothing else is accepted.
pub(crate) fn is_volume_id(id: &str) -> bool {
    id.strip_prefix("vol-").is_some_and(|body| !body.is_empty() && body.len() <= 26 && body.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The SCSI / virtio-blk serial the guest sees: the volume id without its dash, as an EC2
/// Nitro guest sees its NVMe serial (`vol0123...`).
pub(crate) fn disk_serial(volume_id: &str) -> String {
    volume_id.replacen('-', "", 1)
}

/// Checks a VM's disks: one root (`DiskBus::Root`) and it comes first, well-formed and
/// distinct volume ids, distinct SCSI targets.
pub(crate) fn check_disks(disks: &[DiskSpec]) -> Result<(), String> {
    match disks.first() {
        Some(d) if d.bus == DiskBus::Root => {}
        Some(d) => return Err(format!("the first disk ({}) must be the root disk", d.volume_id)),
        None => return Err("a VM needs a root disk".to_string()),
    }
    let mut seen: Vec<&DiskSpec> = Vec::new();
    for d in disks {
        if !is_volume_id(&d.volume_id) {
            return Err(format!("{:?} is not a volume id", d.volume_id));
        }
        if let Some(other) = seen.iter().find(|o| o.volume_id == d.volume_id) {
            return Err(format!("volume {} is listed twice (layers {} and {})", d.volume_id, other.layer, d.layer));
        }
        if let Some(other) = seen.iter().find(|o| o.bus == d.bus) {
            return Err(format!("volumes {} and {} are both at {:?}", other.volume_id, d.volume_id, d.bus));
        }
        seen.push(d);
    }
    Ok(())
}

/// `-blockdev` / `blockdev-add` options for a volume: a qcow2 node named after the volume
/// over its top layer's file; the backing chain opens from the qcow2 headers.
pub(crate) fn blockdev(volume_id: &str, layer_path: &std::path::Path) -> Value {
    json!({
        "driver": "qcow2",
        "node-name": volume_id,
        "discard": "unmap",
        "file": { "driver": "file", "filename": layer_path.to_string_lossy(), "discard": "unmap" },
    })
}

/// `-device` / `device_add` options for a volume's device.
pub(crate) fn disk_device(boot: &BootMode, disk: &DiskSpec) -> Value {
    let serial = disk_serial(&disk.volume_id);
    match (disk.bus, boot) {
        (DiskBus::Root, BootMode::DirectKernel { .. }) => {
            json!({ "driver": "virtio-blk-device", "id": disk.volume_id, "drive": disk.volume_id, "serial": serial })
        }
        (DiskBus::Root, BootMode::Firmware) => {
            json!({ "driver": "virtio-blk-pci", "id": disk.volume_id, "drive": disk.volume_id, "serial": serial, "bootindex": 0 })
        }
        (DiskBus::Scsi { target }, _) => scsi_disk_device(&disk.volume_id, target),
    }
}

/// A data volume's `scsi-hd` at SCSI target `target`, LUN 0, of the VM's controller.
pub(crate) fn scsi_disk_device(volume_id: &str, target: u8) -> Value {
    json!({
        "driver": "scsi-hd",
        "id": volume_id,
        "drive": volume_id,
        "bus": format!("{SCSI_CONTROLLER}.0"),
        "scsi-id": target,
        "lun": 0,
        "serial": disk_serial(volume_id),
    })
}

/// microvm for direct-kernel boots, without its legacy 8259 PIC. A Debian kernel on microvm
/// never programs that PIC, so its vector base stays 0: under TCG a PIT tick that reaches the
/// CPU through it when the kernel first enables interrupts arrives as vector 0, read as a
/// divide error, and the boot dies before the console starts (6-7 boots in 40 on this machine,
/// 0 in 80 with `pic=off`; see ARCHITECTURE.md). The kernel uses the IOAPIC either way.
pub(crate) const MICROVM: &str = "microvm,rtc=on,pic=off";

/// The arguments after the binary's name. The disks must have passed [`check_disks`].
pub(crate) fn qemu_args(spec: &VmSpec, dir: &VmDir, pool: &Pool, opts: &LaunchOptions) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));

    push(&["-name", &format!("guest={}", spec.instance_id)]);
    push(&["-no-user-config", "-nodefaults", "-nographic"]);
    match &spec.boot {
        BootMode::DirectKernel { .. } => push(&["-machine", MICROVM]),
        BootMode::Firmware => push(&["-machine", "q35"]),
    }
    match opts.accel {
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => match opts.tcg_tb_size_mib {
            Some(mib) => push(&["-accel", &format!("tcg,tb-size={mib}"), "-cpu", "max"]),
            None => push(&["-accel", "tcg", "-cpu", "max"]),
        },
    }
    push(&["-smp", &spec.vcpus.max(1).to_string(), "-m", &format!("{}M", spec.memory_mib)]);

    match &spec.boot {
        BootMode::DirectKernel { kernel, initrd, cmdline } => {
            a.push("-kernel".into());
            a.push(kernel.clone().into_os_string());
            if let Some(initrd) = initrd {
                a.push("-initrd".into());
                a.push(initrd.clone().into_os_string());
            }
            a.push("-append".into());
            a.push(kernel_cmdline(opts, cmdline).into());
        }
        BootMode::Firmware => {
            let uuid = ec2_uuid(&spec.instance_id);
            let mut smbios = opt("type=1,manufacturer=Amazon EC2,product=", &spec.instance_type);
            smbios.push(format!(",serial={uuid},uuid={uuid}"));
            a.push("-smbios".into());
            a.push(smbios);
        }
    }

    // Disks: the root, the SCSI controller, the data volumes (JSON option syntax, so paths
    // need no escaping).
    for disk in &spec.disks {
        a.push("-blockdev".into());
        a.push(blockdev(&disk.volume_id, &pool.path(&disk.layer)).to_string().into());
    }
    for disk in spec.disks.iter().filter(|d| d.bus == DiskBus::Root) {
        a.push("-device".into());
        a.push(disk_device(&spec.boot, disk).to_string().into());
    }
    a.push("-device".into());
    a.push(
        match spec.boot {
            BootMode::DirectKernel { .. } => format!("virtio-scsi-device,id={SCSI_CONTROLLER}"),
            BootMode::Firmware => format!("virtio-scsi-pci,id={SCSI_CONTROLLER}"),
        }
        .into(),
    );
    for disk in spec.disks.iter().filter(|d| d.bus != DiskBus::Root) {
        a.push("-device".into());
        a.push(disk_device(&spec.boot, disk).to_string().into());
    }

    for (i, nic) in spec.nics.iter().enumerate() {
        a.push("-netdev".into());
        a.push(format!("tap,id=n{i},ifname={},script=no,downscript=no", corral_net::names::port_ifname(&nic.eni_id)).into());
        a.push("-device".into());
        let model = match spec.boot {
            BootMode::DirectKernel { .. } => "virtio-net-device",
            BootMode::Firmware => "virtio-net-pci",
        };
        a.push(format!("{model},netdev=n{i},mac={}", nic.mac).into());
    }

    a.push("-chardev".into());
    a.push(opt("file,id=ser0,append=on,path=", dir.console()));
    a.push("-serial".into());
    a.push("chardev:ser0".into());
    a.push("-qmp".into());
    let mut qmp = opt("unix:", dir.qmp_socket());
    qmp.push(",server=on,wait=off");
    a.push(qmp);
    a.push("-daemonize".into());
    a.push("-pidfile".into());
    a.push(dir.pid_file().into_os_string());
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_agent_api::LayerId;
    use std::path::Path;

    fn layer(n: u64) -> LayerId {
        LayerId::parse(&format!("l{n:017x}")).unwrap()
    }

    fn root() -> DiskSpec {
        DiskSpec {
            volume_id: "vol-0123456789abcdef0".into(),
            layer: layer(1),
            backing: Some(layer(0)),
            size_bytes: 8 << 30,
            bus: DiskBus::Root,
        }
    }

    fn data(n: u64, target: u8) -> DiskSpec {
        DiskSpec {
            volume_id: format!("vol-{n:017x}"),
            layer: layer(0x100 + n),
            backing: None,
            size_bytes: 1 << 30,
            bus: DiskBus::Scsi { target },
        }
    }

    fn spec(boot: BootMode) -> VmSpec {
        VmSpec {
            instance_id: "i-0123456789abcdef0".into(),
            instance_type: "t3.micro".into(),
            vcpus: 2,
            memory_mib: 512,
            boot,
            disks: vec![root()],
            nics: vec![],
        }
    }

    fn pool() -> Pool {
        Pool::new("/var/lib/corral/pool")
    }

    /// Every value following `flag`.
    fn all_after(args: &[OsString], flag: &str) -> Vec<Value> {
        args.windows(2).filter(|w| w[0] == flag).map(|w| serde_json::from_str(w[1].to_str().unwrap()).unwrap_or(Value::Null)).collect()
    }

    fn tcg() -> LaunchOptions {
        LaunchOptions { accel: Accel::Tcg, tcg_tb_size_mib: Some(128), tsc_khz: Some(2_100_000) }
    }

    fn render(args: &[OsString]) -> String {
        args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    /// The value following `flag` (first occurrence).
    fn after<'a>(args: &'a [OsString], flag: &str) -> &'a str {
        let i = args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("{flag} missing in {}", render(args)));
        args[i + 1].to_str().unwrap()
    }

    #[test]
    fn direct_kernel_under_tcg() {
        let dir = VmDir::new(Path::new("/var/lib/corral/vms"), "i-0123456789abcdef0");
        let boot = BootMode::DirectKernel {
            kernel: "/img/vmlinux".into(),
            initrd: Some("/img/initrd".into()),
            cmdline: "root=/dev/vda quiet".into(),
        };
        let args = qemu_args(&spec(boot), &dir, &pool(), &tcg());
        assert_eq!(after(&args, "-name"), "guest=i-0123456789abcdef0");
        assert_eq!(after(&args, "-machine"), "microvm,rtc=on,pic=off");
        assert_eq!(after(&args, "-accel"), "tcg,tb-size=128");
        assert_eq!(after(&args, "-cpu"), "max");
        assert_eq!(after(&args, "-smp"), "2");
        assert_eq!(after(&args, "-m"), "512M");
        assert_eq!(after(&args, "-kernel"), "/img/vmlinux");
        assert_eq!(after(&args, "-initrd"), "/img/initrd");
        assert_eq!(after(&args, "-append"), "console=ttyS0 tsc_early_khz=2100000 tsc=reliable root=/dev/vda quiet");
        assert_eq!(
            all_after(&args, "-blockdev"),
            [json!({"driver": "qcow2", "node-name": "vol-0123456789abcdef0", "discard": "unmap",
                "file": {"driver": "file", "filename": "/var/lib/corral/pool/l00000000000000001.qcow2", "discard": "unmap"}})]
        );
        assert_eq!(
            all_after(&args, "-device")[0],
            json!({"driver": "virtio-blk-device", "id": "vol-0123456789abcdef0", "drive": "vol-0123456789abcdef0",
                "serial": "vol0123456789abcdef0"})
        );
        assert!(args.iter().any(|a| a == "virtio-scsi-device,id=scsi0"), "every VM has a SCSI controller");
        assert!(!args.iter().any(|a| a == "-drive"));
        assert_eq!(after(&args, "-chardev"), "file,id=ser0,append=on,path=/var/lib/corral/vms/i-0123456789abcdef0/console.log");
        assert_eq!(after(&args, "-serial"), "chardev:ser0");
        assert_eq!(after(&args, "-qmp"), "unix:/var/lib/corral/vms/i-0123456789abcdef0/qmp.sock,server=on,wait=off");
        assert_eq!(after(&args, "-pidfile"), "/var/lib/corral/vms/i-0123456789abcdef0/qemu.pid");
        for flag in ["-daemonize", "-nodefaults", "-no-user-config", "-nographic"] {
            assert!(args.iter().any(|a| a == flag), "{flag} missing");
        }
        assert!(!args.iter().any(|a| a == "-smbios"), "microvm ignores SMBIOS");
        assert!(!args.iter().any(|a| a == "-netdev" || a == "-no-shutdown"));
    }

    #[test]
    fn kvm_uses_host_cpu_and_no_tsc_hints() {
        let dir = VmDir::new(Path::new("/s"), "i-0123456789abcdef0");
        let boot = BootMode::DirectKernel { kernel: "/k".into(), initrd: None, cmdline: String::new() };
        let opts = LaunchOptions { accel: Accel::Kvm, tcg_tb_size_mib: Some(128), tsc_khz: Some(2_100_000) };
        let args = qemu_args(&spec(boot), &dir, &pool(), &opts);
        assert_eq!(after(&args, "-accel"), "kvm");
        assert_eq!(after(&args, "-cpu"), "host");
        assert_eq!(after(&args, "-append"), "console=ttyS0");
        assert!(!args.iter().any(|a| a == "-initrd"));
    }

    #[test]
    fn tcg_without_tb_size_or_tsc() {
        let opts = LaunchOptions { accel: Accel::Tcg, tcg_tb_size_mib: None, tsc_khz: None };
        assert_eq!(kernel_cmdline(&opts, "  x=1 "), "console=ttyS0 x=1");
        let dir = VmDir::new(Path::new("/s"), "i-0123456789abcdef0");
        let args = qemu_args(&spec(BootMode::Firmware), &dir, &pool(), &opts);
        assert_eq!(after(&args, "-accel"), "tcg");
    }

    #[test]
    fn firmware_on_q35_with_ec2_smbios_identity() {
        let dir = VmDir::new(Path::new("/s"), "i-0123456789abcdef0");
        let args = qemu_args(&spec(BootMode::Firmware), &dir, &pool(), &tcg());
        let u = ec2_uuid("i-0123456789abcdef0");
        assert_eq!(after(&args, "-machine"), "q35");
        assert_eq!(
            all_after(&args, "-device")[0],
            json!({"driver": "virtio-blk-pci", "id": "vol-0123456789abcdef0", "drive": "vol-0123456789abcdef0",
                "serial": "vol0123456789abcdef0", "bootindex": 0})
        );
        assert!(args.iter().any(|a| a == "virtio-scsi-pci,id=scsi0"));
        assert_eq!(after(&args, "-smbios"), format!("type=1,manufacturer=Amazon EC2,product=t3.micro,serial={u},uuid={u}"));
        assert!(!args.iter().any(|a| a == "-kernel" || a == "-append"));
    }

    #[test]
    fn commas_in_values_are_doubled() {
        let dir = VmDir::new(Path::new("/odd,dir"), "i-0123456789abcdef0");
        let mut s = spec(BootMode::Firmware);
        s.instance_type = "a,b".into();
        let args = qemu_args(&s, &dir, &Pool::new("/odd,pool\"x"), &tcg());
        // JSON option values need no comma doubling, and quotes are escaped.
        assert_eq!(all_after(&args, "-blockdev")[0]["file"]["filename"], "/odd,pool\"x/l00000000000000001.qcow2");
        assert!(after(&args, "-qmp").starts_with("unix:/odd,,dir/"));
        assert!(after(&args, "-smbios").contains("product=a,,b,serial=ec2"));
        // -pidfile is a plain argument, not an option string.
        assert_eq!(after(&args, "-pidfile"), "/odd,dir/i-0123456789abcdef0/qemu.pid");
    }

    #[test]
    fn data_volumes_are_scsi_disks_on_the_one_controller() {
        let dir = VmDir::new(Path::new("/s"), "i-0123456789abcdef0");
        for (boot, controller) in [
            (BootMode::DirectKernel { kernel: "/k".into(), initrd: None, cmdline: String::new() }, "virtio-scsi-device,id=scsi0"),
            (BootMode::Firmware, "virtio-scsi-pci,id=scsi0"),
        ] {
            let mut s = spec(boot);
            s.disks.extend([data(7, 0), data(8, 255)]);
            check_disks(&s.disks).unwrap();
            let args = qemu_args(&s, &dir, &pool(), &tcg());
            let nodes: Vec<Value> = all_after(&args, "-blockdev").iter().map(|b| b["node-name"].clone()).collect();
            assert_eq!(nodes, ["vol-0123456789abcdef0", "vol-00000000000000007", "vol-00000000000000008"]);
            assert_eq!(all_after(&args, "-blockdev")[2]["file"]["filename"], "/var/lib/corral/pool/l00000000000000108.qcow2");
            // The controller comes before the disks on its bus.
            let devices: Vec<String> = args.windows(2).filter(|w| w[0] == "-device").map(|w| w[1].to_string_lossy().into_owned()).collect();
            let ctl = devices.iter().position(|d| d == controller).unwrap();
            assert_eq!(ctl, 1, "{devices:?}");
            let last: Value = serde_json::from_str(&devices[3]).unwrap();
            assert_eq!(
                last,
                json!({"driver": "scsi-hd", "id": "vol-00000000000000008", "drive": "vol-00000000000000008", "bus": "scsi0.0",
                    "scsi-id": 255, "lun": 0, "serial": "vol00000000000000008"})
            );
        }
    }

    #[test]
    fn disks_are_checked() {
        let ok = [root(), data(1, 0), data(2, 1)];
        check_disks(&ok).unwrap();
        assert!(check_disks(&[]).unwrap_err().contains("root"));
        assert!(check_disks(&[data(1, 0), root()]).unwrap_err().contains("first"));
        assert!(check_disks(&[root(), root()]).unwrap_err().contains("twice"));
        assert!(check_disks(&[root(), data(1, 3), data(2, 3)]).unwrap_err().contains("both at"));
        let mut odd = root();
        odd.volume_id = "vol-../../x".into();
        assert!(check_disks(&[odd]).unwrap_err().contains("not a volume id"));
        assert!(is_volume_id("vol-0123456789abcdef0") && is_volume_id("vol-12345678"));
        assert!(!is_volume_id("vol-") && !is_volume_id("i-12345678") && !is_volume_id("vol-a,b"));
        assert_eq!(disk_serial("vol-0123456789abcdef0"), "vol0123456789abcdef0");
    }

    #[test]
    fn ec2_uuid_is_stable_prefixed_and_well_formed() {
        let u = ec2_uuid("i-0123456789abcdef0");
        assert_eq!(u, ec2_uuid("i-0123456789abcdef0"));
        assert_ne!(u, ec2_uuid("i-0123456789abcdef1"));
        assert!(u.starts_with("ec2"), "{u}");
        let groups: Vec<usize> = u.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(u.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }
}
