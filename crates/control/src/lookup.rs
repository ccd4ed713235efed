//! Lookups by id, in one place: an id is checked against its kind's format (`Malformed`)
//! before the store is asked (`NotFound`), with the codes of the kind registry
//! ([`corral_types::KINDS`]).

use corral_store::{Doc, Tx};
use corral_types::{Error, IdKind, ResourceId, Result};

pub(crate) fn parse_id(kind: IdKind, id: &str) -> Result<()> {
    ResourceId::parse(kind, id).map(|_| ()).ok_or_else(|| Error::malformed(kind, id))
}

pub(crate) fn get<T: Doc>(tx: &Tx<'_>, kind: IdKind, id: &str) -> Result<T> {
    parse_id(kind, id)?;
    tx.doc_get::<T>(id)?.ok_or_else(|| Error::not_found(kind, id))
}
