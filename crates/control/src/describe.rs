//! The one path every Describe over a resource kind takes: the checks that come before
//! reading (filter names, id syntax, DryRun), then one page read from the store after the
//! token's position, with the tags and joins of that page only; ids asked for must all exist
//! (else the kind's NotFound naming every missing one). A Describe call is a [`Describe`]
//! (its request, its filter table, the view that answers the other filters) over a kind that
//! implements [`Described`].

use crate::filter::{self, Rendered};
use crate::Control;
use corral_ec2_query::requests::Filter;
use corral_store::{Cond, Listed, Related, TagRecord, Tx};
use corral_types::{Error, ErrorCode, IdKind, ResourceId, Result};
use std::collections::HashMap;

/// Tags by resource id.
pub type TagMap = HashMap<String, Vec<TagRecord>>;

/// A filter with a line of its own: its name and the item's values for it (in the caller's
/// account and region).
pub type FilterLine<D> = (&'static str, fn(&D, &Scope<'_>) -> Vec<String>);

/// Where a Describe runs: the caller's account and region.
pub struct Scope<'a> {
    pub account_id: &'a str,
    pub region: &'a str,
}

/// A resource kind as Describe calls see it.
pub trait Described: Sized {
    /// What the store keeps, one page at a time.
    type Record: Listed;
    const KIND: IdKind;
    /// Filters the store answers for this kind, with the record field each tests (checked
    /// in SQL before records are read; tag filters are for every kind).
    const STORED_FILTERS: &'static [(&'static str, &'static str)] = &[];
    /// Filters the store answers from documents that name the record (an instance's
    /// interfaces), with where each looks.
    const RELATED_FILTERS: &'static [(&'static str, Related)] = &[];
    fn record_id(rec: &Self::Record) -> &str;
    /// The described items of a batch of records, in the same order, each with its tags
    /// (taken from `tags`); what they join is read for the batch only.
    fn assemble(tx: &Tx<'_>, recs: Vec<Self::Record>, tags: &mut TagMap) -> Result<Vec<Self>>;
    fn id(&self) -> &str;
    fn tags(&self) -> &[TagRecord];
    /// The item of a record whose rendering the caller already holds ([`Describe::known`]):
    /// the record alone, nothing joined. `None` for kinds that are always assembled. A bare
    /// item is not checked against the filters again, so a kind with one must have a
    /// `Listed::page_where` that checks every condition it is given.
    fn bare(_rec: Self::Record) -> Option<Self> {
        None
    }
}

/// Says whether the caller holds a rendering of a record exactly as it is now.
pub type Known<'a, R> = &'a dyn Fn(&R) -> bool;

/// One Describe request.
pub struct Describe<'a, D: Described> {
    pub ids: &'a [String],
    pub filters: &'a [Filter],
    pub dry_run: bool,
    pub max_results: Option<i64>,
    pub next_token: Option<&'a str>,
    /// EC2's smallest accepted and largest returned page for this call.
    pub bounds: (i64, i64),
    /// Filters with a line of their own; other names are answered from `rendered`.
    pub table: &'a [FilterLine<D>],
    pub rendered: Option<&'a Rendered<'a, D>>,
    /// Whether `tag:` filters apply (calls that list something other than the resource, such
    /// as its settings, take none).
    pub tag_filters: bool,
    /// Records the caller holds a rendering of, exactly as they are now (the caller keys its
    /// renderings by a revision the store raises with every change). When the store answered
    /// every filter exactly, such a record comes back [`Described::bare`], not assembled.
    pub known: Option<Known<'a, D::Record>>,
}

impl<'a, D: Described> Describe<'a, D> {
    pub fn new(ids: &'a [String], filters: &'a [Filter], dry_run: bool, max_results: Option<i64>, next_token: Option<&'a str>) -> Self {
        Describe {
            ids,
            filters,
            dry_run,
            max_results,
            next_token,
            bounds: (5, 1000),
            table: &[],
            rendered: None,
            tag_filters: true,
            known: None,
        }
    }

    pub fn bounds(self, min: i64, max: i64) -> Self {
        Describe { bounds: (min, max), ..self }
    }

    pub fn table(self, table: &'a [FilterLine<D>]) -> Self {
        Describe { table, ..self }
    }

    pub fn rendered(self, rendered: Option<&'a Rendered<'a, D>>) -> Self {
        Describe { rendered, ..self }
    }

    pub fn without_tag_filters(self) -> Self {
        Describe { tag_filters: false, ..self }
    }

    pub fn known(self, known: Option<Known<'a, D::Record>>) -> Self {
        Describe { known, ..self }
    }

