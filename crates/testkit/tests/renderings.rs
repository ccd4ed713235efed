//! DescribeInstances keeps each instance's XML between calls and writes it again while the
//! instance's revision is unchanged (`api/src/views/instance_cache.rs`). Every change to what
//! the response shows must raise the revision: after each change below, a call answered from
//! kept renderings (no filter; an id; a tag filter, all answered exactly by the store) gives
//! the same instance as a call that renders it afresh (a filter the store does not answer,
//! which assembles and renders every instance). A change the store's triggers missed would
//! show as the old rendering.

use corral_testkit::{wait_for, TestContext};
use std::time::Duration;

/// The reservations of a DescribeInstances response, without its request id.
fn reservations(r: &corral_testkit::Response) -> String {
    r.ok();
    let body = &r.body;
    let start = body.find("<reservationSet").expect("a reservation set");
    let end = body.rfind("</reservationSet>").expect("a reservation set") + "</reservationSet>".len();
    body[start..end].to_string()
}

async fn matches_a_fresh_rendering(ctx: &TestContext, id: &str, after: &str) {
    let whole = ctx.call("DescribeInstances", &[]).await;
    let by_id = ctx.call("DescribeInstances", &[("InstanceId.1", id)]).await;
    let by_tag = ctx.call("DescribeInstances", &[("Filter.1.Name", "tag:Fleet"), ("Filter.1.Value.1", "blue")]).await;
    let fresh = ctx.call("DescribeInstances", &[("Filter.1.Name", "architecture"), ("Filter.1.Value.1", "x86_64")]).await;
    let fresh = reservations(&fresh);
    assert!(fresh.contains(id), "{fresh}");
    assert_eq!(reservations(&whole), fresh, "after {after}: the whole listing");
    assert_eq!(reservations(&by_id), fresh, "after {after}: by id");
    assert_eq!(reservations(&by_tag), fresh, "after {after}: by tag");
}

/// Whether the volume's state (or its attachment's) is `state`.
async fn volume_is(ctx: &TestContext, vol: &str, state: &str) -> Option<()> {
    ctx.call("DescribeVolumes", &[("VolumeId.1", vol)]).await.ok().texts("status").iter().any(|s| s == state).then_some(())
}

#[tokio::test]
async fn a_kept_rendering_follows_every_change_to_its_instance() {
    let ctx = TestContext::new().await;
    let tags = [("TagSpecification.1.ResourceType", "instance"), ("TagSpecification.1.Tag.1.Key", "Fleet")];
    let mut params = tags.to_vec();
    params.extend([("TagSpecification.1.Tag.1.Value", "blue"), ("Placement.AvailabilityZone", "local-1a")]);
    let id = ctx.run(1, &params).await.remove(0);
    ctx.wait_state(&id, "running").await;
    matches_a_fresh_rendering(&ctx, &id, "the launch").await;
    // Twice: the second time every rendering is a kept one.
    matches_a_fresh_rendering(&ctx, &id, "nothing").await;

    ctx.call("CreateTags", &[("ResourceId.1", &id), ("Tag.1.Key", "Name"), ("Tag.1.Value", "web")]).await.ok();
    matches_a_fresh_rendering(&ctx, &id, "a tag added").await;
    ctx.call("CreateTags", &[("ResourceId.1", &id), ("Tag.1.Key", "Name"), ("Tag.1.Value", "api")]).await.ok();
    matches_a_fresh_rendering(&ctx, &id, "a tag's value changed").await;
    ctx.call("DeleteTags", &[("ResourceId.1", &id), ("Tag.1.Key", "Name")]).await.ok();
    matches_a_fresh_rendering(&ctx, &id, "a tag deleted").await;

    let vol = ctx.volume("2", "local-1a").await;
    ctx.call("AttachVolume", &[("VolumeId", &vol), ("InstanceId", &id), ("Device", "/dev/sdf")]).await.ok();
    wait_for("the volume to be attached", Duration::from_secs(10), || volume_is(&ctx, &vol, "attached")).await;
    matches_a_fresh_rendering(&ctx, &id, "a volume attached").await;
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", &id)]).await;
    assert!(r.ok().texts("volumeId").contains(&vol), "{}", r.body);
    ctx.call("DetachVolume", &[("VolumeId", &vol)]).await.ok();
    wait_for("the volume to be detached", Duration::from_secs(10), || volume_is(&ctx, &vol, "available")).await;
    matches_a_fresh_rendering(&ctx, &id, "a volume detached").await;

    let r = ctx.call("AllocateAddress", &[("Domain", "vpc")]).await;
    let alloc = r.ok().text("allocationId").unwrap();
    let assoc = ctx.call("AssociateAddress", &[("AllocationId", &alloc), ("InstanceId", &id)]).await.ok().text("associationId").unwrap();
    matches_a_fresh_rendering(&ctx, &id, "an address associated").await;
    ctx.call("DisassociateAddress", &[("AssociationId", &assoc)]).await.ok();
    matches_a_fresh_rendering(&ctx, &id, "an address disassociated").await;

    ctx.call("ModifyInstanceAttribute", &[("InstanceId", &id), ("SourceDestCheck.Value", "false")]).await.ok();
    matches_a_fresh_rendering(&ctx, &id, "the source/destination check off").await;

    ctx.call("StopInstances", &[("InstanceId.1", &id)]).await.ok();
    ctx.wait_state(&id, "stopped").await;
    matches_a_fresh_rendering(&ctx, &id, "a stop").await;
    ctx.call("ModifyInstanceAttribute", &[("InstanceId", &id), ("InstanceType.Value", "t3.large")]).await.ok();
    matches_a_fresh_rendering(&ctx, &id, "a new instance type").await;
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", &id)]).await;
    assert_eq!(r.ok().text("instanceType").as_deref(), Some("t3.large"));
}
