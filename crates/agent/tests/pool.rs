//! The storage pool against a real `qemu-img` (and `qemu-io` to write into layers), in temporary
//! directories: data written in a layer reads back through overlays, imports of raw and qcow2
//! files, flattening, rebasing, growing, deleting, usage, and failures that leave no file behind, a full
//! file system included (a 2 MiB tmpfs the test mounts and unmounts itself).
//!
//! Without qemu-img these tests say so and pass (`CORRAL_REQUIRE_QEMU=1` makes that a failure).

use std::path::{Path, PathBuf};

use corral_agent::pool::{read_qcow2_header, Pool};
use corral_agent_api::{LayerId, Storage};

fn tools() -> bool {
    let required = std::env::var("CORRAL_REQUIRE_QEMU").is_ok_and(|v| v == "1");
    for tool in ["qemu-img", "qemu-io"] {
        if let Err(e) = corral_exec::run_blocking(tool, &["--version"]) {
            assert!(!required, "CORRAL_REQUIRE_QEMU=1 but {tool} does not run: {e}");
            eprintln!("SKIPPING pool tests: {tool} does not run here ({e})");
            return false;
        }
    }
    true
}

fn layer(n: u64) -> LayerId {
    LayerId::parse(&format!("l{n:017x}")).unwrap()
}

const MIB: u64 = 1 << 20;

/// `qemu-io -c "write -P <byte> <offset> <len>"` into a qcow2 file.
fn write_pattern(path: &Path, byte: u8, offset: u64, len: u64) {
    let cmd = format!("write -P {byte} {offset} {len}");
    corral_exec::run_blocking("qemu-io", &["-f".as_ref(), "qcow2".as_ref(), "-c".as_ref(), cmd.as_ref(), path.as_os_str()])
        .unwrap_or_else(|e| panic!("{cmd} on {}: {e}", path.display()));
}

/// The whole disk that `path` is the top of (in `format`), as raw bytes.
fn read_disk(path: &Path, format: &str) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("out.raw");
    corral_exec::run_blocking(
        "qemu-img",
        &["convert".as_ref(), "-f".as_ref(), format.as_ref(), "-O".as_ref(), "raw".as_ref(), path.as_os_str(), raw.as_os_str()],
    )
    .unwrap();
    std::fs::read(raw).unwrap()
}

/// Deterministic non-zero bytes (so nothing is sparse).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as u8) | 1
        })
        .collect()
}

/// Every name in a directory, hidden ones included.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    v.sort();
    v
}

fn qemu_img_info(path: &Path) -> serde_json::Value {
    let out = corral_exec::run_blocking("qemu-img", &["info".as_ref(), "-U".as_ref(), "--output=json".as_ref(), path.as_os_str()]).unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn overlays_read_through_to_their_backing_layers() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pool = Pool::new(tmp.path().join("pool"));
    let (base, mid, top) = (layer(1), layer(2), layer(3));

    pool.layer_create(&base, None, 8 * MIB).await.unwrap();
    write_pattern(&pool.path(&base), 0xab, 0, 64 * 1024);
    write_pattern(&pool.path(&base), 0xcd, MIB, 64 * 1024);
    pool.layer_create(&mid, Some(&base), 8 * MIB).await.unwrap();
    write_pattern(&pool.path(&mid), 0xef, MIB, 4096); // shadows part of the base's second write
    pool.layer_create(&top, Some(&mid), 16 * MIB).await.unwrap(); // an overlay may be larger

    let disk = read_disk(&pool.path(&top), "qcow2");
    assert_eq!(disk.len() as u64, 16 * MIB);
    assert!(disk[..64 * 1024].iter().all(|&b| b == 0xab), "the base's data reads through two overlays");
    let second = MIB as usize;
    assert!(disk[second..second + 4096].iter().all(|&b| b == 0xef), "the middle layer's write wins");
    assert!(disk[second + 4096..second + 64 * 1024].iter().all(|&b| b == 0xcd));
    assert!(disk[8 * MIB as usize..].iter().all(|&b| b == 0), "the grown tail reads as zeros");

    // Headers: sizes and absolute backing paths, as qemu-img sees them.
    assert_eq!(pool.layer_size(&top).await.unwrap(), Some(16 * MIB));
    assert_eq!(pool.layer_size(&layer(9)).await.unwrap(), None);
    assert_eq!(pool.backing_of(&top).unwrap(), Some(mid.clone()));
    assert_eq!(pool.backing_of(&mid).unwrap(), Some(base.clone()));
    assert_eq!(pool.backing_of(&base).unwrap(), None);
    let info = qemu_img_info(&pool.path(&mid));
    assert_eq!(info["backing-filename"].as_str().unwrap(), pool.path(&base).to_str().unwrap());
    assert!(Path::new(info["backing-filename"].as_str().unwrap()).is_absolute());
    let h = read_qcow2_header(&pool.path(&mid)).unwrap();
    assert_eq!(h.virtual_size, info["virtual-size"].as_u64().unwrap());
    assert_eq!(pool.layers().unwrap(), vec![base.clone(), mid.clone(), top.clone()]);

    // Creating is idempotent: an existing layer is left alone (its data too).
    pool.layer_create(&base, None, MIB).await.unwrap();
    assert_eq!(pool.layer_size(&base).await.unwrap(), Some(8 * MIB));
    assert_eq!(read_disk(&pool.path(&base), "qcow2")[0], 0xab);

    // Refusals leave nothing.
    let err = pool.layer_create(&layer(4), Some(&layer(99)), 8 * MIB).await.unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
    let err = pool.layer_create(&layer(4), Some(&base), MIB).await.unwrap_err().to_string();
    assert!(err.contains("smaller"), "{err}");
    assert!(!pool.path(&layer(4)).exists());
    assert_eq!(names(pool.dir()).len(), 3, "{:?}", names(pool.dir()));
}

