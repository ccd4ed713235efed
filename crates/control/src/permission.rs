//! Sharing permissions, as images (launchPermission) and snapshots (createVolumePermission)
//! both take them: reading the adds and removes of a Modify*Attribute call from either of its
//! two forms, checking them (the group `all` or 12-digit account ids) and applying them to a
//! public flag and a list of account ids.

use corral_ec2_query::requests as rq;
use corral_types::{Error, ErrorCode, Result};

/// The permissions a Modify{Image,Snapshot}Attribute call adds and removes, from its structured
/// form (`LaunchPermission`/`CreateVolumePermission` with Add and Remove lists) and its older
/// one (UserIds and groups with an OperationType), checked: the group `all` or 12-digit
/// account ids.
pub(crate) fn permission_changes(
    structured: Option<(&[rq::LaunchPermission], &[rq::LaunchPermission])>,
    user_ids: &[String],
    groups: &[String],
    operation_type: Option<&str>,
) -> Result<(Vec<rq::LaunchPermission>, Vec<rq::LaunchPermission>)> {
    let (mut adds, mut removes) = structured.map(|(a, r)| (a.to_vec(), r.to_vec())).unwrap_or_default();
    let listed: Vec<rq::LaunchPermission> = user_ids
        .iter()
        .map(|u| rq::LaunchPermission { user_id: Some(u.clone()), group: None })
        .chain(groups.iter().map(|g| rq::LaunchPermission { group: Some(g.clone()), user_id: None }))
        .collect();
    match (operation_type, listed.is_empty()) {
        (_, true) => {}
        (Some("add"), false) => adds.extend(listed),
        (Some("remove"), false) => removes.extend(listed),
        (Some(o), false) => return Err(Error::invalid_value("OperationType", o, "Valid values are add and remove.")),
        (None, false) => return Err(Error::missing("OperationType")),
    }
    check_permissions(adds.iter().chain(removes.iter()))?;
    Ok((adds, removes))
}

fn check_permissions<'a>(perms: impl Iterator<Item = &'a rq::LaunchPermission>) -> Result<()> {
    for p in perms {
        if let Some(g) = &p.group {
            if g != "all" {
                return Err(Error::invalid_value("UserGroup", g, "The only group is 'all'."));
            }
        }
        if let Some(u) = &p.user_id {
            if u.len() != 12 || !u.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::invalid_value("UserId", u, "Account ids are 12 digits."));
            }
        }
    }
    Ok(())
}

/// Adds, then removes, permissions: `group all` sets `public`, user ids join `users`.
pub(crate) fn apply_permissions(
    public: &mut bool,
    users: &mut Vec<String>,
    adds: &[rq::LaunchPermission],
    removes: &[rq::LaunchPermission],
) {
    for p in adds {
        if p.group.is_some() {
            *public = true;
        }
        if let Some(u) = &p.user_id {
            if !users.contains(u) {
                users.push(u.clone());
            }
        }
    }
    for p in removes {
        if p.group.is_some() {
            *public = false;
        }
        if let Some(u) = &p.user_id {
            users.retain(|x| x != u);
        }
    }
}

/// Only the owner of an image or snapshot changes who may use it.
pub(crate) fn check_owner(owner_id: &str, account_id: &str, resource_id: &str) -> Result<()> {
    if owner_id != account_id {
        return Err(Error::new(ErrorCode::UnauthorizedOperation, format!("You do not own {resource_id}.")));
    }
    Ok(())
}
