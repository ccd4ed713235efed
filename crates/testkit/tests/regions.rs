//! Regions are worlds: each served region has its own default VPC, zones and resources, and
//! nothing made in one is visible from another.

use corral_testkit::{Client, TestContext};

fn in_region(ctx: &TestContext, region: &str) -> Client {
    let mut c = ctx.client.clone();
    c.region = region.into();
    c
}

#[tokio::test]
async fn two_regions_see_nothing_of_each_other() {
    let ctx = TestContext::builder().regions(&["us-west-2", "eu-west-1"]).build().await;
    let west = in_region(&ctx, "us-west-2");
    let eu = in_region(&ctx, "eu-west-1");

    // Each has its own default VPC and its own zones, with AWS's zone ids.
    let w = west.call("DescribeVpcs", &[("Filter.1.Name", "is-default"), ("Filter.1.Value.1", "true")]).await;
    let e = eu.call("DescribeVpcs", &[("Filter.1.Name", "is-default"), ("Filter.1.Value.1", "true")]).await;
    let (wv, ev) = (w.ok().texts("vpcId"), e.ok().texts("vpcId"));
    assert_eq!((wv.len(), ev.len()), (1, 1));
    assert_ne!(wv, ev);
    let zones = west.call("DescribeAvailabilityZones", &[]).await;
    assert_eq!(zones.ok().texts("zoneName"), vec!["us-west-2a", "us-west-2b", "us-west-2c", "us-west-2d"]);
    assert_eq!(zones.texts("zoneId")[0], "usw2-az1");
    let subnets = west.call("DescribeSubnets", &[("Filter.1.Name", "default-for-az"), ("Filter.1.Value.1", "true")]).await;
    let mut subnet_zones = subnets.ok().texts("availabilityZone");
    subnet_zones.sort();
    assert_eq!(subnet_zones, vec!["us-west-2a", "us-west-2b", "us-west-2c", "us-west-2d"]);

    // A key pair and a VPC made in one region are not found in the other.
    west.call("CreateKeyPair", &[("KeyName", "only-west")]).await.ok();
    let vpc = west.call("CreateVpc", &[("CidrBlock", "10.9.0.0/16")]).await;
    let vpc_id = vpc.ok().text("vpcId").expect("vpc id");
    eu.call("DescribeKeyPairs", &[("KeyName.1", "only-west")]).await.err("InvalidKeyPair.NotFound");
    eu.call("DescribeVpcs", &[("VpcId.1", &vpc_id)]).await.err("InvalidVpcID.NotFound");
    assert!(ctx.call("DescribeKeyPairs", &[]).await.ok().texts("keyName").is_empty());
    // The same name can be taken again elsewhere.
    eu.call("CreateKeyPair", &[("KeyName", "only-west")]).await.ok();
    west.call("DescribeKeyPairs", &[("KeyName.1", "only-west")]).await.ok();

    // Instances too: launched in one, unknown in the other.
    let run = ctx
        .call(
            "RunInstances",
            &[("ImageId", &ctx.image("corral-minimal")), ("MinCount", "1"), ("MaxCount", "1"), ("InstanceType", "t3.nano")],
        )
        .await;
    let id = run.ok().text("instanceId").expect("instance id");
    west.call("DescribeInstances", &[("InstanceId.1", &id)]).await.err("InvalidInstanceID.NotFound");
    assert!(west.call("DescribeInstances", &[]).await.ok().texts("instanceId").is_empty());
}

#[tokio::test]
async fn describe_regions_lists_served_and_with_all_regions_every_aws_region() {
    let ctx = TestContext::builder().regions(&["us-west-2", "af-south-1"]).build().await;
    let r = ctx.call("DescribeRegions", &[]).await;
    assert_eq!(r.ok().texts("regionName"), vec!["af-south-1", "local-1", "us-west-2"]);
    assert_eq!(r.texts("optInStatus"), vec!["opted-in", "opt-in-not-required", "opt-in-not-required"]);
    let all = ctx.call("DescribeRegions", &[("AllRegions", "true")]).await;
    let names = all.ok().texts("regionName");
    assert_eq!(names.len(), corral_types::region::AWS_REGIONS.len() + 1);
    let i = names.iter().position(|n| n == "eu-west-1").expect("eu-west-1 listed");
    assert_eq!(all.texts("optInStatus")[i], "not-opted-in");
    let f = ctx
        .call("DescribeRegions", &[("AllRegions", "true"), ("Filter.1.Name", "opt-in-status"), ("Filter.1.Value.1", "not-opted-in")])
        .await;
    assert_eq!(f.ok().texts("regionName").len(), corral_types::region::AWS_REGIONS.len() - 2);
    ctx.call("DescribeRegions", &[("RegionName.1", "eu-west-1")]).await.err("InvalidParameterValue");
}