#[tokio::test]
async fn imports_raw_and_qcow2_and_refuses_what_is_not_a_self_contained_disk() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let pool = Pool::new(tmp.path().join("pool"));

    // raw
    let raw = src.join("disk.img");
    let data = noise(3 * MIB as usize, 7);
    std::fs::write(&raw, &data).unwrap();
    let size = pool.layer_import(&layer(1), &raw).await.unwrap();
    assert_eq!(size, 3 * MIB);
    assert_eq!(qemu_img_info(&pool.path(&layer(1)))["format"], "qcow2");
    assert_eq!(read_disk(&pool.path(&layer(1)), "qcow2"), data);
    assert_eq!(std::fs::read(&raw).unwrap(), data, "the source is left as it was");
    // Importing again is a no-op that reports the layer's size.
    assert_eq!(pool.layer_import(&layer(1), &raw).await.unwrap(), 3 * MIB);

    // qcow2 (self-contained), with data in it
    let q = src.join("disk.qcow2");
    corral_exec::run_blocking(
        "qemu-img",
        &["create".as_ref(), "-q".as_ref(), "-f".as_ref(), "qcow2".as_ref(), q.as_os_str(), "4M".as_ref()],
    )
    .unwrap();
    write_pattern(&q, 0x42, 2 * MIB, 8192);
    assert_eq!(pool.layer_import(&layer(2), &q).await.unwrap(), 4 * MIB);
    assert_eq!(read_disk(&pool.path(&layer(2)), "qcow2"), read_disk(&q, "qcow2"));
    assert_eq!(pool.backing_of(&layer(2)).unwrap(), None);

    let before = names(pool.dir());
    let refused = |what: &'static str, path: PathBuf, needle: &'static str| {
        let pool = pool.clone();
        async move {
            let err = pool.layer_import(&layer(9), &path).await.unwrap_err();
            let msg = format!("{err}: {:?}", std::error::Error::source(&err).map(|s| s.to_string()));
            assert!(msg.contains(needle), "{what}: {msg}");
            eprintln!("[refused] {what}: {msg}");
        }
    };
    // A qcow2 overlay would read another file of the host.
    let overlay = src.join("overlay.qcow2");
    corral_exec::run_blocking(
        "qemu-img",
        &[
            "create".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            "-b".as_ref(),
            q.as_os_str(),
            "-F".as_ref(),
            "qcow2".as_ref(),
            overlay.as_os_str(),
        ],
    )
    .unwrap();
    refused("a qcow2 with a backing file", overlay, "backing file").await;
    // Other formats.
    let vmdk = src.join("disk.vmdk");
    corral_exec::run_blocking(
        "qemu-img",
        &["create".as_ref(), "-q".as_ref(), "-f".as_ref(), "vmdk".as_ref(), vmdk.as_os_str(), "1M".as_ref()],
    )
    .unwrap();
    refused("a vmdk", vmdk, "only raw and qcow2").await;
    // A file that claims to be qcow2 but is garbage.
    let broken = src.join("broken.qcow2");
    let mut bytes = b"QFI\xfb\x00\x00\x00\x03".to_vec();
    bytes.extend(noise(4096, 3));
    std::fs::write(&broken, bytes).unwrap();
    refused("a corrupt qcow2", broken, "qemu-img").await;
    // Nothing at all, an empty file, a directory.
    refused("a missing file", src.join("nope"), "nope").await;
    let empty = src.join("empty");
    std::fs::write(&empty, b"").unwrap();
    refused("an empty file", empty, "empty").await;
    refused("a directory", src.clone(), "directory").await;
    assert_eq!(names(pool.dir()), before, "failed imports leave no file, temporary or not");
}

