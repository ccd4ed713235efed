//! One record read and written back by id, whatever table keeps it: what calls that change one
//! resource in place (the attribute calls) need from the store.

use crate::{Doc, ImageRecord, InstanceRecord, Result, Tx};

pub trait Stored: Sized {
    fn fetch(tx: &Tx<'_>, id: &str) -> Result<Option<Self>>;
    /// Writes every mutable field back.
    fn save(&self, tx: &Tx<'_>) -> Result<()>;
}

impl<T: Doc> Stored for T {
    fn fetch(tx: &Tx<'_>, id: &str) -> Result<Option<T>> {
        tx.doc_get(id)
    }
    fn save(&self, tx: &Tx<'_>) -> Result<()> {
        tx.doc_put(self)
    }
}

impl Stored for InstanceRecord {
    fn fetch(tx: &Tx<'_>, id: &str) -> Result<Option<InstanceRecord>> {
        tx.instance_get(id)
    }
    fn save(&self, tx: &Tx<'_>) -> Result<()> {
        tx.instance_update(self)
    }
}

impl Stored for ImageRecord {
    fn fetch(tx: &Tx<'_>, id: &str) -> Result<Option<ImageRecord>> {
        tx.image_get(id)
    }
    fn save(&self, tx: &Tx<'_>) -> Result<()> {
        tx.image_update(self)
    }
}
