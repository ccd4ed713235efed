//! EC2 filters: `Filter.N.Name` with one or more `Value`s. A resource matches when, for every
//! filter, one of its values for that name matches one of the filter's values (with `*` and
//! `?` wildcards). Names a resource does not know are refused, as EC2 does.

use corral_ec2_query::filter_path;
use corral_ec2_query::requests::Filter;
use corral_store::TagRecord;
use corral_types::{wildcard, Error, ErrorCode, Result};

/// Refuses filter names outside `allowed` (tag filters are always allowed when `taggable`).
pub fn check(filters: &[Filter], allowed: &[&str], taggable: bool) -> Result<()> {
    check_rendered(filters, allowed, taggable, None)
}

/// [`check`], also allowing every name that stands for a member of the response item's
/// model shape `shape` (answered from the rendered item, see [`Rendered`]).
pub fn check_rendered(filters: &[Filter], allowed: &[&str], taggable: bool, shape: Option<&str>) -> Result<()> {
    for f in filters {
        let tag_filter = f.name.starts_with("tag:") || f.name == "tag-key" || f.name == "tag-value";
        let member = || shape.is_some_and(|s| filter_path::resolve(s, &f.name).is_some());
        if !(allowed.contains(&f.name.as_str()) || (taggable && tag_filter) || member()) {
            return Err(Error::new(ErrorCode::InvalidParameterValue, format!("The filter '{}' is invalid", f.name)));
        }
    }
    Ok(())
}

/// Filters answered from what the API renders: the response item's model shape and the view
/// that renders one item. A filter name the Describe has no line for is looked up as a member
/// path of the shape (`corral_ec2_query::filter_path`) and read from the rendered item, so
/// every member a view renders can be filtered on.
pub struct Rendered<'a, R> {
    pub shape: &'static str,
    pub view: &'a dyn Fn(&R) -> serde_json::Value,
}

impl<R> Rendered<'_, R> {
    /// The item's values for filter `name`, from its rendering.
    pub fn values(&self, item: &R, name: &str) -> Vec<String> {
        match filter_path::resolve(self.shape, name) {
            Some(path) => filter_path::values_at(&(self.view)(item), &path),
            None => vec![],
        }
    }
}

/// `values(name)` gives the resource's values for a non-tag filter name.
pub fn matches(filters: &[Filter], tags: &[TagRecord], values: impl Fn(&str) -> Vec<String>) -> bool {
    filters.iter().all(|f| {
        let have: Vec<String> = if let Some(key) = f.name.strip_prefix("tag:") {
            tags.iter().filter(|t| t.key == key).map(|t| t.value.clone()).collect()
        } else if f.name == "tag-key" {
            tags.iter().map(|t| t.key.clone()).collect()
        } else if f.name == "tag-value" {
            tags.iter().map(|t| t.value.clone()).collect()
        } else {
            values(&f.name)
        };
        have.iter().any(|h| f.values.iter().any(|p| wildcard::matches(p, h)))
    })
}

/// Pagination over a list already in a stable order, for lists that are not a stored kind
/// (catalogues, tags, modifications; kinds page through [`crate::describe`]). The token is
/// the index of the next item, opaque to clients. `bounds` are the call's smallest accepted and largest returned page.
pub fn page<T>(items: Vec<T>, max_results: Option<i64>, next_token: Option<&str>, bounds: (i64, i64)) -> Result<(Vec<T>, Option<String>)> {
    let start = match next_token {
        None | Some("") => 0usize,
        Some(t) => {
            decode_token(t).ok_or_else(|| Error::new(ErrorCode::InvalidPaginationToken, format!("Invalid pagination token: {t}")))?
        }
    };
    let Some(max) = page_size(max_results, bounds)? else {
        return Ok((items.into_iter().skip(start).collect(), None));
    };
    let total = items.len();
    let out: Vec<T> = items.into_iter().skip(start).take(max).collect();
    let next = start + out.len();
    Ok((out, (next < total).then(|| encode_token(next))))
}

/// The page a call asked for (`None`: everything), within EC2's `bounds` on MaxResults:
/// below the smallest is refused, above the largest returns the largest (the aws CLI v1 sends
/// MaxResults=1000 to calls whose pages hold 500).
pub fn page_size(max_results: Option<i64>, bounds: (i64, i64)) -> Result<Option<usize>> {
    let Some(max) = max_results else { return Ok(None) };
    if max < bounds.0 {
        return Err(Error::new(
            ErrorCode::InvalidParameterValue,
            format!("Value ( {max} ) for parameter maxResults is invalid. Expecting a value greater than {}.", bounds.0),
        ));
    }
    Ok(Some(usize::try_from(max.min(bounds.1)).unwrap_or(usize::MAX)))
}

fn encode_token(i: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("corral:{i}"))
}

fn decode_token(t: &str) -> Option<usize> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(t).ok()?;
    String::from_utf8(raw).ok()?.strip_prefix("corral:")?.parse().ok()
}

/// A resource with its tags.
pub type Tagged<R> = (R, Vec<TagRecord>);

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, values: &[&str]) -> Filter {
        Filter { name: name.into(), values: values.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn filters_and_tags() {
        let tags =
            vec![TagRecord { resource_id: "i-1".into(), resource_type: "instance".into(), key: "Name".into(), value: "web-1".into() }];
        let vals = |n: &str| if n == "instance-type" { vec!["t3.micro".to_string()] } else { vec![] };
        assert!(matches(&[f("instance-type", &["t3.*"])], &tags, vals));
        assert!(matches(&[f("tag:Name", &["web-*"]), f("tag-key", &["Name"])], &tags, vals));
        assert!(!matches(&[f("tag:Name", &["db-*"])], &tags, vals));
        assert!(!matches(&[f("tag:Other", &["*"])], &tags, vals));
        assert!(check(&[f("bogus", &["x"])], &["instance-type"], true).is_err());
        assert!(check(&[f("tag:Name", &["x"])], &["instance-type"], true).is_ok());
    }

    #[test]
    fn pagination_walks_everything_once() {
        let items: Vec<u32> = (0..12).collect();
        let (p1, t1) = page(items.clone(), Some(5), None, (5, 1000)).unwrap();
        let (p2, t2) = page(items.clone(), Some(5), t1.as_deref(), (5, 1000)).unwrap();
        let (p3, t3) = page(items.clone(), Some(5), t2.as_deref(), (5, 1000)).unwrap();
        assert_eq!([p1, p2, p3].concat(), items);
        assert!(t3.is_none());
        assert!(page(items.clone(), Some(4), None, (5, 1000)).is_err());
        let (clamped, more) = page(items.clone(), Some(1000), None, (5, 10)).unwrap();
        assert_eq!((clamped.len(), more.is_some()), (10, true));
        assert_eq!(page(items, None, Some("garbage"), (5, 1000)).unwrap_err().code, ErrorCode::InvalidPaginationToken);
    }
}