#[tokio::test]
async fn flatten_copies_a_whole_chain_into_one_file() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pool = Pool::new(tmp.path().join("pool"));
    pool.layer_create(&layer(1), None, 4 * MIB).await.unwrap();
    write_pattern(&pool.path(&layer(1)), 0x11, 0, 65536);
    pool.layer_create(&layer(2), Some(&layer(1)), 4 * MIB).await.unwrap();
    write_pattern(&pool.path(&layer(2)), 0x22, MIB, 65536);
    pool.layer_flatten(&layer(3), &layer(2)).await.unwrap();
    assert_eq!(pool.backing_of(&layer(3)).unwrap(), None, "self-contained");
    assert_eq!(read_disk(&pool.path(&layer(3)), "qcow2"), read_disk(&pool.path(&layer(2)), "qcow2"));
    // The copy is independent: the source's chain can go.
    pool.layer_delete(&layer(2)).await.unwrap();
    pool.layer_delete(&layer(1)).await.unwrap();
    let disk = read_disk(&pool.path(&layer(3)), "qcow2");
    assert_eq!((disk[0], disk[MIB as usize]), (0x11, 0x22));
    pool.layer_flatten(&layer(3), &layer(1)).await.unwrap(); // exists: nothing to do
    assert!(pool.layer_flatten(&layer(4), &layer(1)).await.is_err(), "the source is gone");
    assert_eq!(names(pool.dir()), vec![format!("{}.qcow2", layer(3))]);
}

/// `qemu-io -c "write -z <offset> <len>"`: zeros the layer itself holds (shadowing its backing).
fn write_zeros(path: &Path, offset: u64, len: u64) {
    let cmd = format!("write -z {offset} {len}");
    corral_exec::run_blocking("qemu-io", &["-f".as_ref(), "qcow2".as_ref(), "-c".as_ref(), cmd.as_ref(), path.as_os_str()])
        .unwrap_or_else(|e| panic!("{cmd} on {}: {e}", path.display()));
}

