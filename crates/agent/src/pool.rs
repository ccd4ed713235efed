//! The host's storage pool: one directory of qcow2 files, `<dir>/<layer-id>.qcow2`, each a
//! [`LayerId`]'s layer (see [`corral_agent_api::storage`] for what layers are).
//!
//! ```text
//! <pool>/
//!     l0123456789abcdef0.qcow2   a layer; its backing file, if any, is the absolute path of
//!     l0fedcba9876543210.qcow2   another layer of the same pool (qcow2 header)
//!     .l0123...qcow2.<pid>-<n>.tmp   a layer being written; renamed into place when whole
//! ```
//!
//! Layers are made with `qemu-img` (`create`, `convert`, `resize`) into a temporary name and
//! published with a hard link, which fails rather than replace a layer that appeared in the
//! meantime: a reader never sees half a layer, a failed command (a bad source, a full disk)
//! leaves nothing, and two makers of the same layer cannot clobber each other. Rebasing
//! ([`Storage::layer_rebase`]) changes a layer in place instead, in an order that keeps what it
//! reads the same at every instant (see [`Pool`]'s implementation). A layer's
//! virtual size and backing file are read straight from its qcow2 header, which works while a
//! VM has the layer open (QEMU keeps the header current, `block_resize` included) and costs
//! no process.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use corral_agent_api::{AgentError, LayerFile, LayerId, PoolUsage, Storage};
use serde_json::Value;

pub use qcow2::{read_qcow2_header, LayerHeader};

mod qcow2;

/// A directory of qcow2 layers, managed with `qemu-img`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Pool {
    dir: PathBuf,
    qemu_img: String,
}

impl Pool {
    /// A pool in `dir` (made absolute against the current directory, since backing files are
    /// recorded as absolute paths); `qemu-img` is found on `PATH`. Touches nothing: the
    /// directory is created by the first layer written.
    pub fn new(dir: impl Into<PathBuf>) -> Pool {
        let dir = dir.into();
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        Pool { dir, qemu_img: "qemu-img".to_string() }
    }

    /// Uses another `qemu-img` binary.
    pub fn with_qemu_img(mut self, qemu_img: impl Into<String>) -> Pool {
        self.qemu_img = qemu_img.into();
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of layer `id` (whether or not it exists).
    pub fn path(&self, id: &LayerId) -> PathBuf {
        self.dir.join(format!("{id}.qcow2"))
    }

    /// The layer a path of this pool holds (`<dir>/<id>.qcow2`), `None` for any other path.
    pub fn layer_of(&self, path: &Path) -> Option<LayerId> {
        if path.parent()? != self.dir {
            return None;
        }
        LayerId::parse(path.file_name()?.to_str()?.strip_suffix(".qcow2")?)
    }

    /// Layer `id`'s header; `None` when the layer does not exist.
    pub fn header(&self, id: &LayerId) -> Result<Option<LayerHeader>, AgentError> {
        let path = self.path(id);
        match read_qcow2_header(&path) {
            Ok(h) => Ok(Some(h)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AgentError::host(format!("reading the qcow2 header of layer {}", path.display()), e)),
        }
    }

    /// The layer that `id` is an overlay on, if any (an error if its backing file is not a
    /// layer of this pool).
    pub fn backing_of(&self, id: &LayerId) -> Result<Option<LayerId>, AgentError> {
        let Some(header) = self.header(id)? else {
            return Err(AgentError::Other(format!("layer {id} does not exist in {}", self.dir.display())));
        };
        match header.backing_file {
            None => Ok(None),
            Some(b) => self
                .layer_of(Path::new(&b))
                .map(Some)
                .ok_or_else(|| AgentError::Other(format!("layer {id} has a backing file outside the pool: {b}"))),
        }
    }

    /// The layers below `id`, nearest first: its backing layer, that one's, and so on (read
    /// from the headers; an error if a layer on the way is missing, outside the pool, or the
    /// chain loops).
    pub fn chain_below(&self, id: &LayerId) -> Result<Vec<LayerId>, AgentError> {
        let mut below: Vec<LayerId> = Vec::new();
        let mut cur = self.backing_of(id)?;
        while let Some(l) = cur {
            if &l == id || below.contains(&l) {
                return Err(AgentError::Other(format!("the backing chain of layer {id} loops at {l}")));
            }
            cur = self.backing_of(&l)?;
            below.push(l);
        }
        Ok(below)
    }

    /// The layers in the pool (files named like layers; temporary files are not layers).
    pub fn layers(&self) -> Result<Vec<LayerId>, AgentError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(AgentError::host(format!("listing pool {}", self.dir.display()), e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| AgentError::host(format!("listing pool {}", self.dir.display()), e))?;
            if let Some(id) = entry.file_name().to_str().and_then(|n| n.strip_suffix(".qcow2")).and_then(LayerId::parse) {
                out.push(id);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The pool's directory entries with how long ago each was last written, `None` where the
    /// pool does not exist yet. An entry deleted while we look is left out.
    fn entries_with_age(&self) -> Result<Vec<(String, std::time::Duration)>, AgentError> {
        let listing = |e| AgentError::host(format!("listing pool {}", self.dir.display()), e);
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(listing(e)),
        };
        let now = std::time::SystemTime::now();
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(listing)?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            let written = match entry.metadata().and_then(|m| m.modified()) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(listing(e)),
            };
            // A clock that went back makes a file look new: kept, never removed early.
            out.push((name, now.duration_since(written).unwrap_or_default()));
        }
        Ok(out)
    }