    /// AWS refuses ids and MaxResults together on some calls; `set` is the ids' wire name.
    pub fn ids_without_max_results(&self, set: &str) -> Result<()> {
        if !self.ids.is_empty() && self.max_results.is_some() {
            return Err(Error::combination(format!("The parameter {set} cannot be used with the parameter maxResults")));
        }
        Ok(())
    }

    fn values(&self, item: &D, name: &str, scope: &Scope<'_>) -> Vec<String> {
        match self.table.iter().find(|(n, _)| *n == name) {
            Some((_, f)) => f(item, scope),
            None => self.rendered.map(|r| r.values(item, name)).unwrap_or_default(),
        }
    }

    fn check(&self, kind: IdKind) -> Result<()> {
        let names: Vec<&str> = self.table.iter().map(|(n, _)| *n).collect();
        filter::check_rendered(self.filters, &names, self.tag_filters, self.rendered.map(|r| r.shape))?;
        for id in self.ids {
            if ResourceId::parse(kind, id).is_none() {
                return Err(Error::malformed(kind, id));
            }
        }
        if self.dry_run {
            return Err(Error::dry_run());
        }
        Ok(())
    }
}

/// Records read per store query while a page fills.
const BATCH: usize = 200;

impl Control {
    /// Runs a Describe: `keep` says which items the caller may see at all (decided before
    /// filters and pages; an id asked for that `keep` hides is not found).
    pub fn describe<D: Described>(&self, d: &Describe<'_, D>, keep: impl Fn(&D) -> bool) -> Result<(Vec<D>, Option<String>)> {
        d.check(D::KIND)?;
        let after = match d.next_token {
            None | Some("") => 0,
            Some(t) => {
                decode_token(t).ok_or_else(|| Error::new(ErrorCode::InvalidPaginationToken, format!("Invalid pagination token: {t}")))?
            }
        };
        let size = filter::page_size(d.max_results, d.bounds)?.unwrap_or(usize::MAX);
        let scope = Scope { account_id: &self.account_id, region: self.config.region.as_str() };
        let mut out: Vec<D> = Vec::new();
        let mut last = after;
        let mut more = false;
        let conds = stored_conditions::<D>(d.filters, d.tag_filters);
        // Whether what the store reads meets every filter already: then records the caller
        // holds need not be assembled (nor checked again). Ids are read without the
        // conditions, so with ids only a call without filters is exact.
        let exact = match d.ids.is_empty() {
            true => conds.len() == d.filters.len() && conds.iter().all(is_exact),
            false => d.filters.is_empty(),
        };
        let known = d.known.filter(|_| exact);
        // Takes the batch's items that are kept and match until the page is full; `true` when
        // one more item matched (so there is a next page).
        let mut take = |batch: Vec<(i64, D, Bare)>, out: &mut Vec<D>| -> bool {
            for (pos, item, bare) in batch {
                if pos <= after || !keep(&item) || (!bare.0 && !filter::matches(d.filters, item.tags(), |n| d.values(&item, n, &scope))) {
                    continue;
                }
                if out.len() == size {
                    return true;
                }
                last = pos;
                out.push(item);
            }
            false
        };
        self.store.read(|tx| {
            if !d.ids.is_empty() {
                let batch = assembled::<D>(tx, D::Record::with_ids(tx, d.ids)?, known)?;
                let missing: Vec<&str> =
                    d.ids.iter().filter(|id| !batch.iter().any(|(_, i, _)| i.id() == id.as_str() && keep(i))).map(String::as_str).collect();
                if !missing.is_empty() {
                    return Err(Error::not_found(D::KIND, &missing.join(", ")));
                }
                more = take(batch, &mut out);
                return Ok(());
            }
            let mut from = after;
            let batch_size = size.saturating_add(1).clamp(1, BATCH);
            loop {
                let recs = D::Record::page_where(tx, from, batch_size, &conds)?;
                let full = recs.len() == batch_size;
                if let Some((pos, _)) = recs.last() {
                    from = *pos;
                }
                if take(assembled::<D>(tx, recs, known)?, &mut out) {
                    more = true;
                    return Ok(());
                }
                if !full {
                    return Ok(());
                }
            }
        })?;
        Ok((out, more.then(|| encode_token(last))))
    }
}

/// The filters the store can check before records are read: tags, and the kind's
/// [`Described::STORED_FILTERS`] and [`Described::RELATED_FILTERS`]. Every filter is still checked on each item.
fn stored_conditions<D: Described>(filters: &[Filter], tags: bool) -> Vec<Cond> {
    filters
        .iter()
        .filter(|f| !f.values.is_empty())
        .filter_map(|f| match f.name.strip_prefix("tag:") {
            Some(key) if tags => Some(Cond::Tag(key.to_string(), f.values.clone())),
            _ if tags && f.name == "tag-key" => Some(Cond::TagKey(f.values.clone())),
            _ => match D::STORED_FILTERS.iter().find(|(n, _)| *n == f.name) {
                Some((_, field)) => Some(Cond::Field(field, f.values.clone())),
                None => D::RELATED_FILTERS.iter().find(|(n, _)| *n == f.name).map(|(_, r)| Cond::Related(*r, f.values.clone())),
            },
        })
        .collect()
}

