//! The images that come from outside the API: the ones Corral builds (registered, or refreshed
//! under the same id when their recipe changes) and the disks `corral images import` brings.
//! Each disk becomes a layer of the pool once, a completed snapshot of it, and an image whose
//! root device maps that snapshot.

use crate::device::ROOT_DEVICE_NAME;
use crate::image::{check_image_name, NewImage};
use crate::layer::{collect_layers, gib_ceil};
use crate::Control;
use corral_agent_api::LayerId;
use corral_store::{ImageBlockDevice, ImageRecord, KernelBoot, LayerRecord, SnapshotRecord};
use corral_types::{Error, ErrorCode, IdKind, ResourceId, Result};

impl Control {
    /// Registers (or refreshes) an image Corral built; its id stays the same across rebuilds.
    /// The built disk becomes a layer of the pool and the root snapshot of the image; with no
    /// disk (`base_disk` empty: the simulated hypervisor's placeholder) the layer is empty.
    pub async fn image_register_built(&self, img: NewImage) -> Result<String> {
        let existing = self.store.read(|tx| {
            let Some(i) = tx.image_get_by_name(&img.name)? else { return Ok::<_, Error>(None) };
            let snap_ok = match i.root_block_device().and_then(|b| b.snapshot_id.clone()) {
                Some(s) => tx.doc_get::<SnapshotRecord>(&s)?.is_some_and(|s| s.layer.is_some()),
                None => false,
            };
            Ok(Some((i, snap_ok)))
        })?;
        if let Some((i, true)) = &existing {
            if i.recipe_hash == img.recipe_hash && i.base_disk == img.base_disk {
                return Ok(i.image_id.clone());
            }
        }
        let layer = LayerId::random();
        let size_bytes = if img.base_disk.is_empty() {
            self.storage.layer_create(&layer, None, img.size_bytes).await.map(|()| img.size_bytes)
        } else {
            self.storage.layer_import(&layer, std::path::Path::new(&img.base_disk)).await
        }
        .map_err(|e| Error::internal(format!("adding {} to the storage pool: {e}: {:?}", img.base_disk, std::error::Error::source(&e))))?;
        let boot = img.kernel.as_ref().map(|k| KernelBoot { kernel: k.clone(), initrd: img.initrd.clone(), cmdline: img.cmdline.clone() });
        let (id, doomed) = self.store.transaction(|tx| {
            let snap = self.snapshot_of_layer(tx, &layer, size_bytes, format!("Root disk of {}", img.name), boot.clone())?;
            let rec = ImageRecord {
                image_id: ResourceId::generate(IdKind::Image).into_string(),
                name: img.name.clone(),
                description: img.description.clone(),
                owner_id: self.account_id.clone(),
                state: "available".into(),
                created_at: crate::now_iso(),
                base_disk: img.base_disk.clone(),
                kernel: img.kernel.clone(),
                initrd: img.initrd.clone(),
                cmdline: img.cmdline.clone(),
                size_bytes,
                recipe_hash: img.recipe_hash.clone(),
                root_device_name: ROOT_DEVICE_NAME.into(),
                is_public: false,
                block_devices: vec![root_mapping(&snap)],
                launch_users: vec![],
                deprecation_time: None,
            };
            let old = tx.image_get_by_name(&img.name)?;
            let mut released = Vec::new();
            let id = tx.image_upsert_by_name(&rec)?;
            // The previous build's snapshot goes unless another image uses it; instances
            // launched from it keep its layer alive until they are gone.
            if let Some(old_snap) = old.as_ref().and_then(|o| o.root_block_device()).and_then(|b| b.snapshot_id.clone()) {
                let used =
                    tx.image_list()?.iter().any(|i| i.block_devices.iter().any(|b| b.snapshot_id.as_deref() == Some(old_snap.as_str())));
                if !used {
                    if let Some(snap) = tx.doc_get::<SnapshotRecord>(&old_snap)? {
                        tx.doc_delete::<SnapshotRecord>(&old_snap)?;
                        released.extend(snap.layer);
                    }
                }
            }
            Ok::<_, Error>((id, collect_layers(tx, released)?))
        })?;
        self.layers_delete(doomed).await;
        Ok(id)
    }

    /// `corral images import`: a raw or qcow2 disk with its own bootloader becomes a layer, a
    /// snapshot and an image that boots through its firmware.
    pub async fn image_import(&self, name: &str, description: &str, source: &std::path::Path) -> Result<String> {
        check_image_name(name)?;
        if self.store.read(|tx| tx.image_get_by_name(name))?.is_some() {
            return Err(Error::new(ErrorCode::InvalidAmiNameDuplicate, format!("AMI name {name} is already in use by another AMI")));
        }
        let layer = LayerId::random();
        let size_bytes = self.storage.layer_import(&layer, source).await.map_err(|e| {
            Error::invalid_value("file", &source.display().to_string(), &format!("{e}: {:?}", std::error::Error::source(&e)))
        })?;
        let result = self.store.transaction(|tx| {
            let snap = self.snapshot_of_layer(tx, &layer, size_bytes, format!("Imported from {}", source.display()), None)?;
            let rec = ImageRecord {
                image_id: ResourceId::generate(IdKind::Image).into_string(),
                name: name.to_string(),
                description: description.to_string(),
                owner_id: self.account_id.clone(),
                state: "available".into(),
                created_at: crate::now_iso(),
                base_disk: String::new(),
                kernel: None,
                initrd: None,
                cmdline: String::new(),
                size_bytes,
                recipe_hash: String::new(),
                root_device_name: ROOT_DEVICE_NAME.into(),
                is_public: false,
                block_devices: vec![root_mapping(&snap)],
                launch_users: vec![],
                deprecation_time: None,
            };
            if !tx.image_insert(&rec)? {
                return Err(Error::new(ErrorCode::InvalidAmiNameDuplicate, format!("AMI name {name} is already in use by another AMI")));
            }
            Ok(rec.image_id)
        });
        if result.is_err() {
            let _ = self.storage.layer_delete(&layer).await;
        }
        result
    }

    /// A completed snapshot (and its layer record) for a disk that came from outside.
    fn snapshot_of_layer(
        &self,
        tx: &corral_store::Tx<'_>,
        layer: &LayerId,
        size_bytes: u64,
        description: String,
        boot: Option<KernelBoot>,
    ) -> Result<SnapshotRecord> {
        let now = crate::now_iso();
        tx.doc_put(&LayerRecord { layer_id: layer.to_string(), backing: None, created_at: now.clone() })?;
        let snap = SnapshotRecord {
            snapshot_id: ResourceId::generate(IdKind::Snapshot).into_string(),
            volume_id: "vol-ffffffff".into(),
            volume_size_gib: gib_ceil(size_bytes),
            owner_id: self.account_id.clone(),
            description,
            state: "completed".into(),
            state_message: None,
            started_at: now.clone(),
            completed_at: Some(now),
            layer: Some(layer.to_string()),
            pending_top: None,
            boot,
            public: false,
            volume_users: vec![],
        };
        tx.doc_put(&snap)?;
        Ok(snap)
    }
}

/// The root mapping of an image made of one snapshot.
fn root_mapping(snap: &SnapshotRecord) -> ImageBlockDevice {
    ImageBlockDevice {
        device_name: ROOT_DEVICE_NAME.into(),
        snapshot_id: Some(snap.snapshot_id.clone()),
        volume_size_gib: snap.volume_size_gib,
        delete_on_termination: true,
        volume_type: "gp2".into(),
    }
}