    fn create_dir(&self) -> Result<(), AgentError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| AgentError::host(format!("creating pool directory {}", self.dir.display()), e))
    }

    /// A fresh temporary path beside layer `id`'s final one (same file system, hidden from
    /// listings, unique within this host).
    fn temp_path(&self, id: &LayerId) -> PathBuf {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        self.dir.join(format!(".{id}.qcow2.{}-{}.tmp", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)))
    }

    /// The pid of the process writing a pool entry that is one of [`Pool::temp_path`]'s
    /// (`.<layer>.qcow2.<pid>-<n>.tmp`), `None` for any other entry.
    fn temp_writer(name: &str) -> Option<u32> {
        let (id, rest) = name.strip_prefix('.')?.strip_suffix(".tmp")?.split_once(".qcow2.")?;
        LayerId::parse(id)?;
        rest.split_once('-')?.0.parse().ok()
    }

    /// Runs `make(tmp)` and publishes `tmp` as layer `id`. On any failure the temporary file
    /// is removed. Returns `false` (and drops its own file) when the layer appeared
    /// meanwhile, made by someone else.
    async fn publish<F, Fut>(&self, id: &LayerId, what: &str, make: F) -> Result<bool, AgentError>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: std::future::Future<Output = Result<(), AgentError>>,
    {
        self.create_dir()?;
        let tmp = self.temp_path(id);
        let guard = RemoveOnDrop(tmp.clone());
        make(tmp.clone()).await?;
        let target = self.path(id);
        let published = match std::fs::hard_link(&tmp, &target) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(AgentError::host(format!("{what}: publishing {} as {}", tmp.display(), target.display()), e)),
        };
        drop(guard);
        Ok(published)
    }

    async fn qemu_img(&self, context: impl FnOnce() -> String, args: &[&std::ffi::OsStr]) -> Result<std::process::Output, AgentError> {
        corral_exec::run(&self.qemu_img, args).await.map_err(|e| AgentError::host(context(), e))
    }
}

/// Removes a file when dropped (a temporary layer on every path out of [`Pool::publish`]).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.0.display(), error = %e, "could not remove temporary layer file");
            }
        }
    }
}

/// What `qemu-img info` says about a file to import.
#[derive(Debug)]
struct SourceInfo {
    format: String,
    virtual_size: u64,
}