#[tokio::test]
async fn rebase_drops_layers_from_the_middle_of_a_chain_and_keeps_what_it_reads() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pool = Pool::new(tmp.path().join("pool"));
    // base <- m1 <- m2 <- top, each holding its own data at its own offsets, and some of it
    // shadowing the layers below (data over data, zeros over data).
    let (base, m1, m2, top, other) = (layer(1), layer(2), layer(3), layer(4), layer(5));
    pool.layer_create(&base, None, 8 * MIB).await.unwrap();
    write_pattern(&pool.path(&base), 0x11, 0, 256 * 1024);
    write_pattern(&pool.path(&base), 0x12, 4 * MIB, 256 * 1024);
    pool.layer_create(&m1, Some(&base), 8 * MIB).await.unwrap();
    write_pattern(&pool.path(&m1), 0x21, MIB, 256 * 1024);
    write_zeros(&pool.path(&m1), 0, 64 * 1024); // hides the first 64 KiB of the base's 0x11
    pool.layer_create(&m2, Some(&m1), 12 * MIB).await.unwrap();
    write_pattern(&pool.path(&m2), 0x31, 2 * MIB, 256 * 1024);
    write_pattern(&pool.path(&m2), 0x32, MIB, 4096); // over m1's 0x21
    write_pattern(&pool.path(&m2), 0x33, 9 * MIB, 64 * 1024); // beyond the base's end
    pool.layer_create(&top, Some(&m2), 16 * MIB).await.unwrap();
    write_pattern(&pool.path(&top), 0x41, 3 * MIB, 256 * 1024);
    write_pattern(&pool.path(&top), 0x42, 4 * MIB, 4096); // over the base's 0x12
    pool.layer_create(&other, None, 8 * MIB).await.unwrap();

    let top_disk = read_disk(&pool.path(&top), "qcow2");
    let m2_disk = read_disk(&pool.path(&m2), "qcow2");
    let at = |d: &[u8], off: u64| d[off as usize];
    let expected = [(0, 0), (64 * 1024, 0x11), (MIB, 0x32), (MIB + 4096, 0x21), (2 * MIB, 0x31), (3 * MIB, 0x41), (4 * MIB, 0x42)];
    for (off, byte) in expected.into_iter().chain([(4 * MIB + 4096, 0x12), (9 * MIB, 0x33), (15 * MIB, 0)]) {
        assert_eq!(at(&top_disk, off), byte, "the chain reads {byte:#x} at {off}");
    }

    // Refusals: a new backing that is not below the layer, the layer itself, a layer above
    // it, a missing one; a missing layer. Nothing changes.
    let refused = |what: &'static str, id: LayerId, b: Option<LayerId>, needle: &'static str| {
        let pool = pool.clone();
        async move {
            let err = pool.layer_rebase(&id, b.as_ref()).await.unwrap_err().to_string();
            eprintln!("[error] rebasing {what}: {err}");
            assert!(err.contains(needle), "{what}: {err}");
        }
    };
    refused("onto an unrelated layer", top.clone(), Some(other.clone()), "is not below").await;
    refused("onto itself", top.clone(), Some(top.clone()), "is not below").await;
    refused("onto a layer above it", m1.clone(), Some(m2.clone()), "is not below").await;
    refused("onto a missing layer", top.clone(), Some(layer(99)), "is not below").await;
    refused("a missing layer", layer(98), None, "does not exist").await;
    assert_eq!(pool.backing_of(&top).unwrap(), Some(m2.clone()));
    assert_eq!(pool.backing_of(&m1).unwrap(), Some(base.clone()));
    assert_eq!(read_disk(&pool.path(&top), "qcow2"), top_disk);

    // Onto the backing it has: nothing to do.
    pool.layer_rebase(&top, Some(&m2)).await.unwrap();
    pool.layer_rebase(&base, None).await.unwrap();
    assert_eq!(pool.backing_of(&top).unwrap(), Some(m2.clone()));

    // An intermediate layer: m2 onto the base, dropping m1. m2 and the top above it read the
    // same, and m1 can go.
    let t = std::time::Instant::now();
    pool.layer_rebase(&m2, Some(&base)).await.unwrap();
    let first = t.elapsed();
    assert_eq!(pool.backing_of(&m2).unwrap(), Some(base.clone()));
    let info = qemu_img_info(&pool.path(&m2));
    assert_eq!(info["backing-filename"].as_str().unwrap(), pool.path(&base).to_str().unwrap(), "an absolute path");
    assert_eq!(info["backing-filename-format"].as_str().unwrap(), "qcow2");
    assert_eq!(read_disk(&pool.path(&m2), "qcow2"), m2_disk);
    assert_eq!(read_disk(&pool.path(&top), "qcow2"), top_disk);
    pool.layer_delete(&m1).await.unwrap();
    assert_eq!(read_disk(&pool.path(&top), "qcow2"), top_disk, "nothing reads the dropped layer");

    // The top onto the base, dropping m2; again, idempotently.
    pool.layer_rebase(&top, Some(&base)).await.unwrap();
    pool.layer_rebase(&top, Some(&base)).await.unwrap();
    assert_eq!(pool.backing_of(&top).unwrap(), Some(base.clone()));
    pool.layer_delete(&m2).await.unwrap();
    assert_eq!(read_disk(&pool.path(&top), "qcow2"), top_disk);

    // Onto nothing: the top holds everything it reads; the base can go too.
    pool.layer_rebase(&top, None).await.unwrap();
    pool.layer_rebase(&top, None).await.unwrap();
    assert_eq!(pool.backing_of(&top).unwrap(), None);
    assert!(qemu_img_info(&pool.path(&top)).get("backing-filename").is_none());
    pool.layer_delete(&base).await.unwrap();
    assert_eq!(read_disk(&pool.path(&top), "qcow2"), top_disk);
    assert_eq!(pool.layer_size(&top).await.unwrap(), Some(16 * MIB), "the size stays");
    assert_eq!(names(pool.dir()), vec![format!("{top}.qcow2"), format!("{other}.qcow2")], "no temporary files");
    let check = corral_exec::run_blocking("qemu-img", &["check".as_ref(), "-f".as_ref(), "qcow2".as_ref(), pool.path(&top).as_os_str()]);
    assert!(check.is_ok(), "qemu-img check: {check:?}");
    eprintln!("[figures] rebasing a layer over a 3-layer chain: {first:?}");
}

