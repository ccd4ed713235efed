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

/// Every id asked for must be among `all`; otherwise the kind's NotFound, naming every
/// missing id as AWS does.
pub(crate) fn require_all<R>(kind: IdKind, ids: &[String], all: &[R], id_of: impl Fn(&R) -> &String) -> Result<()> {
    let missing: Vec<&str> = ids.iter().filter(|id| !all.iter().any(|r| id_of(r) == *id)).map(String::as_str).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::not_found(kind, &missing.join(", ")))
    }
}
