//! The recipes of the default images: packages, scripts, configuration files and build
//! parameters, and the hash over all of them that names an image in the cache.
//!
//! Everything that changes what a build produces must be part of [`recipe_hash`]: the assets
//! below are hashed by content, and [`RECIPE_REVISION`] covers changes to the build logic
//! itself. Bump it whenever the Rust code that builds an image changes its output.

use sha2::{Digest, Sha256};

use crate::ImageError;

/// Bumped by hand whenever the build code changes what it produces.
pub(crate) const RECIPE_REVISION: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Minimal,
    Debian,
}

/// A file the build writes into an image tree.
#[derive(Debug)]
pub(crate) struct Asset {
    /// Absolute path inside the image.
    pub path: &'static str,
    pub mode: u32,
    pub content: &'static str,
}

#[derive(Debug)]
pub(crate) struct Recipe {
    pub name: &'static str,
    pub description: &'static str,
    pub kind: Kind,
    pub cmdline: &'static str,
    /// Virtual size of the root disk.
    pub disk_size: u64,
    /// Debian packages fetched with the host's apt (`apt-get download`).
    pub host_packages: &'static [&'static str],
    /// Packages `mmdebstrap` installs (Debian image only).
    pub debootstrap_packages: &'static [&'static str],
    /// Files written into the root file system.
    pub assets: &'static [Asset],
    /// Extra modules (with dependencies) copied onto the root disk besides the initramfs ones
    /// (minimal image only: the Debian image carries the whole kernel package).
    pub disk_modules: &'static [&'static str],
}

/// Modules the initramfs loads, dependencies resolved at build time: virtio transports for
/// microvm (mmio) and q35/pc (pci), the root disk, the NIC (with net_failover), and the ACPI
/// power button with evdev (so QMP `system_powerdown` reaches acpid/logind as an input event).
pub(crate) const INITRAMFS_MODULES: &[&str] =
    &["virtio_mmio", "virtio_pci", "virtio_blk", "virtio_net", "button", "evdev", "virtio_scsi", "sd_mod"];

/// The initramfs `/init`, shared by both images.
pub(crate) const INITRAMFS_INIT: &str = include_str!("../assets/initramfs-init.sh");

/// The Debian suite and the archive areas the Debian image is bootstrapped from.
pub(crate) const DEBIAN_SUITE: &str = "bookworm";
pub(crate) const DEBIAN_VARIANT: &str = "minbase";

const GIB: u64 = 1 << 30;