fn parse_source_info(source: &Path, json: &[u8]) -> Result<SourceInfo, AgentError> {
    let v: Value = serde_json::from_slice(json)
        .map_err(|e| AgentError::Other(format!("qemu-img info on {} gave unreadable JSON: {e}", source.display())))?;
    let format = v.get("format").and_then(Value::as_str).unwrap_or("").to_string();
    let virtual_size = v.get("virtual-size").and_then(Value::as_u64).unwrap_or(0);
    if format != "raw" && format != "qcow2" {
        return Err(AgentError::Other(format!("{} is a {format:?} disk image; only raw and qcow2 can be imported", source.display())));
    }
    // A backing file or an external data file would make QEMU read other files of the host.
    if let Some(b) = v.get("backing-filename").or_else(|| v.get("full-backing-filename")) {
        return Err(AgentError::Other(format!(
            "{} is a qcow2 overlay (backing file {b}); only self-contained images can be imported",
            source.display()
        )));
    }
    if let Some(d) = v.pointer("/format-specific/data/data-file") {
        return Err(AgentError::Other(format!(
            "{} keeps its data in an external file ({d}); only self-contained images can be imported",
            source.display()
        )));
    }
    if virtual_size == 0 {
        return Err(AgentError::Other(format!("{} is empty: a disk image of 0 bytes cannot be imported", source.display())));
    }
    Ok(SourceInfo { format, virtual_size })
}

/// `statvfs(2)`: bytes available to unprivileged users on the file system holding `path`.
#[allow(unsafe_code)] // libc::statvfs on a NUL-terminated path into a zeroed struct we own
fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: `c` is a valid C string; `st` is a plain-old-data struct the call fills in.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[async_trait::async_trait]
impl Storage for Pool {
    async fn layer_create(&self, id: &LayerId, backing: Option<&LayerId>, size_bytes: u64) -> Result<(), AgentError> {
        if self.path(id).exists() {
            return Ok(());
        }
        let backing_path = match backing {
            None => None,
            Some(b) => {
                let base = self.header(b)?.ok_or_else(|| AgentError::Other(format!("layer {b} (the backing of {id}) does not exist")))?;
                if base.virtual_size > size_bytes {
                    return Err(AgentError::Other(format!(
                        "layer {id} would be smaller ({size_bytes} bytes) than its backing layer {b} ({} bytes)",
                        base.virtual_size
                    )));
                }
                Some(self.path(b))
            }
        };
        if size_bytes == 0 {
            return Err(AgentError::Other(format!("layer {id} would be a disk of 0 bytes")));
        }
        let size = size_bytes.to_string();
        self.publish(id, &format!("creating layer {id}"), |tmp| async move {
            let mut args: Vec<&std::ffi::OsStr> = vec!["create".as_ref(), "-q".as_ref(), "-f".as_ref(), "qcow2".as_ref()];
            if let Some(b) = &backing_path {
                // The backing file is opened (read-only, sharing) to check it; a backing
                // layer that a running VM writes to is fine (live snapshots do exactly that).
                args.extend(["-b".as_ref(), b.as_os_str(), "-F".as_ref(), "qcow2".as_ref()]);
            }
            args.extend([tmp.as_os_str(), size.as_ref()]);
            self.qemu_img(|| format!("creating layer {id}"), &args).await.map(drop)
        })
        .await?;
        Ok(())
    }

    async fn layer_import(&self, id: &LayerId, source: &Path) -> Result<u64, AgentError> {
        if let Some(h) = self.header(id)? {
            return Ok(h.virtual_size);
        }
        let meta = std::fs::metadata(source).map_err(|e| AgentError::host(format!("importing {} as layer {id}", source.display()), e))?;
        if meta.is_dir() {
            return Err(AgentError::Other(format!("{} is a directory, not a disk image", source.display())));
        }
        let out = self
            .qemu_img(
                || format!("inspecting {} to import it as layer {id}", source.display()),
                &["info".as_ref(), "--output=json".as_ref(), source.as_os_str()],
            )
            .await?;
        let info = parse_source_info(source, &out.stdout)?;
        self.publish(id, &format!("importing {} as layer {id}", source.display()), |tmp| async move {
            // The format is named explicitly: a raw file is never probed again.
            let args: [&std::ffi::OsStr; 8] = [
                "convert".as_ref(),
                "-q".as_ref(),
                "-f".as_ref(),
                info.format.as_ref(),
                "-O".as_ref(),
                "qcow2".as_ref(),
                source.as_os_str(),
                tmp.as_os_str(),
            ];
            self.qemu_img(|| format!("importing {} as layer {id}", source.display()), &args).await.map(drop)
        })
        .await?;
        Ok(self.header(id)?.map(|h| h.virtual_size).unwrap_or(info.virtual_size))
    }

