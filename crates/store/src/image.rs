//! Registered machine images.

use crate::{Result, Tx};
use rusqlite::{params, OptionalExtension, Row};

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
}

const COLS: &str = "image_id, name, description, owner_id, state, created_at, base_disk, kernel, initrd, cmdline, size_bytes, recipe_hash, root_device_name, is_public";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ImageRecord> {
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
    })
}

impl Tx<'_> {
    /// Inserts `img`, or, if an image of that name exists, updates its artifacts and keeps its id.
    /// Returns the id in force.
    pub fn image_upsert_by_name(&self, img: &ImageRecord) -> Result<String> {
        if let Some(existing) = self.image_get_by_name(&img.name)? {
            self.tx.execute(
                "UPDATE images SET description=?2, base_disk=?3, kernel=?4, initrd=?5, cmdline=?6, size_bytes=?7, recipe_hash=?8, state=?9 WHERE image_id=?1",
                params![existing.image_id, img.description, img.base_disk, img.kernel, img.initrd, img.cmdline, img.size_bytes as i64, img.recipe_hash, img.state],
            )?;
            return Ok(existing.image_id);
        }
        self.tx.execute(
            &format!("INSERT INTO images({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
            params![
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
                img.is_public
            ],
        )?;
        Ok(img.image_id.clone())
    }

    pub fn image_get(&self, id: &str) -> Result<Option<ImageRecord>> {
        Ok(self.tx.query_row(&format!("SELECT {COLS} FROM images WHERE image_id = ?1"), [id], from_row).optional()?)
    }

    pub fn image_get_by_name(&self, name: &str) -> Result<Option<ImageRecord>> {
        Ok(self.tx.query_row(&format!("SELECT {COLS} FROM images WHERE name = ?1"), [name], from_row).optional()?)
    }

    pub fn image_list(&self) -> Result<Vec<ImageRecord>> {
        let mut st = self.tx.prepare(&format!("SELECT {COLS} FROM images ORDER BY name"))?;
        let rows = st.query_map([], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