static RECIPES: [Recipe; 2] = [
    Recipe {
        name: "corral-minimal",
        description: "Corral minimal: static busybox, dropbear SSH and sudo on a Debian 12 cloud kernel, for fast tests; default user admin, passwordless sudo",
        kind: Kind::Minimal,
        cmdline: "root=/dev/vda rw",
        disk_size: GIB,
        // The kernel and busybox first (the build takes them by position), then dropbear, sudo
        // (with PAM's modules) and every package that provides a library in their DT_NEEDED
        // closures.
        host_packages: &[
            "linux-image-cloud-amd64",
            "busybox-static",
            "dropbear-bin",
            "sudo",
            "libpam-modules",
            "libc6",
            "libcrypt1",
            "libtomcrypt1",
            "libtommath1",
            "libgmp10",
            "zlib1g",
            "libpam0g",
            "libaudit1",
            "libcap-ng0",
            "libselinux1",
            "libpcre2-8-0",
        ],
        debootstrap_packages: &[],
        assets: &[
            Asset { path: "/sbin/init", mode: 0o755, content: include_str!("../assets/minimal-init.sh") },
            Asset { path: "/etc/udhcpc/default.script", mode: 0o755, content: include_str!("../assets/minimal-udhcpc.sh") },
            Asset {
                path: "/etc/acpi/PWRF/00000080",
                mode: 0o755,
                content: include_str!("../assets/minimal-acpi-power.sh"),
            },
            Asset {
                path: "/etc/passwd",
                mode: 0o644,
                content: "root:x:0:0:root:/root:/bin/sh\nadmin:x:1000:1000:admin:/home/admin:/bin/sh\n",
            },
            Asset {
                path: "/etc/group",
                mode: 0o644,
                content: "root:x:0:\nadm:x:4:admin\ntty:x:5:\nwheel:x:10:admin\nsudo:x:27:admin\nadmin:x:1000:\n",
            },
            Asset {
                path: "/etc/shadow",
                mode: 0o640,
                content: "root:*:19000:0:99999:7:::\nadmin:*:19000:0:99999:7:::\n",
            },
            Asset { path: "/etc/hostname", mode: 0o644, content: "corral-minimal\n" },
            Asset {
                path: "/etc/hosts",
                mode: 0o644,
                content: "127.0.0.1\tlocalhost\n127.0.1.1\tcorral-minimal\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            },
            Asset { path: "/etc/shells", mode: 0o644, content: "/bin/sh\n/bin/ash\n" },
            Asset {
                path: "/etc/profile",
                mode: 0o644,
                content: "export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nexport PS1='\\u@\\h:\\w\\$ '\n",
            },
            Asset {
                path: "/etc/os-release",
                mode: 0o644,
                content: "NAME=\"Corral minimal\"\nID=corral-minimal\nID_LIKE=debian\nPRETTY_NAME=\"Corral minimal (busybox)\"\nVERSION_ID=\"1\"\n",
            },
            Asset { path: "/etc/fstab", mode: 0o644, content: "/dev/root / ext4 rw 0 0\n" },
            Asset { path: "/etc/nsswitch.conf", mode: 0o644, content: "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n" },
            // The default user becomes root without a password, as on every EC2 image (the
            // sudo package's /etc/sudoers includes this directory; sudo wants 0440, root's).
            Asset {
                path: "/etc/sudoers.d/90-corral-admin",
                mode: 0o440,
                content: "# corral-minimal: the default user runs anything as root, without a password.\nadmin ALL=(ALL) NOPASSWD:ALL\n",
            },
            Asset { path: "/etc/pam.d/sudo", mode: 0o644, content: include_str!("../assets/minimal-pam-sudo") },
        ],
        disk_modules: &["virtio-rng", "virtio_console", "virtio_balloon", "vmw_vsock_virtio_transport", "tun"],
    },
    Recipe {
        name: "corral-debian-12",
        description: "Corral Debian 12 (bookworm) with cloud-init and OpenSSH; default user admin",
        kind: Kind::Debian,
        cmdline: "root=/dev/vda rw",
        disk_size: 2 * GIB,
        host_packages: &["busybox-static"],
        debootstrap_packages: &[
            "systemd-sysv",
            "udev",
            "dbus",
            "linux-image-cloud-amd64",
            "openssh-server",
            "cloud-init",
            "sudo",
            "ifupdown",
            "isc-dhcp-client",
            "iproute2",
            "iputils-ping",
            "netbase",
            "e2fsprogs",
            "procps",
            "less",
            "ca-certificates",
        ],
        assets: &[
            Asset { path: "/etc/cloud/cloud.cfg.d/90-corral.cfg", mode: 0o644, content: include_str!("../assets/debian-cloud.cfg") },
            Asset {
                path: "/etc/systemd/system/ssh.service.d/corral-host-keys.conf",
                mode: 0o644,
                content: include_str!("../assets/debian-ssh-host-keys.conf"),
            },
            Asset { path: "/etc/fstab", mode: 0o644, content: include_str!("../assets/debian-fstab") },
            Asset { path: "/etc/network/interfaces", mode: 0o644, content: include_str!("../assets/debian-interfaces") },
            Asset { path: "/etc/hostname", mode: 0o644, content: "localhost\n" },
            Asset {
                path: "/etc/hosts",
                mode: 0o644,
                content: "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
            },
        ],
        disk_modules: &[],
    },
];

/// The file-system label of every root disk (the Debian image's fstab refers to it).
pub(crate) const ROOT_LABEL: &str = "corral-root";

pub(crate) fn get(name: &str) -> Result<&'static Recipe, ImageError> {
    RECIPES.iter().find(|r| r.name == name).ok_or_else(|| ImageError::UnknownImage {
        name: name.to_string(),
        known: RECIPES.iter().map(|r| r.name).collect::<Vec<_>>().join(", "),
    })
}

/// Hex SHA-256 over everything that determines the image `name` builds to; `None` for an
/// unknown name.
pub fn recipe_hash_of(name: &str) -> Option<String> {
    get(name).ok().map(recipe_hash)
}