    async fn layer_flatten(&self, id: &LayerId, source: &LayerId) -> Result<(), AgentError> {
        if self.path(id).exists() {
            return Ok(());
        }
        let src = self.path(source);
        if !src.exists() {
            return Err(AgentError::Other(format!("layer {source} (to flatten into {id}) does not exist")));
        }
        self.publish(id, &format!("flattening layer {source} into {id}"), |tmp| async move {
            // convert reads through the whole backing chain and writes one standalone file.
            let args: [&std::ffi::OsStr; 8] = [
                "convert".as_ref(),
                "-q".as_ref(),
                "-f".as_ref(),
                "qcow2".as_ref(),
                "-O".as_ref(),
                "qcow2".as_ref(),
                src.as_os_str(),
                tmp.as_os_str(),
            ];
            self.qemu_img(|| format!("flattening layer {source} into {id}"), &args).await.map(drop)
        })
        .await?;
        Ok(())
    }

    /// `qemu-img rebase` in its safe mode: it opens `id` over both its old and its new backing,
    /// writes into `id` every range where the two read differently and `id` holds nothing of
    /// its own (so the data comes from the layers skipped), then rewrites the header.
    ///
    /// With qemu-img's default cache mode (writeback) that is **not** crash-safe: the copied
    /// ranges' L2 table and refcount updates stay in qemu-img's metadata cache until it
    /// closes the image, after the header already names the new backing. Measured with
    /// QEMU 10.0.2, killing `qemu-img rebase` right after its header write (gdb on `pwrite64`)
    /// leaves a layer on its new backing whose copied clusters are unmapped, reading the new
    /// backing's data there instead. With `-t writethrough` every write is flushed (data,
    /// then its metadata, then `fdatasync`) before the next one, so the header is written only
    /// once everything copied is on disk and mapped: the same kill at every write leaves the
    /// layer either on its old backing with extra clusters holding exactly what that backing
    /// read, or on the new one, complete; both read the same. The price is one `fdatasync`
    /// per chunk copied (~1 MiB: 257 for 256 MiB, 0.4 s here).
    async fn layer_rebase(&self, id: &LayerId, backing: Option<&LayerId>) -> Result<(), AgentError> {
        let pool = self.clone();
        let target = id.clone();
        let below = tokio::task::spawn_blocking(move || pool.chain_below(&target))
            .await
            .map_err(|e| AgentError::Other(format!("reading the chain of layer {id}: {e}")))??;
        if below.first() == backing {
            return Ok(()); // there already (or never had a backing and none is wanted)
        }
        if let Some(b) = backing {
            if !below.contains(b) {
                let chain = below.iter().map(LayerId::as_str).collect::<Vec<_>>().join(", ");
                return Err(AgentError::Other(format!(
                    "layer {b} is not below layer {id} ({})",
                    if chain.is_empty() { "which has no backing".to_string() } else { format!("below it, nearest first: {chain}") }
                )));
            }
        }
        let path = self.path(id);
        let new_backing = backing.map(|b| self.path(b)).unwrap_or_default();
        let os = std::ffi::OsStr::new;
        let mut args = vec![os("rebase"), os("-q"), os("-t"), os("writethrough"), os("-f"), os("qcow2")];
        if backing.is_some() {
            args.extend([os("-F"), os("qcow2")]);
        }
        // An empty -b: no backing at all (everything the chain reads is copied into `id`).
        args.extend([os("-b"), new_backing.as_os_str(), path.as_os_str()]);
        let what = || match backing {
            Some(b) => format!("rebasing layer {id} onto layer {b}"),
            None => format!("rebasing layer {id} onto no backing"),
        };
        self.qemu_img(what, &args).await?;
        let now = self.backing_of(id)?;
        if now.as_ref() != backing {
            return Err(AgentError::Other(format!("{}: qemu-img succeeded but the layer's backing is {now:?}", what())));
        }
        Ok(())
    }

