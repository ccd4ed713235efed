//! The files a VM owns on the host, all under `<state_dir>/<instance-id>/`, and the small
//! `vm.json` record of the spec it was last started with.
//!
//! ```text
//! <state_dir>/i-0123456789abcdef0/
//!     console.log   serial console, appended across boots
//!     qmp.sock      QMP control socket (QEMU leaves it behind when it exits)
//!     qemu.pid      written by QEMU (`-pidfile`); removed by it on a clean exit
//!     vm.json       the last spec started, with its disks kept current through hot-plugs and
//!                   live snapshots, for operators and for restarting after a crash
//! ```
//!
//! The directory is the VM's identity on the host: re-adoption scans for these directories,
//! and `vm_destroy` deletes one whole. The VM's disks are not here: they are layers of the
//! storage pool ([`crate::pool`]), which outlive the VM.

use std::path::{Path, PathBuf};

use corral_agent_api::{BootMode, DiskBus, DiskSpec, LayerId, VmSpec};
use serde::{Deserialize, Serialize};

/// Longest path a unix socket address can hold (`sun_path` is 108 bytes with its NUL).
pub(crate) const MAX_SOCKET_PATH: usize = 107;

/// Instance ids are `i-` plus 8 or 17 hex digits; we only need to know a directory is one of
/// ours and is safe to put in a path and on a command line.
pub(crate) fn is_instance_dir_name(name: &str) -> bool {
    name.strip_prefix("i-").is_some_and(|body| !body.is_empty() && body.len() <= 32 && body.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[derive(Debug, Clone)]
pub(crate) struct VmDir {
    root: PathBuf,
}

impl VmDir {
    pub(crate) fn new(state_dir: &Path, instance_id: &str) -> Self {
        VmDir { root: state_dir.join(instance_id) }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }
    pub(crate) fn console(&self) -> PathBuf {
        self.root.join("console.log")
    }
    pub(crate) fn qmp_socket(&self) -> PathBuf {
        self.root.join("qmp.sock")
    }
    pub(crate) fn pid_file(&self) -> PathBuf {
        self.root.join("qemu.pid")
    }
    pub(crate) fn spec_file(&self) -> PathBuf {
        self.root.join("vm.json")
    }

    /// Writes `vm.json` atomically (a temporary file renamed over it).
    pub(crate) fn write_spec(&self, spec: &VmSpec) -> std::io::Result<()> {
        let record = StoredVm { version: 2, spec: StoredSpec::from(spec) };
        let text = serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?;
        let tmp = self.root.join("vm.json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, self.spec_file())
    }

    /// Reads `vm.json`; `None` when there is none.
    pub(crate) fn read_spec(&self) -> std::io::Result<Option<VmSpec>> {
        let text = match std::fs::read(self.spec_file()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let record: StoredVm = serde_json::from_slice(&text).map_err(std::io::Error::other)?;
        VmSpec::try_from(record.spec).map(Some).map_err(std::io::Error::other)
    }

    /// Removes the files a dead process leaves behind (pid file, socket).
    pub(crate) fn remove_runtime_files(&self) {
        for path in [self.pid_file(), self.qmp_socket()] {
            remove_file_if_exists(&path);
        }
    }
}

pub(crate) fn remove_file_if_exists(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "could not remove file");
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredVm {
    version: u32,
    spec: StoredSpec,
}

/// `VmSpec` as stored; the agent API types stay free of serialisation concerns.
#[derive(Serialize, Deserialize)]
struct StoredSpec {
    instance_id: String,
    instance_type: String,
    vcpus: u32,
    memory_mib: u64,
    boot: StoredBoot,
    /// Absent in version 1 records (whose root disk was a file in the VM directory).
    #[serde(default)]
    disks: Vec<StoredDisk>,
}

#[derive(Serialize, Deserialize)]
struct StoredDisk {
    volume_id: String,
    layer: String,
    backing: Option<String>,
    size_bytes: u64,
    bus: StoredBus,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StoredBus {
    Root,
    Scsi { target: u8 },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
enum StoredBoot {
    DirectKernel { kernel: PathBuf, initrd: Option<PathBuf>, cmdline: String },
    Firmware,
}

impl From<&VmSpec> for StoredSpec {
    fn from(s: &VmSpec) -> Self {
        StoredSpec {
            instance_id: s.instance_id.clone(),
            instance_type: s.instance_type.clone(),
            vcpus: s.vcpus,
            memory_mib: s.memory_mib,
            boot: match &s.boot {
                BootMode::DirectKernel { kernel, initrd, cmdline } => {
                    StoredBoot::DirectKernel { kernel: kernel.clone(), initrd: initrd.clone(), cmdline: cmdline.clone() }
                }
                BootMode::Firmware => StoredBoot::Firmware,
            },
            disks: s
                .disks
                .iter()
                .map(|d| StoredDisk {
                    volume_id: d.volume_id.clone(),
                    layer: d.layer.to_string(),
                    backing: d.backing.as_ref().map(LayerId::to_string),
                    size_bytes: d.size_bytes,
                    bus: match d.bus {
                        DiskBus::Root => StoredBus::Root,
                        DiskBus::Scsi { target } => StoredBus::Scsi { target },
                    },
                })
                .collect(),
        }
    }
}

fn stored_layer(s: &str) -> Result<LayerId, String> {
    LayerId::parse(s).ok_or_else(|| format!("vm.json names {s:?}, which is not a layer id"))
}

impl TryFrom<StoredSpec> for VmSpec {
    type Error = String;
    fn try_from(s: StoredSpec) -> Result<Self, String> {
        let mut disks = Vec::with_capacity(s.disks.len());
        for d in s.disks {
            disks.push(DiskSpec {
                volume_id: d.volume_id,
                layer: stored_layer(&d.layer)?,
                backing: d.backing.as_deref().map(stored_layer).transpose()?,
                size_bytes: d.size_bytes,
                bus: match d.bus {
                    StoredBus::Root => DiskBus::Root,
                    StoredBus::Scsi { target } => DiskBus::Scsi { target },
                },
            });
        }
        Ok(VmSpec {
            instance_id: s.instance_id,
            instance_type: s.instance_type,
            vcpus: s.vcpus,
            memory_mib: s.memory_mib,
            boot: match s.boot {
                StoredBoot::DirectKernel { kernel, initrd, cmdline } => BootMode::DirectKernel { kernel, initrd, cmdline },
                StoredBoot::Firmware => BootMode::Firmware,
            },
            disks,
            // Re-adoption needs no interfaces: a restart gets a fresh spec from the control plane.
            nics: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_through_vm_json() {
        let dir = tempfile::tempdir().unwrap();
        let vm = VmDir::new(dir.path(), "i-0123456789abcdef0");
        std::fs::create_dir_all(vm.root()).unwrap();
        assert_eq!(vm.read_spec().unwrap(), None);
        for boot in [BootMode::DirectKernel { kernel: "/k".into(), initrd: Some("/i".into()), cmdline: "quiet".into() }, BootMode::Firmware]
        {
            let spec = VmSpec {
                instance_id: "i-0123456789abcdef0".into(),
                instance_type: "t3.micro".into(),
                vcpus: 2,
                memory_mib: 1024,
                boot,
                disks: vec![
                    DiskSpec {
                        volume_id: "vol-0123456789abcdef0".into(),
                        layer: LayerId::parse("l00000000000000001").unwrap(),
                        backing: LayerId::parse("l00000000000000000"),
                        size_bytes: 8 << 30,
                        bus: DiskBus::Root,
                    },
                    DiskSpec {
                        volume_id: "vol-0123456789abcdef1".into(),
                        layer: LayerId::parse("l00000000000000002").unwrap(),
                        backing: None,
                        size_bytes: 1 << 30,
                        bus: DiskBus::Scsi { target: 255 },
                    },
                ],
                nics: vec![],
            };
            vm.write_spec(&spec).unwrap();
            assert_eq!(vm.read_spec().unwrap(), Some(spec));
        }
    }

    #[test]
    fn version_1_records_read_without_disks_and_bad_layers_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let vm = VmDir::new(dir.path(), "i-0123456789abcdef0");
        std::fs::create_dir_all(vm.root()).unwrap();
        let v1 = r#"{"version":1,"spec":{"instance_id":"i-0123456789abcdef0","instance_type":"t3.micro","vcpus":1,
            "memory_mib":512,"boot":{"mode":"firmware"},"base_disk":"/images/base.qcow2"}}"#;
        std::fs::write(vm.spec_file(), v1).unwrap();
        let spec = vm.read_spec().unwrap().unwrap();
        assert!(spec.disks.is_empty());
        assert_eq!(spec.boot, BootMode::Firmware);
        let bad = v1.replace(
            r#""base_disk":"/images/base.qcow2""#,
            r#""disks":[{"volume_id":"vol-1","layer":"../x","backing":null,"size_bytes":1,"bus":{"type":"root"}}]"#,
        );
        std::fs::write(vm.spec_file(), bad).unwrap();
        assert!(vm.read_spec().unwrap_err().to_string().contains("not a layer id"));
    }

    #[test]
    fn only_instance_like_names_are_vm_dirs() {
        assert!(is_instance_dir_name("i-0123456789abcdef0"));
        assert!(is_instance_dir_name("i-12345678"));
        assert!(!is_instance_dir_name("i-"));
        assert!(!is_instance_dir_name("vol-0123"));
        assert!(!is_instance_dir_name("i-../x"));
        assert!(!is_instance_dir_name("i-a,b"));
    }
}
