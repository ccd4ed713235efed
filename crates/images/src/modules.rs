//! Kernel modules: finds them in an extracted kernel tree, resolves dependencies from each
//! module's `.modinfo` (`depends=`), so no `depmod`/`modinfo` is needed on the build host, and
//! writes a `modules.dep` for the subset an image carries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::ImageError;

/// One loadable module of a kernel.
#[derive(Debug, Clone)]
pub(crate) struct Module {
    /// Canonical name (dashes turned into underscores), as in `depends=`.
    pub name: String,
    /// Path relative to `/lib/modules/<version>/`, e.g. `kernel/drivers/block/virtio_blk.ko`
    /// (compressed modules keep their `.xz`/`.zst` suffix here; see [`Module::plain_rel`]).
    pub rel: String,
    pub deps: Vec<String>,
}

impl Module {
    /// The path after decompression (busybox `insmod` loads plain `.ko` files only).
    pub(crate) fn plain_rel(&self) -> String {
        self.rel.trim_end_matches(".xz").trim_end_matches(".zst").to_string()
    }
}

/// The modules of one kernel version.
pub(crate) struct ModuleIndex {
    /// `<tree>/lib/modules/<version>` (or `usr/lib/...`).
    pub dir: PathBuf,
    pub version: String,
    modules: BTreeMap<String, PathBuf>,
    builtin: BTreeSet<String>,
}

fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

fn module_name(file_name: &str) -> Option<String> {
    let stem = file_name.strip_suffix(".ko").or_else(|| file_name.strip_suffix(".ko.xz")).or_else(|| file_name.strip_suffix(".ko.zst"))?;
    Some(canonical(stem))
}