    async fn layer_resize(&self, id: &LayerId, size_bytes: u64) -> Result<(), AgentError> {
        let header = self.header(id)?.ok_or_else(|| AgentError::Other(format!("layer {id} does not exist")))?;
        if header.virtual_size >= size_bytes {
            return Ok(());
        }
        let path = self.path(id);
        let size = size_bytes.to_string();
        self.qemu_img(
            || format!("growing layer {id} to {size_bytes} bytes"),
            &["resize".as_ref(), "-q".as_ref(), "-f".as_ref(), "qcow2".as_ref(), path.as_os_str(), size.as_ref()],
        )
        .await?;
        Ok(())
    }

    async fn layer_delete(&self, id: &LayerId) -> Result<(), AgentError> {
        let path = self.path(id);
        if !path.exists() {
            return Ok(());
        }
        // The caller promises nothing builds on it; deleting a backing file would break every
        // disk above it, so check (a header read per layer).
        let pool = self.clone();
        let target = id.clone();
        let user = tokio::task::spawn_blocking(move || -> Result<Option<LayerId>, AgentError> {
            for other in pool.layers()? {
                if other != target
                    && pool.header(&other).ok().flatten().and_then(|h| h.backing_file).is_some_and(|b| Path::new(&b) == pool.path(&target))
                {
                    return Ok(Some(other));
                }
            }
            Ok(None)
        })
        .await
        .map_err(|e| AgentError::Other(format!("checking what builds on layer {id}: {e}")))??;
        if let Some(user) = user {
            return Err(AgentError::Other(format!("layer {id} still backs layer {user}")));
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(AgentError::host(format!("deleting layer {}", path.display()), e)),
        }
    }

    async fn layer_size(&self, id: &LayerId) -> Result<Option<u64>, AgentError> {
        Ok(self.header(id)?.map(|h| h.virtual_size))
    }

    async fn usage(&self) -> Result<PoolUsage, AgentError> {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || -> Result<PoolUsage, AgentError> {
            use std::os::unix::fs::MetadataExt;
            pool.create_dir()?;
            let layers = pool.layers()?;
            let mut used_bytes = 0u64;
            for id in &layers {
                match std::fs::metadata(pool.path(id)) {
                    Ok(m) => used_bytes = used_bytes.saturating_add(m.blocks().saturating_mul(512)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // deleted meanwhile
                    Err(e) => return Err(AgentError::host(format!("reading {}", pool.path(id).display()), e)),
                }
            }
            let free_bytes = free_bytes(&pool.dir).map_err(|e| AgentError::host(format!("statvfs on pool {}", pool.dir.display()), e))?;
            Ok(PoolUsage { path: pool.dir.display().to_string(), layers: layers.len() as u64, used_bytes, free_bytes })
        })
        .await
        .map_err(|e| AgentError::Other(format!("measuring the pool: {e}")))?
    }

    async fn layer_files(&self) -> Result<Vec<LayerFile>, AgentError> {
        let pool = self.clone();
        let entries = tokio::task::spawn_blocking(move || pool.entries_with_age())
            .await
            .map_err(|e| AgentError::Other(format!("listing the pool: {e}")))??;
        let mut files: Vec<LayerFile> = entries
            .into_iter()
            .filter_map(|(name, age)| Some(LayerFile { layer: LayerId::parse(name.strip_suffix(".qcow2")?)?, age }))
            .collect();
        files.sort_by(|a, b| a.layer.cmp(&b.layer));
        Ok(files)
    }