/// Whether the store's check of a condition is the filter's own: a field, a tag, a single
/// field of related documents. A list field of related documents is not (the instance's
/// `group-id` is its primary interface's groups; the store looks at every interface's).
fn is_exact(c: &Cond) -> bool {
    match c {
        Cond::Field(..) | Cond::Tag(..) | Cond::TagKey(..) => true,
        Cond::Related(r, _) => !r.list,
    }
}

/// Whether an item came back bare ([`Described::bare`]).
#[derive(Clone, Copy)]
struct Bare(bool);

/// A batch of records assembled into described items, with their positions; those `known`
/// names come back bare, where the kind has a bare item.
fn assembled<D: Described>(tx: &Tx<'_>, recs: Vec<(i64, D::Record)>, known: Option<Known<'_, D::Record>>) -> Result<Vec<(i64, D, Bare)>> {
    let Some(known) = known else {
        return Ok(assembled_all(tx, recs)?.into_iter().map(|(pos, item)| (pos, item, Bare(false))).collect());
    };
    let mut out: Vec<(i64, Option<D>)> = Vec::with_capacity(recs.len());
    let mut rest = Vec::new();
    for (pos, rec) in recs {
        if known(&rec) {
            match D::bare(rec) {
                Some(item) => out.push((pos, Some(item))),
                None => return Err(Error::internal(format!("{:?} has no bare item", D::KIND))),
            }
        } else {
            out.push((pos, None));
            rest.push((pos, rec));
        }
    }
    let mut rest = assembled_all(tx, rest)?.into_iter();
    out.into_iter()
        .map(|(pos, item)| match item {
            Some(item) => Ok((pos, item, Bare(true))),
            None => rest
                .next()
                .map(|(pos, item)| (pos, item, Bare(false)))
                .ok_or_else(|| Error::internal(format!("{:?}: an item went missing in assembly", D::KIND))),
        })
        .collect()
}

fn assembled_all<D: Described>(tx: &Tx<'_>, recs: Vec<(i64, D::Record)>) -> Result<Vec<(i64, D)>> {
    if recs.is_empty() {
        return Ok(Vec::new());
    }
    let (positions, recs): (Vec<i64>, Vec<D::Record>) = recs.into_iter().unzip();
    let ids: Vec<&str> = recs.iter().map(D::record_id).collect();
    let mut tags = tx.tag_map_for(&ids)?;
    let items = D::assemble(tx, recs, &mut tags)?;
    if items.len() != positions.len() {
        return Err(Error::internal(format!("{:?}: {} records assembled into {} items", D::KIND, positions.len(), items.len())));
    }
    Ok(positions.into_iter().zip(items).collect())
}

fn encode_token(pos: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("corral:after:{pos}"))
}

fn decode_token(t: &str) -> Option<i64> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(t).ok()?;
    String::from_utf8(raw).ok()?.strip_prefix("corral:after:")?.parse().ok()
}

/// [`Described`] for a kind described as its record and its tags (`$t { rec, tags }`).
#[macro_export]
macro_rules! described_as_tagged {
    ($t:ty, $record:ty, $kind:expr, $id:ident) => {
        $crate::described_as_tagged!($t, $record, $kind, $id, []);
    };
    ($t:ty, $record:ty, $kind:expr, $id:ident, [$(($filter:literal, $field:literal)),* $(,)?]) => {
        impl $crate::describe::Described for $t {
            type Record = $record;
            const KIND: corral_types::IdKind = $kind;
            const STORED_FILTERS: &'static [(&'static str, &'static str)] = &[$(($filter, $field)),*];
            fn record_id(rec: &$record) -> &str {
                &rec.$id
            }
            fn assemble(
                _tx: &corral_store::Tx<'_>,
                recs: Vec<$record>,
                tags: &mut $crate::describe::TagMap,
            ) -> corral_types::Result<Vec<Self>> {
                Ok(recs.into_iter().map(|rec| Self { tags: tags.remove(&rec.$id).unwrap_or_default(), rec }).collect())
            }
            fn id(&self) -> &str {
                &self.rec.$id
            }
            fn tags(&self) -> &[corral_store::TagRecord] {
                &self.tags
            }
        }
    };
}
