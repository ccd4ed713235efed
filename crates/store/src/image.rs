//! Registered machine images.

use crate::{Result, Tx};
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    pub image_id: String,
    pub name: String,
    pub description: String,
    pub owner_id: String,
    pub state: String,
    pub created_at: String,
    pub base_disk: String,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: String,
    pub size_bytes: u64,
    pub recipe_hash: String,
    pub root_device_name: String,
    pub is_public: bool,
    /// What a launch gets, root included (`root_device_name`).
    pub block_devices: Vec<ImageBlockDevice>,
    /// Account ids allowed to launch it besides its owner.
    pub launch_users: Vec<String>,
    /// When it is (or was) deprecated (EnableImageDeprecation), as EC2 formats times.
    pub deprecation_time: Option<String>,
}

/// One entry of an image's block device mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageBlockDevice {
    pub device_name: String,
    /// `None`: an empty volume of `volume_size_gib`.
    pub snapshot_id: Option<String>,
    pub volume_size_gib: u64,
    pub delete_on_termination: bool,
    pub volume_type: String,
}

impl ImageRecord {
    /// The mapping of the root device, if the image has one.
    pub fn root_block_device(&self) -> Option<&ImageBlockDevice> {
        self.block_devices.iter().find(|b| b.device_name == self.root_device_name)
    }
}

pub(crate) const COLS: &str = "image_id, name, description, owner_id, state, created_at, base_disk, kernel, initrd, cmdline, size_bytes, recipe_hash, root_device_name, is_public, block_devices, launch_users, deprecation_time";

fn json_col<T: serde::de::DeserializeOwned>(r: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    serde_json::from_str(&text).map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<ImageRecord> {
    Ok(ImageRecord {
        image_id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        owner_id: r.get(3)?,
        state: r.get(4)?,
        created_at: r.get(5)?,
        base_disk: r.get(6)?,
        kernel: r.get(7)?,
        initrd: r.get(8)?,
        cmdline: r.get(9)?,
        size_bytes: r.get::<_, i64>(10)? as u64,
        recipe_hash: r.get(11)?,
        root_device_name: r.get(12)?,
        is_public: r.get(13)?,
        block_devices: json_col(r, 14)?,
        launch_users: json_col(r, 15)?,
        deprecation_time: r.get(16)?,
    })
}

impl Tx<'_> {
    /// Inserts `img`, or, if an image of that name exists, updates its artifacts and keeps its id.
    /// Returns the id in force.
    pub fn image_upsert_by_name(&self, img: &ImageRecord) -> Result<String> {
        if let Some(existing) = self.image_get_by_name(&img.name)? {
            self.tx.prepare_cached("UPDATE images SET description=?2, base_disk=?3, kernel=?4, initrd=?5, cmdline=?6, size_bytes=?7, recipe_hash=?8, state=?9, block_devices=?10 WHERE image_id=?1")?.execute(params![
                    existing.image_id,
                    img.description,
                    img.base_disk,
                    img.kernel,
                    img.initrd,
                    img.cmdline,
                    img.size_bytes as i64,
                    img.recipe_hash,
                    img.state,
                    to_json(&img.block_devices)
                ],
            )?;
            return Ok(existing.image_id);
        }
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO images({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
            ))?
            .execute(params![
                img.image_id,
                img.name,
                img.description,
                img.owner_id,
                img.state,
                img.created_at,
                img.base_disk,
                img.kernel,
                img.initrd,
                img.cmdline,
                img.size_bytes as i64,
                img.recipe_hash,
                img.root_device_name,
                img.is_public,
                to_json(&img.block_devices),
                to_json(&img.launch_users),
                img.deprecation_time
            ])?;
        Ok(img.image_id.clone())
    }

    pub fn image_get(&self, id: &str) -> Result<Option<ImageRecord>> {
        Ok(self.tx.prepare_cached(&format!("SELECT {COLS} FROM images WHERE image_id = ?1"))?.query_row([id], from_row).optional()?)
    }

    pub fn image_get_by_name(&self, name: &str) -> Result<Option<ImageRecord>> {
        Ok(self.tx.prepare_cached(&format!("SELECT {COLS} FROM images WHERE name = ?1"))?.query_row([name], from_row).optional()?)
    }

    /// Inserts a new image; `false` if the name is taken.
    pub fn image_insert(&self, img: &ImageRecord) -> Result<bool> {
        if self.image_get_by_name(&img.name)?.is_some() {
            return Ok(false);
        }
        self.image_upsert_by_name(img)?;
        Ok(true)
    }

    /// Updates the mutable attributes of an image.
    pub fn image_update(&self, img: &ImageRecord) -> Result<()> {
        self.tx.prepare_cached("UPDATE images SET description=?2, state=?3, is_public=?4, launch_users=?5, block_devices=?6, deprecation_time=?7 WHERE image_id=?1")?.execute(params![
                img.image_id,
                img.description,
                img.state,
                img.is_public,
                to_json(&img.launch_users),
                to_json(&img.block_devices),
                img.deprecation_time
            ],
        )?;
        Ok(())
    }

    pub fn image_delete(&self, id: &str) -> Result<bool> {
        Ok(self.tx.prepare_cached("DELETE FROM images WHERE image_id = ?1")?.execute([id])? == 1)
    }

    pub fn image_list(&self) -> Result<Vec<ImageRecord>> {
        let mut st = self.tx.prepare_cached(&format!("SELECT {COLS} FROM images ORDER BY name"))?;
        let rows = st.query_map([], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