    async fn temp_sweep(&self, older_than: std::time::Duration) -> Result<Vec<String>, AgentError> {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<String>, AgentError> {
            let mut removed = Vec::new();
            for (name, age) in pool.entries_with_age()? {
                // A write whose process still runs is in progress, however old or however
                // short the grace period (this process importing an image, `corral images
                // import` beside it); a dead writer's file is a leftover.
                let Some(writer) = Pool::temp_writer(&name) else { continue };
                if age < older_than || Path::new(&format!("/proc/{writer}")).exists() {
                    continue;
                }
                match std::fs::remove_file(pool.dir.join(&name)) {
                    Ok(()) => removed.push(name),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(AgentError::host(format!("removing temporary file {name} from the pool"), e)),
                }
            }
            removed.sort();
            Ok(removed)
        })
        .await
        .map_err(|e| AgentError::Other(format!("sweeping the pool's temporary files: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> LayerId {
        LayerId::parse(&format!("l{n:017x}")).unwrap()
    }

    #[test]
    fn paths_and_layer_names() {
        let pool = Pool::new("/var/lib/corral/pool");
        let l = id(0xabc);
        assert_eq!(pool.path(&l), Path::new("/var/lib/corral/pool/l00000000000000abc.qcow2"));
        assert_eq!(pool.layer_of(&pool.path(&l)), Some(l));
        assert_eq!(pool.layer_of(Path::new("/elsewhere/l00000000000000abc.qcow2")), None);
        assert_eq!(pool.layer_of(Path::new("/var/lib/corral/pool/x.qcow2")), None);
        assert!(Pool::new("rel").dir().is_absolute());
    }

    /// Sets a file's modification time `ago` in the past.
    fn age_file(path: &Path, ago: std::time::Duration) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(std::time::SystemTime::now() - ago).unwrap();
    }

    #[tokio::test]
    async fn layer_files_have_ages_and_only_old_temporary_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::new(dir.path());
        assert!(pool.layer_files().await.unwrap().is_empty(), "no pool directory yet: nothing, not an error");
        let hour = std::time::Duration::from_secs(3600);
        let (old, new) = (id(1), id(2));
        for l in [&old, &new] {
            std::fs::write(pool.path(l), b"x").unwrap();
        }
        age_file(&pool.path(&old), hour);
        // A writer that is gone (pid 0 is never a process of ours), one that is young, and an
        // old one whose writer still runs (this test): only the first is a leftover.
        let old_tmp = format!(".{old}.qcow2.0-0.tmp");
        let new_tmp = format!(".{new}.qcow2.{}-7.tmp", u32::MAX);
        let live_tmp = format!(".{new}.qcow2.{}-8.tmp", std::process::id());
        let not_ours = ".other.tmp";
        for name in [&old_tmp, &new_tmp, &live_tmp, &not_ours.to_string(), &"notes.txt".to_string()] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
            age_file(&dir.path().join(name), hour);
        }
        age_file(&dir.path().join(&new_tmp), std::time::Duration::ZERO);

        let files = pool.layer_files().await.unwrap();
        assert_eq!(files.iter().map(|f| f.layer.clone()).collect::<Vec<_>>(), vec![old.clone(), new.clone()]);
        assert!(files[0].age >= hour - std::time::Duration::from_secs(60), "{files:?}");
        assert!(files[1].age < std::time::Duration::from_secs(60), "{files:?}");

        let swept = pool.temp_sweep(std::time::Duration::from_secs(600)).await.unwrap();
        assert_eq!(swept, vec![old_tmp.clone()]);
        for (name, stays) in
            [(old_tmp.as_str(), false), (new_tmp.as_str(), true), (live_tmp.as_str(), true), (not_ours, true), ("notes.txt", true)]
        {
            assert_eq!(dir.path().join(name).exists(), stays, "{name}");
        }
        assert!(pool.path(&old).exists(), "layers are the control plane's to judge, never swept here");
    }

    #[test]
    fn source_info_is_checked() {
        let p = Path::new("/src");
        let ok = parse_source_info(p, br#"{"format":"raw","virtual-size":1048576}"#).unwrap();
        assert_eq!((ok.format.as_str(), ok.virtual_size), ("raw", 1048576));
        let bad = |json: &str| parse_source_info(p, json.as_bytes()).unwrap_err().to_string();
        assert!(bad(r#"{"format":"vmdk","virtual-size":1}"#).contains("only raw and qcow2"));
        assert!(bad(r#"{"format":"qcow2","virtual-size":1,"backing-filename":"/etc/shadow"}"#).contains("overlay"));
        assert!(bad(r#"{"format":"qcow2","virtual-size":1,"format-specific":{"type":"qcow2","data":{"data-file":"/dev/sda"}}}"#)
            .contains("external file"));
        assert!(bad(r#"{"format":"raw","virtual-size":0}"#).contains("empty"));
        assert!(parse_source_info(p, b"nope").is_err());
    }
}
