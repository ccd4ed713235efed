//! The path every attribute call takes (Describe, Modify and Reset of an image's, snapshot's,
//! volume's, VPC's, subnet's or instance's attributes): the id (missing, malformed), the
//! attribute name (missing, or not one the kind has), the record (the kind's NotFound), then
//! DryRun; a change is made to the record and written back in one transaction, DryRun
//! answered once the change has passed its own checks (and rolled back).

use crate::lookup::parse_id;
use crate::Control;
use corral_store::{Stored, Tx};
use corral_types::{Error, IdKind, Result};

/// Which resource an attribute call names, as the request gives it.
pub(crate) struct Target<'a> {
    pub kind: IdKind,
    pub id: Option<&'a str>,
    /// The id's request member (`VolumeId`), for MissingParameter.
    pub member: &'static str,
    pub dry_run: bool,
}

impl<'a> Target<'a> {
    pub fn new(kind: IdKind, id: Option<&'a str>, member: &'static str, dry_run: bool) -> Self {
        Target { kind, id, member, dry_run }
    }

    fn id(&self) -> Result<&'a str> {
        let id = self.id.ok_or_else(|| Error::missing(self.member))?;
        parse_id(self.kind, id)?;
        Ok(id)
    }
}

/// The attribute asked for, if it is one of `names`.
pub(crate) fn attribute_name(attribute: Option<&str>, names: &[&str]) -> Result<String> {
    let a = attribute.ok_or_else(|| Error::missing("Attribute"))?;
    if !names.contains(&a) {
        return Err(Error::invalid_value("Attribute", a, &format!("Valid attributes are {}.", names.join(", "))));
    }
    Ok(a.to_string())
}

fn load<T: Stored>(tx: &Tx<'_>, kind: IdKind, id: &str) -> Result<T> {
    T::fetch(tx, id)?.ok_or_else(|| Error::not_found(kind, id))
}

impl Control {
    /// Describe<Kind>Attribute: the record and the attribute asked for (one of `names`).
    pub(crate) fn attribute_read<T: Stored>(&self, t: Target<'_>, attribute: Option<&str>, names: &[&str]) -> Result<(T, String)> {
        let id = t.id()?;
        let attribute = attribute_name(attribute, names)?;
        let rec = self.store.read(|tx| load::<T>(tx, t.kind, id))?;
        if t.dry_run {
            return Err(Error::dry_run());
        }
        Ok((rec, attribute))
    }

    /// Modify/Reset<Kind>Attribute: `change` checks and changes the record (and may write
    /// what goes with it in `tx`); the record is written back.
    pub(crate) fn attribute_write<T: Stored>(&self, t: Target<'_>, change: impl FnOnce(&Tx<'_>, &mut T) -> Result<()>) -> Result<T> {
        let id = t.id()?;
        self.store.transaction(|tx| {
            let mut rec = load::<T>(tx, t.kind, id)?;
            change(tx, &mut rec)?;
            if t.dry_run {
                return Err(Error::dry_run());
            }
            rec.save(tx)?;
            Ok(rec)
        })
    }
}