#[tokio::test]
async fn resize_grows_only_and_delete_is_idempotent_and_careful() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pool = Pool::new(tmp.path().join("pool"));
    pool.layer_create(&layer(1), None, 4 * MIB).await.unwrap();
    write_pattern(&pool.path(&layer(1)), 0x33, 0, 4096);
    pool.layer_resize(&layer(1), 10 * MIB).await.unwrap();
    assert_eq!(pool.layer_size(&layer(1)).await.unwrap(), Some(10 * MIB));
    pool.layer_resize(&layer(1), 2 * MIB).await.unwrap(); // never shrinks
    assert_eq!(pool.layer_size(&layer(1)).await.unwrap(), Some(10 * MIB));
    assert_eq!(read_disk(&pool.path(&layer(1)), "qcow2")[0], 0x33, "data survives growing");
    assert!(pool.layer_resize(&layer(2), MIB).await.is_err(), "no such layer");

    pool.layer_create(&layer(2), Some(&layer(1)), 10 * MIB).await.unwrap();
    let err = pool.layer_delete(&layer(1)).await.unwrap_err().to_string();
    assert!(err.contains("still backs") && err.contains(layer(2).as_str()), "{err}");
    assert!(pool.path(&layer(1)).exists());
    pool.layer_delete(&layer(2)).await.unwrap();
    pool.layer_delete(&layer(2)).await.unwrap();
    pool.layer_delete(&layer(1)).await.unwrap();
    pool.layer_delete(&layer(1)).await.unwrap();
    assert!(names(pool.dir()).is_empty());
}

#[tokio::test]
async fn usage_counts_allocated_blocks_and_free_space() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pool = Pool::new(tmp.path().join("pool"));
    let empty = pool.usage().await.unwrap();
    assert_eq!((empty.layers, empty.used_bytes), (0, 0));
    assert!(empty.free_bytes > 0);
    assert_eq!(empty.path, pool.dir().display().to_string());

    let raw = tmp.path().join("src.img");
    std::fs::write(&raw, noise(2 * MIB as usize, 5)).unwrap();
    pool.layer_import(&layer(1), &raw).await.unwrap();
    pool.layer_create(&layer(2), None, 1 << 40).await.unwrap(); // 1 TiB, sparse
                                                                // Not a layer: ignored.
    std::fs::write(pool.dir().join("notes.txt"), vec![1u8; 65536]).unwrap();
    let u = pool.usage().await.unwrap();
    assert_eq!(u.layers, 2);
    assert!(u.used_bytes >= 2 * MIB, "{u:?}");
    assert!(u.used_bytes < 4 * MIB, "allocated blocks, not virtual sizes: {u:?}");
}

/// A tmpfs mounted on a directory for the test's life (unmounted on drop, even on failure).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let opts = format!("size={size}");
        match corral_exec::run_blocking(
            "mount",
            &["-t".as_ref(), "tmpfs".as_ref(), "-o".as_ref(), opts.as_ref(), "tmpfs".as_ref(), dir.as_os_str()],
        ) {
            Ok(_) => Some(Tmpfs(dir.to_path_buf())),
            Err(e) => {
                eprintln!("SKIPPING the full-disk case: cannot mount a tmpfs here ({e})");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Err(e) = corral_exec::run_blocking("umount", &[self.0.as_os_str()]) {
            eprintln!("could not unmount {}: {e}", self.0.display());
        }
    }
}

#[tokio::test]
async fn a_full_file_system_leaves_no_partial_layer() {
    if !tools() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&tmp.path().join("small"), "2m") else { return };
    let pool = Pool::new(fs.0.join("pool"));
    let raw = tmp.path().join("big.img");
    std::fs::write(&raw, noise(8 * MIB as usize, 9)).unwrap();

    let err = pool.layer_import(&layer(1), &raw).await.unwrap_err();
    let msg = format!("{err}: {:?}", std::error::Error::source(&err).map(|s| s.to_string()));
    eprintln!("[refused] import into a full pool: {msg}");
    assert!(msg.to_lowercase().contains("no space"), "{msg}");
    assert!(names(pool.dir()).is_empty(), "nothing left: {:?}", names(pool.dir()));

    // Fill the file system to the last byte: creating even an empty layer fails, cleanly.
    pool.layer_create(&layer(2), None, MIB).await.unwrap();
    {
        use std::io::Write;
        let mut filler = std::fs::File::create(fs.0.join("filler")).unwrap();
        let chunk = vec![7u8; 4096];
        while filler.write_all(&chunk).is_ok() {}
        let _ = filler.write_all(&chunk[..1]); // and the last partial block
    }
    let before = names(pool.dir());
    let err = pool.layer_create(&layer(3), Some(&layer(2)), MIB).await.unwrap_err();
    eprintln!("[refused] create in a full pool: {}", err);
    let err = pool.layer_flatten(&layer(4), &layer(2)).await.unwrap_err();
    eprintln!("[refused] flatten in a full pool: {}", err);
    assert_eq!(names(pool.dir()), before, "nothing left by the failed create and flatten");
    drop(fs);
}
