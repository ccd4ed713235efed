//! The QEMU command line for one VM, built as a pure function of the spec, the VM's files and
//! the host facts, so every flag can be checked in a unit test without starting anything.
//!
//! Two machine shapes:
//! - [`BootMode::DirectKernel`] on `-M microvm,rtc=on`: qboot, the kernel's PVH entry,
//!   virtio-mmio devices found through ACPI. Fastest boot; no SMBIOS, no hotplug.
//! - [`BootMode::Firmware`] on `-M q35`: SeaBIOS boots the disk's own bootloader; the disk is
//!   virtio-blk-pci and SMBIOS type 1 carries the EC2 identity cloud-init looks for.
//!
//! Every VM runs daemonized (`-daemonize -pidfile`, QEMU calls `setsid`) so it outlives the
//! agent, and carries `-name guest=<instance-id>` so a re-adopting agent can tell its process
//! from an unrelated one that reused the pid.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use corral_agent_api::{BootMode, VmSpec};
use sha2::{Digest, Sha256};

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

/// The arguments after the binary's name.
pub(crate) fn qemu_args(spec: &VmSpec, dir: &VmDir, opts: &LaunchOptions) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));

    push(&["-name", &format!("guest={}", spec.instance_id)]);
    push(&["-no-user-config", "-nodefaults", "-nographic"]);
    match &spec.boot {
        BootMode::DirectKernel { .. } => push(&["-machine", "microvm,rtc=on"]),
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

    let disk_device = match &spec.boot {
        BootMode::DirectKernel { kernel, initrd, cmdline } => {
            a.push("-kernel".into());
            a.push(kernel.clone().into_os_string());
            if let Some(initrd) = initrd {
                a.push("-initrd".into());
                a.push(initrd.clone().into_os_string());
            }
            a.push("-append".into());
            a.push(kernel_cmdline(opts, cmdline).into());
            "virtio-blk-device,drive=root"
        }
        BootMode::Firmware => {
            let uuid = ec2_uuid(&spec.instance_id);
            let mut smbios = opt("type=1,manufacturer=Amazon EC2,product=", &spec.instance_type);
            smbios.push(format!(",serial={uuid},uuid={uuid}"));
            a.push("-smbios".into());
            a.push(smbios);
            "virtio-blk-pci,drive=root"
        }
    };
    a.push("-drive".into());
    a.push(opt("if=none,id=root,format=qcow2,discard=unmap,file=", dir.overlay()));
    a.push("-device".into());
    a.push(disk_device.into());

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
    use std::path::Path;

    fn spec(boot: BootMode) -> VmSpec {
        VmSpec {
            instance_id: "i-0123456789abcdef0".into(),
            instance_type: "t3.micro".into(),
            vcpus: 2,
            memory_mib: 512,
            boot,
            base_disk: "/images/base.qcow2".into(),
            nics: vec![],
        }
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
        let args = qemu_args(&spec(boot), &dir, &tcg());
        assert_eq!(after(&args, "-name"), "guest=i-0123456789abcdef0");
        assert_eq!(after(&args, "-machine"), "microvm,rtc=on");
        assert_eq!(after(&args, "-accel"), "tcg,tb-size=128");
        assert_eq!(after(&args, "-cpu"), "max");
        assert_eq!(after(&args, "-smp"), "2");
        assert_eq!(after(&args, "-m"), "512M");
        assert_eq!(after(&args, "-kernel"), "/img/vmlinux");
        assert_eq!(after(&args, "-initrd"), "/img/initrd");
        assert_eq!(after(&args, "-append"), "console=ttyS0 tsc_early_khz=2100000 tsc=reliable root=/dev/vda quiet");
        assert_eq!(
            after(&args, "-drive"),
            "if=none,id=root,format=qcow2,discard=unmap,file=/var/lib/corral/vms/i-0123456789abcdef0/root.qcow2"
        );
        assert_eq!(after(&args, "-device"), "virtio-blk-device,drive=root");
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
        let args = qemu_args(&spec(boot), &dir, &opts);
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
        let args = qemu_args(&spec(BootMode::Firmware), &dir, &opts);
        assert_eq!(after(&args, "-accel"), "tcg");
    }

    #[test]
    fn firmware_on_q35_with_ec2_smbios_identity() {
        let dir = VmDir::new(Path::new("/s"), "i-0123456789abcdef0");
        let args = qemu_args(&spec(BootMode::Firmware), &dir, &tcg());
        let u = ec2_uuid("i-0123456789abcdef0");
        assert_eq!(after(&args, "-machine"), "q35");
        assert_eq!(after(&args, "-device"), "virtio-blk-pci,drive=root");
        assert_eq!(after(&args, "-smbios"), format!("type=1,manufacturer=Amazon EC2,product=t3.micro,serial={u},uuid={u}"));
        assert!(!args.iter().any(|a| a == "-kernel" || a == "-append"));
    }

    #[test]
    fn commas_in_values_are_doubled() {
        let dir = VmDir::new(Path::new("/odd,dir"), "i-0123456789abcdef0");
        let mut s = spec(BootMode::Firmware);
        s.instance_type = "a,b".into();
        let args = qemu_args(&s, &dir, &tcg());
        assert!(after(&args, "-drive").ends_with("file=/odd,,dir/i-0123456789abcdef0/root.qcow2"));
        assert!(after(&args, "-qmp").starts_with("unix:/odd,,dir/"));
        assert!(after(&args, "-smbios").contains("product=a,,b,serial=ec2"));
        // -pidfile is a plain argument, not an option string.
        assert_eq!(after(&args, "-pidfile"), "/odd,dir/i-0123456789abcdef0/qemu.pid");
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