impl ModuleIndex {
    /// Indexes `<root>/lib/modules/<version>/`; exactly one version must be present.
    pub(crate) fn open(root: &Path) -> Result<Self, ImageError> {
        let base = root.join("lib/modules");
        let versions: Vec<String> = std::fs::read_dir(&base)
            .map_err(ImageError::io("list", &base))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("kernel").is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        let [version] = versions.as_slice() else {
            return Err(ImageError::Module {
                module: "*".into(),
                dir: base,
                reason: format!("expected one kernel version, found {versions:?}"),
            });
        };
        let dir = base.join(version);
        let mut modules = BTreeMap::new();
        let mut stack = vec![dir.join("kernel")];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).map_err(ImageError::io("list", &d))? {
                let entry = entry.map_err(ImageError::io("list", &d))?;
                let path = entry.path();
                let ft = entry.file_type().map_err(ImageError::io("stat", &path))?;
                if ft.is_dir() {
                    stack.push(path);
                } else if let Some(name) = entry.file_name().to_str().and_then(module_name) {
                    modules.insert(name, path);
                }
            }
        }
        let builtin = std::fs::read_to_string(dir.join("modules.builtin"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.rsplit('/').next().and_then(module_name))
            .collect();
        Ok(ModuleIndex { dir, version: version.clone(), modules, builtin })
    }

    pub(crate) fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&canonical(name))
    }

    /// The named modules and everything they depend on, dependencies before dependants, each
    /// once. Names that are built into the kernel are skipped.
    pub(crate) async fn closure(&self, wanted: &[&str]) -> Result<Vec<Module>, ImageError> {
        let mut done: BTreeMap<String, Module> = BTreeMap::new();
        let mut order = Vec::new();
        for w in wanted {
            let name = canonical(w);
            if self.is_builtin(&name) && !self.modules.contains_key(&name) {
                continue;
            }
            self.visit(&name, &mut done, &mut order, &mut Vec::new()).await?;
        }
        Ok(order.into_iter().map(|n| done[&n].clone()).collect())
    }

    async fn visit(
        &self,
        name: &str,
        done: &mut BTreeMap<String, Module>,
        order: &mut Vec<String>,
        path: &mut Vec<String>,
    ) -> Result<(), ImageError> {
        if done.contains_key(name) {
            return Ok(());
        }
        if path.iter().any(|p| p == name) {
            return Err(self.error(name, format!("dependency cycle through {path:?}")));
        }
        let module = self.load(name).await?;
        path.push(name.to_string());
        for dep in &module.deps {
            Box::pin(self.visit(dep, done, order, path)).await?;
        }
        path.pop();
        order.push(name.to_string());
        done.insert(name.to_string(), module);
        Ok(())
    }

    fn error(&self, module: &str, reason: String) -> ImageError {
        ImageError::Module { module: module.to_string(), dir: self.dir.clone(), reason }
    }

    /// The module's bytes, decompressed when stored as `.ko.xz` / `.ko.zst`.
    pub(crate) async fn read(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.modules.get(name).ok_or_else(|| self.error(name, "no such module file".into()))?;
        let data = tokio::fs::read(path).await.map_err(ImageError::io("read", path))?;
        let tool = match path.extension().and_then(|e| e.to_str()) {
            Some("xz") => "xz",
            Some("zst") => "zstd",
            _ => return Ok(data),
        };
        let out = corral_exec::run_with_stdin(tool, &["-dc"], Some(&data))
            .await
            .map_err(ImageError::command(format!("decompressing {}", path.display())))?;
        Ok(out.stdout)
    }

    async fn load(&self, name: &str) -> Result<Module, ImageError> {
        let path = self
            .modules
            .get(name)
            .ok_or_else(|| self.error(name, if self.is_builtin(name) { "built in".into() } else { "no such module".into() }))?;
        let data = self.read(name).await?;
        let info = crate::elf::modinfo(&data).map_err(|e| self.error(name, e))?;
        let deps = info
            .iter()
            .filter(|(k, _)| k == "depends")
            .flat_map(|(_, v)| v.split(',').map(canonical).collect::<Vec<_>>())
            .filter(|d| !d.is_empty())
            .collect();
        let rel =
            path.strip_prefix(&self.dir).map_err(|_| self.error(name, "module outside its tree".into()))?.to_string_lossy().into_owned();
        Ok(Module { name: name.to_string(), rel, deps })
    }

    /// Copies `modules` (decompressed) into `<dest_root>/lib/modules/<version>/`, with a
    /// `modules.dep` (busybox modprobe's format) and the kernel's `modules.builtin`.
    pub(crate) async fn install(&self, modules: &[Module], dest_root: &Path) -> Result<(), ImageError> {
        let dest = dest_root.join("lib/modules").join(&self.version);
        let mut dep = String::new();
        let by_name: BTreeMap<&str, &Module> = modules.iter().map(|m| (m.name.as_str(), m)).collect();
        for m in modules {
            let target = dest.join(m.plain_rel());
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(ImageError::io("create", parent))?;
            }
            let data = self.read(&m.name).await?;
            tokio::fs::write(&target, data).await.map_err(ImageError::io("write", &target))?;
            // modules.dep lists all transitive dependencies such that loading them from the last
            // to the first works: `modules` is in load order, so emit the set in reverse of it.
            let mut needed = BTreeSet::new();
            let mut todo: Vec<&str> = m.deps.iter().map(String::as_str).collect();
            while let Some(d) = todo.pop() {
                if let Some(dm) = by_name.get(d) {
                    if needed.insert(d) {
                        todo.extend(dm.deps.iter().map(String::as_str));
                    }
                }
            }
            dep.push_str(&format!("{}:", m.plain_rel()));
            for dm in modules.iter().rev().filter(|x| needed.contains(x.name.as_str())) {
                dep.push(' ');
                dep.push_str(&dm.plain_rel());
            }
            dep.push('\n');
        }
        tokio::fs::create_dir_all(&dest).await.map_err(ImageError::io("create", &dest))?;
        let dep_path = dest.join("modules.dep");
        tokio::fs::write(&dep_path, dep).await.map_err(ImageError::io("write", &dep_path))?;
        for extra in ["modules.builtin", "modules.builtin.modinfo", "modules.order"] {
            let from = self.dir.join(extra);
            if from.is_file() {
                let to = dest.join(extra);
                tokio::fs::copy(&from, &to).await.map_err(ImageError::io("copy", &from))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_canonical() {
        assert_eq!(module_name("virtio-rng.ko").as_deref(), Some("virtio_rng"));
        assert_eq!(module_name("virtio_blk.ko.xz").as_deref(), Some("virtio_blk"));
        assert_eq!(module_name("modules.dep"), None);
    }
}