/// Hex SHA-256 over everything that determines what `recipe` builds to.
pub(crate) fn recipe_hash(recipe: &Recipe) -> String {
    let mut h = Sha256::new();
    let mut field = |key: &str, value: &[u8]| {
        h.update((key.len() as u64).to_le_bytes());
        h.update(key.as_bytes());
        h.update((value.len() as u64).to_le_bytes());
        h.update(value);
    };
    field("revision", RECIPE_REVISION.to_string().as_bytes());
    field("crate", env!("CARGO_PKG_VERSION").as_bytes());
    field("name", recipe.name.as_bytes());
    field("description", recipe.description.as_bytes());
    field("kind", format!("{:?}", recipe.kind).as_bytes());
    field("cmdline", recipe.cmdline.as_bytes());
    field("disk_size", recipe.disk_size.to_string().as_bytes());
    field("label", ROOT_LABEL.as_bytes());
    field("host_packages", recipe.host_packages.join(",").as_bytes());
    field("initramfs_modules", INITRAMFS_MODULES.join(",").as_bytes());
    field("initramfs_init", INITRAMFS_INIT.as_bytes());
    field("disk_modules", recipe.disk_modules.join(",").as_bytes());
    if recipe.kind == Kind::Debian {
        field("suite", DEBIAN_SUITE.as_bytes());
        field("variant", DEBIAN_VARIANT.as_bytes());
        field("debootstrap_packages", recipe.debootstrap_packages.join(",").as_bytes());
    }
    for a in recipe.assets {
        field("asset", a.path.as_bytes());
        field("mode", format!("{:o}", a.mode).as_bytes());
        field("content", a.content.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_image_has_a_recipe() {
        for name in crate::DEFAULT_IMAGES {
            let r = get(name).unwrap();
            assert_eq!(r.name, *name);
        }
    }

    #[test]
    fn hashes_are_stable_distinct_and_hex() {
        let a = recipe_hash(get("corral-minimal").unwrap());
        let b = recipe_hash(get("corral-debian-12").unwrap());
        assert_eq!(a, recipe_hash(get("corral-minimal").unwrap()));
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(recipe_hash_of("corral-minimal"), Some(a));
        assert_eq!(recipe_hash_of("nope"), None);
    }

    #[test]
    fn minimal_init_prints_the_marker_tests_wait_for() {
        let init = get("corral-minimal").unwrap().assets.iter().find(|a| a.path == "/sbin/init").unwrap();
        assert!(init.content.contains("echo \"corral-minimal: init ready\" > /dev/console"));
        assert!(init.content.contains("corral_network_setup"));
    }

    /// The guest-side contract other crates rely on: udhcpc asks for the MTU option and has its
    /// script in the image; init reads these IMDS paths; the markers are printed in this order.
    #[test]
    fn minimal_init_networking_contract() {
        let r = get("corral-minimal").unwrap();
        let asset = |p: &str| r.assets.iter().find(|a| a.path == p).unwrap_or_else(|| panic!("{p} missing")).content;
        let init = asset("/sbin/init");
        assert!(init.contains("udhcpc -i eth0 -s /etc/udhcpc/default.script") && init.contains("-O mtu"));
        assert!(asset("/etc/udhcpc/default.script").contains("mtu \"$mtu\""));
        for path in ["meta-data/instance-id", "meta-data/local-hostname", "meta-data/public-keys/", "user-data"] {
            assert!(init.contains(path), "{path}");
        }
        assert!(init.contains("PUT /latest/api/token") && init.contains("X-aws-ec2-metadata-token-ttl-seconds: 21600"));
        let order =
            ["\"network up $net_ip\"", "\"metadata ok $instance_id\"", "\"sshd listening on port 22\"", "\"user-data done rc=$rc\""];
        let body = &init[init.find("corral_dhcp() {").unwrap()..];
        let positions: Vec<usize> = order.iter().map(|m| body.find(m).unwrap_or_else(|| panic!("{m}"))).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert!(init.rfind("init ready").unwrap() > init.rfind("corral_network_setup").unwrap());
        assert!(r.host_packages.contains(&"dropbear-bin"));
    }

    /// corral-minimal's admin has passwordless sudo through Debian's sudo and PAM's pam_unix.
    #[test]
    fn minimal_admin_has_passwordless_sudo() {
        let r = get("corral-minimal").unwrap();
        let asset = |p: &str| r.assets.iter().find(|a| a.path == p).unwrap_or_else(|| panic!("{p} missing"));
        let dropin = asset("/etc/sudoers.d/90-corral-admin");
        assert_eq!(dropin.mode, 0o440);
        assert!(dropin.content.lines().any(|l| l == "admin ALL=(ALL) NOPASSWD:ALL"), "{}", dropin.content);
        let pam = asset("/etc/pam.d/sudo").content;
        for stack in ["auth", "account", "session"] {
            assert!(pam.lines().any(|l| l.starts_with(stack) && l.ends_with("pam_unix.so")), "{stack}: {pam}");
        }
        assert!(!pam.contains("@include"), "the image has no common-* stacks: {pam}");
        for p in ["sudo", "libpam-modules", "libpam0g"] {
            assert!(r.host_packages.contains(&p), "{p}");
        }
        assert!(asset("/etc/group").content.lines().any(|l| l == "sudo:x:27:admin"));
    }
}
