//! AWS's quotas hold, with AWS's error codes, and `--limit NAME=N` changes them.

use corral_testkit::TestContext;

#[tokio::test]
async fn quotas_hold_with_aws_codes() {
    let ctx = TestContext::builder()
        .limit("vpcs=2")
        .limit("elastic-ips=1")
        .limit("rules-per-group=2")
        .limit("tags-per-resource=3")
        .limit("subnets-per-vpc=1")
        .limit("internet-gateways=2")
        .limit("route-tables-per-vpc=2")
        .limit("routes-per-table=1")
        .limit("security-groups=4")
        .build()
        .await;
    // The default VPC counts: one more fits.
    let vpc = ctx.call("CreateVpc", &[("CidrBlock", "10.1.0.0/16")]).await.ok().text("vpcId").expect("vpc");
    ctx.call("CreateVpc", &[("CidrBlock", "10.2.0.0/16")]).await.err("VpcLimitExceeded");

    ctx.call("AllocateAddress", &[("Domain", "vpc")]).await.ok();
    ctx.call("AllocateAddress", &[("Domain", "vpc")]).await.err("AddressLimitExceeded");

    ctx.call("CreateSubnet", &[("VpcId", &vpc), ("CidrBlock", "10.1.1.0/24")]).await.ok();
    ctx.call("CreateSubnet", &[("VpcId", &vpc), ("CidrBlock", "10.1.2.0/24")]).await.err("SubnetLimitExceeded");

    // The default VPC's gateway counts.
    let igw = ctx.call("CreateInternetGateway", &[]).await.ok().text("internetGatewayId").expect("igw");
    ctx.call("CreateInternetGateway", &[]).await.err("InternetGatewayLimitExceeded");
    ctx.call("AttachInternetGateway", &[("InternetGatewayId", &igw), ("VpcId", &vpc)]).await.ok();

    // The main table counts.
    let rtb = ctx.call("CreateRouteTable", &[("VpcId", &vpc)]).await.ok().text("routeTableId").expect("rtb");
    ctx.call("CreateRouteTable", &[("VpcId", &vpc)]).await.err("RouteTableLimitExceeded");
    ctx.call("CreateRoute", &[("RouteTableId", &rtb), ("DestinationCidrBlock", "0.0.0.0/0"), ("GatewayId", &igw)]).await.ok();
    ctx.call("CreateRoute", &[("RouteTableId", &rtb), ("DestinationCidrBlock", "192.0.2.0/24"), ("GatewayId", &igw)])
        .await
        .err("RouteLimitExceeded");

    // Two default groups exist (one per VPC); two more fit.
    let sg = ctx.call("CreateSecurityGroup", &[("GroupName", "a"), ("GroupDescription", "a"), ("VpcId", &vpc)]).await;
    let sg = sg.ok().text("groupId").expect("group");
    ctx.call("CreateSecurityGroup", &[("GroupName", "b"), ("GroupDescription", "b"), ("VpcId", &vpc)]).await.ok();
    ctx.call("CreateSecurityGroup", &[("GroupName", "c"), ("GroupDescription", "c"), ("VpcId", &vpc)])
        .await
        .err("SecurityGroupLimitExceeded");

    let rule = |port: &'static str| {
        vec![
            ("GroupId", sg.clone()),
            ("IpPermissions.1.IpProtocol", "tcp".to_string()),
            ("IpPermissions.1.FromPort", port.to_string()),
            ("IpPermissions.1.ToPort", port.to_string()),
            ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/8".to_string()),
        ]
    };
    for port in ["22", "80"] {
        let p = rule(port);
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ctx.call("AuthorizeSecurityGroupIngress", &p).await.ok();
    }
    let p = rule("443");
    let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ctx.call("AuthorizeSecurityGroupIngress", &p).await.err("RulesPerSecurityGroupLimitExceeded");
    // The limit is per direction: the one default egress rule leaves room for another.
    let mut out = rule("53");
    out[1].1 = "udp".into();
    let out: Vec<(&str, &str)> = out.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ctx.call("AuthorizeSecurityGroupEgress", &out).await.ok();

    ctx.call("CreateTags", &[("ResourceId.1", &vpc), ("Tag.1.Key", "a"), ("Tag.2.Key", "b"), ("Tag.3.Key", "c")]).await.ok();
    ctx.call("CreateTags", &[("ResourceId.1", &vpc), ("Tag.1.Key", "d")]).await.err("TagLimitExceeded");
}

#[tokio::test]
async fn aws_defaults_without_settings() {
    let ctx = TestContext::new().await;
    for _ in 0..5 {
        ctx.call("AllocateAddress", &[]).await.ok();
    }
    ctx.call("AllocateAddress", &[]).await.err("AddressLimitExceeded");
    for i in 1..=4 {
        ctx.call("CreateVpc", &[("CidrBlock", &format!("10.{i}.0.0/16"))]).await.ok();
    }
    ctx.call("CreateVpc", &[("CidrBlock", "10.9.0.0/16")]).await.err("VpcLimitExceeded");
}

/// One call with more address ranges than a group may hold rules is refused whole, with the
/// quota's code, and adds nothing.
#[tokio::test]
async fn one_call_cannot_add_more_rules_than_the_quota() {
    let ctx = TestContext::new().await;
    let sg = ctx.call("CreateSecurityGroup", &[("GroupName", "many"), ("GroupDescription", "many")]).await.ok().text("groupId").unwrap();
    let mut p: Vec<(String, String)> = vec![
        ("GroupId".into(), sg.clone()),
        ("IpPermissions.1.IpProtocol".into(), "tcp".into()),
        ("IpPermissions.1.FromPort".into(), "22".into()),
        ("IpPermissions.1.ToPort".into(), "22".into()),
    ];
    for i in 1..=500 {
        p.push((format!("IpPermissions.1.IpRanges.{i}.CidrIp"), format!("10.{}.{}.0/24", i / 256, i % 256)));
    }
    let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ctx.call("AuthorizeSecurityGroupIngress", &p).await.err("RulesPerSecurityGroupLimitExceeded");
    let rules = ctx.call("DescribeSecurityGroupRules", &[("Filter.1.Name", "group-id"), ("Filter.1.Value.1", &sg)]).await;
    assert_eq!(rules.ok().texts("isEgress").iter().filter(|e| *e == "false").count(), 0, "nothing was added");
}
