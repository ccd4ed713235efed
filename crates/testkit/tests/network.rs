//! VPCs, subnets, security groups and network interfaces through the API (the objects and
//! their rules; the data path that enforces them is tested in the net crate).

use corral_testkit::TestContext;

#[tokio::test]
async fn default_vpc_is_there_and_launches_land_in_it() {
    let ctx = TestContext::new().await;
    let r = ctx.call("DescribeVpcs", &[("Filter.1.Name", "is-default"), ("Filter.1.Value.1", "true")]).await;
    assert_eq!(r.ok().texts("cidrBlock")[0], "172.31.0.0/16");
    let vpc = r.text("vpcId").unwrap();
    let r = ctx.call("DescribeSubnets", &[("Filter.1.Name", "vpc-id"), ("Filter.1.Value.1", &vpc)]).await;
    assert_eq!(r.ok().texts("cidrBlock"), vec!["172.31.0.0/20", "172.31.16.0/20", "172.31.32.0/20"]);
    assert_eq!(r.texts("defaultForAz"), vec!["true"; 3]);
    let r = ctx.call("DescribeSecurityGroups", &[("GroupName.1", "default")]).await;
    let sg = r.ok().text("groupId").unwrap();

    let ids = ctx.run(2, &[("Placement.AvailabilityZone", "local-1b")]).await;
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", &ids[0])]).await;
    r.ok();
    assert_eq!(r.text("vpcId").as_deref(), Some(vpc.as_str()));
    assert_eq!(r.text("privateIpAddress").as_deref(), Some("172.31.16.4"), "first usable address of the AZ's default subnet");
    assert_eq!(r.text("privateDnsName").as_deref(), Some("ip-172-31-16-4.local-1.compute.internal"));
    assert!(r.texts("groupId").contains(&sg));
    let r = ctx.call("DescribeNetworkInterfaces", &[("Filter.1.Name", "attachment.instance-id"), ("Filter.1.Value.1", &ids[1])]).await;
    assert_eq!(r.ok().text("privateIpAddress").as_deref(), Some("172.31.16.5"));
    assert!(r.text("macAddress").unwrap().starts_with("02:"));

    // Terminating frees the interface and its address (handed out again when asked for, or
    // to the next launch that takes no address of its own).
    let image = ctx.image("corral-minimal");
    let subnet = r.text("subnetId").unwrap();
    let at_4 =
        [("ImageId", image.as_str()), ("MinCount", "1"), ("MaxCount", "1"), ("SubnetId", &subnet), ("PrivateIpAddress", "172.31.16.4")];
    ctx.call("RunInstances", &at_4).await.err("InvalidIPAddress.InUse");
    ctx.call("TerminateInstances", &[("InstanceId.1", &ids[0])]).await.ok();
    ctx.wait_state(&ids[0], "terminated").await;
    let r = ctx.call("DescribeNetworkInterfaces", &[]).await;
    assert_eq!(r.ok().texts("networkInterfaceId").len(), 1);
    let again = ctx.call("RunInstances", &at_4).await.ok().text("instanceId").unwrap();
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", &again)]).await;
    assert_eq!(r.ok().text("privateIpAddress").as_deref(), Some("172.31.16.4"), "the freed address is free again");
}

/// A full subnet with instances coming and going: a launch takes the address given back
/// last, found without walking the subnet (`control/src/alloc.rs`); the walk alone would
/// hand out the lowest free one.
#[tokio::test]
async fn a_launch_takes_the_address_given_back_last() {
    let ctx = TestContext::new().await;
    let vpc = ctx.call("CreateVpc", &[("CidrBlock", "10.3.0.0/16")]).await.ok().text("vpcId").unwrap();
    // A /28: 16 addresses, of which AWS keeps five.
    let subnet = ctx.call("CreateSubnet", &[("VpcId", &vpc), ("CidrBlock", "10.3.1.0/28")]).await.ok().text("subnetId").unwrap();
    let ids = ctx.run(11, &[("SubnetId", &subnet)]).await;
    let image = ctx.image("corral-minimal");
    let one = [("ImageId", image.as_str()), ("MinCount", "1"), ("MaxCount", "1"), ("SubnetId", &subnet)];
    ctx.call("RunInstances", &one).await.err("InsufficientFreeAddressesInSubnet");
    let (low, high) = (ids[1].clone(), ids[9].clone());
    let high_ip = private_ip(&ctx, &high).await;
    assert_eq!(private_ip(&ctx, &low).await, "10.3.1.5");
    for id in [&low, &high] {
        ctx.call("TerminateInstances", &[("InstanceId.1", id)]).await.ok();
        ctx.wait_state(id, "terminated").await;
    }
    let next = ctx.call("RunInstances", &one).await.ok().text("instanceId").unwrap();
    assert_eq!(private_ip(&ctx, &next).await, high_ip, "the address given back last");
    let next = ctx.call("RunInstances", &one).await.ok().text("instanceId").unwrap();
    assert_eq!(private_ip(&ctx, &next).await, "10.3.1.5");
    ctx.call("RunInstances", &one).await.err("InsufficientFreeAddressesInSubnet");
}

/// A subnet's free addresses are its usable ones less its own interfaces, counted for each
/// subnet of a page (in the store, without reading the interfaces).
#[tokio::test]
async fn a_subnet_counts_its_own_interfaces() {
    let ctx = TestContext::new().await;
    let vpc = ctx.call("CreateVpc", &[("CidrBlock", "10.4.0.0/16")]).await.ok().text("vpcId").unwrap();
    let a = ctx.call("CreateSubnet", &[("VpcId", &vpc), ("CidrBlock", "10.4.1.0/28")]).await.ok().text("subnetId").unwrap();
    let b = ctx.call("CreateSubnet", &[("VpcId", &vpc), ("CidrBlock", "10.4.2.0/24")]).await.ok().text("subnetId").unwrap();
    let in_a = ctx.run(3, &[("SubnetId", &a)]).await;
    ctx.run(1, &[("SubnetId", &b)]).await;
    let free = |subnet: String| {
        let ctx = &ctx;
        async move {
            let r = ctx.call("DescribeSubnets", &[("SubnetId.1", &subnet)]).await;
            r.ok().text("availableIpAddressCount").unwrap()
        }
    };
    assert_eq!(free(a.clone()).await, "8");
    assert_eq!(free(b.clone()).await, "250");
    ctx.call("TerminateInstances", &[("InstanceId.1", &in_a[0])]).await.ok();
    ctx.wait_state(&in_a[0], "terminated").await;
    assert_eq!(free(a.clone()).await, "9");
    // Both in one page: each its own count.
    let r = ctx.call("DescribeSubnets", &[("SubnetId.1", &a), ("SubnetId.2", &b)]).await;
    let body = &r.ok().body;
    assert!(body.contains("<availableIpAddressCount>9</availableIpAddressCount>"), "{body}");
    assert!(body.contains("<availableIpAddressCount>250</availableIpAddressCount>"), "{body}");
}

async fn private_ip(ctx: &TestContext, id: &str) -> String {
    ctx.call("DescribeInstances", &[("InstanceId.1", id)]).await.ok().text("privateIpAddress").unwrap()
}

#[tokio::test]
async fn vpcs_subnets_and_dependencies() {
    let ctx = TestContext::new().await;
    let r = ctx.call("CreateVpc", &[("CidrBlock", "10.0.0.0/16")]).await;
    let vpc = r.ok().text("vpcId").unwrap();
    ctx.call("CreateVpc", &[("CidrBlock", "10.0.0.0/8")]).await.err("InvalidVpc.Range");
    ctx.call("CreateVpc", &[("CidrBlock", "10.0.0.1/16")]).await.err("InvalidParameterValue");
    let r = ctx.call("CreateSubnet", &[("VpcId", &vpc), ("CidrBlock", "10.0.1.0/24"), ("AvailabilityZone", "local-1c")]).await;
    let subnet = r.ok().text("subnetId").unwrap();
    assert_eq!(r.text("availableIpAddressCount").as_deref(), Some("251"));
    ctx.call("CreateSubnet", &[("VpcId", &vpc), ("CidrBlock", "10.0.1.128/25")]).await.err("InvalidSubnet.Conflict");
    ctx.call("CreateSubnet", &[("VpcId", &vpc), ("CidrBlock", "10.1.0.0/24")]).await.err("InvalidSubnet.Range");
    ctx.call("CreateSubnet", &[("VpcId", "vpc-0123456789abcdef0"), ("CidrBlock", "10.1.0.0/24")]).await.err("InvalidVpcID.NotFound");
    ctx.call("DescribeVpcs", &[("VpcId.1", "vpc-1")]).await.err("InvalidVpcID.Malformed");

    ctx.call("ModifyVpcAttribute", &[("VpcId", &vpc), ("EnableDnsHostnames.Value", "true")]).await.ok();
    let r = ctx.call("DescribeVpcAttribute", &[("VpcId", &vpc), ("Attribute", "enableDnsHostnames")]).await;
    assert!(r.ok().body.contains("<enableDnsHostnames><value>true</value></enableDnsHostnames>"), "{}", r.body);
    ctx.call("ModifySubnetAttribute", &[("SubnetId", &subnet), ("MapPublicIpOnLaunch.Value", "true")]).await.ok();

    let id = ctx.run(1, &[("SubnetId", &subnet), ("PrivateIpAddress", "10.0.1.50")]).await.remove(0);
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", &id)]).await;
    assert_eq!(r.ok().text("privateIpAddress").as_deref(), Some("10.0.1.50"));
    assert_eq!(r.text("availabilityZone").as_deref(), Some("local-1c"), "the subnet decides the zone");
    let image = ctx.image("corral-minimal");
    ctx.call(
        "RunInstances",
        &[("ImageId", &image), ("MinCount", "1"), ("MaxCount", "1"), ("SubnetId", &subnet), ("PrivateIpAddress", "10.0.1.50")],
    )
    .await
    .err("InvalidIPAddress.InUse");
    // AWS keeps the first four addresses and the last; one outside the subnet is not in it.
    for reserved in ["10.0.1.3", "10.0.1.255", "10.0.2.50"] {
        let p = [("ImageId", image.as_str()), ("MinCount", "1"), ("MaxCount", "1"), ("SubnetId", &subnet), ("PrivateIpAddress", reserved)];
        ctx.call("RunInstances", &p).await.err("InvalidParameterValue");
    }

    ctx.call("DeleteVpc", &[("VpcId", &vpc)]).await.err("DependencyViolation");
    ctx.call("DeleteSubnet", &[("SubnetId", &subnet)]).await.err("DependencyViolation");
    ctx.call("TerminateInstances", &[("InstanceId.1", &id)]).await.ok();
    ctx.wait_state(&id, "terminated").await;
    ctx.call("DeleteSubnet", &[("SubnetId", &subnet)]).await.ok();
    ctx.call("DeleteVpc", &[("VpcId", &vpc)]).await.ok();
    ctx.call("DescribeVpcs", &[("VpcId.1", &vpc)]).await.err("InvalidVpcID.NotFound");
}

#[tokio::test]
async fn security_groups_and_rules() {
    let ctx = TestContext::new().await;
    let r = ctx.call("CreateVpc", &[("CidrBlock", "10.0.0.0/16")]).await;
    let vpc = r.ok().text("vpcId").unwrap();
    let web = ctx.call("CreateSecurityGroup", &[("GroupName", "web"), ("GroupDescription", "web tier"), ("VpcId", &vpc)]).await;
    let web = web.ok().text("groupId").unwrap();
    let db = ctx.call("CreateSecurityGroup", &[("GroupName", "db"), ("GroupDescription", "db tier"), ("VpcId", &vpc)]).await;
    let db = db.ok().text("groupId").unwrap();
    ctx.call("CreateSecurityGroup", &[("GroupName", "web"), ("GroupDescription", "again"), ("VpcId", &vpc)])
        .await
        .err("InvalidGroup.Duplicate");

    let allow_8080 = [
        ("GroupId", web.as_str()),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "8080"),
        ("IpPermissions.1.ToPort", "8080"),
        ("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0"),
        ("IpPermissions.1.IpRanges.1.Description", "anyone"),
    ];
    let r = ctx.call("AuthorizeSecurityGroupIngress", &allow_8080).await;
    let rule_id = r.ok().text("securityGroupRuleId").unwrap();
    ctx.call("AuthorizeSecurityGroupIngress", &allow_8080).await.err("InvalidPermission.Duplicate");
    ctx.call(
        "AuthorizeSecurityGroupIngress",
        &[
            ("GroupId", &db),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "5432"),
            ("IpPermissions.1.ToPort", "5432"),
            ("IpPermissions.1.Groups.1.GroupId", &web),
        ],
    )
    .await
    .ok();
    ctx.call(
        "AuthorizeSecurityGroupIngress",
        &[("GroupId", &web), ("IpPermissions.1.IpProtocol", "tcp"), ("IpPermissions.1.FromPort", "9"), ("IpPermissions.1.ToPort", "1")],
    )
    .await
    .err("InvalidParameterValue");

    let r = ctx.call("DescribeSecurityGroups", &[("GroupId.1", &web)]).await;
    r.ok();
    assert!(
        r.body.contains(
            "<ipProtocol>tcp</ipProtocol><ipRanges><item><cidrIp>0.0.0.0/0</cidrIp><description>anyone</description></item></ipRanges>"
        ),
        "{}",
        r.body
    );
    let r = ctx.call("DescribeSecurityGroups", &[("Filter.1.Name", "ip-permission.group-id"), ("Filter.1.Value.1", &web)]).await;
    assert_eq!(r.ok().texts("groupName"), vec!["db"]);
    let r = ctx.call("DescribeSecurityGroupRules", &[("Filter.1.Name", "group-id"), ("Filter.1.Value.1", &web)]).await;
    assert_eq!(r.ok().texts("securityGroupRuleId").len(), 2, "the 8080 rule and the default egress rule");

    // A group referenced by another cannot go; nor one in use.
    ctx.call("DeleteSecurityGroup", &[("GroupId", &web)]).await.err("DependencyViolation");
    ctx.call("RevokeSecurityGroupIngress", &[("GroupId", &web), ("SecurityGroupRuleId.1", &rule_id)]).await.ok();
    ctx.call("RevokeSecurityGroupIngress", &allow_8080).await.err("InvalidPermission.NotFound");
    let r = ctx.call("DescribeSecurityGroups", &[("GroupId.1", &db)]).await;
    let default = ctx
        .call(
            "DescribeSecurityGroups",
            &[("Filter.1.Name", "vpc-id"), ("Filter.1.Value.1", &vpc), ("Filter.2.Name", "group-name"), ("Filter.2.Value.1", "default")],
        )
        .await;
    let default = default.ok().text("groupId").unwrap();
    ctx.call("DeleteSecurityGroup", &[("GroupId", &default)]).await.err("CannotDelete");
    assert!(r.ok().body.contains(&web));
    ctx.call("DeleteSecurityGroup", &[("GroupId", &db)]).await.ok();
    ctx.call("DeleteSecurityGroup", &[("GroupId", &web)]).await.ok();
    ctx.call("DescribeSecurityGroups", &[("GroupId.1", "sg-1")]).await.err("InvalidGroupId.Malformed");
    ctx.call("DescribeSecurityGroups", &[("GroupId.1", &web)]).await.err("InvalidGroup.NotFound");
}

/// A security group peer or a route destination given with host bits set is taken as its block
/// and stored, shown and compared in canonical form (a VPC or subnet CIDR must be canonical).
#[tokio::test]
async fn cidrs_with_host_bits_mean_their_block() {
    let ctx = TestContext::new().await;
    let vpc = ctx.call("CreateVpc", &[("CidrBlock", "10.9.0.0/16")]).await.ok().text("vpcId").unwrap();
    ctx.call("CreateSubnet", &[("VpcId", &vpc), ("CidrBlock", "10.9.1.7/24")]).await.err("InvalidParameterValue");
    let sg = ctx.call("CreateSecurityGroup", &[("GroupName", "hb"), ("GroupDescription", "host bits"), ("VpcId", &vpc)]).await;
    let sg = sg.ok().text("groupId").unwrap();
    let allow = |cidr: &'static str| {
        [
            ("GroupId", sg.as_str()),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "22"),
            ("IpPermissions.1.ToPort", "22"),
            ("IpPermissions.1.IpRanges.1.CidrIp", cidr),
        ]
    };
    ctx.call("AuthorizeSecurityGroupIngress", &allow("10.9.3.77/24")).await.ok();
    ctx.call("AuthorizeSecurityGroupIngress", &allow("10.9.3.0/24")).await.err("InvalidPermission.Duplicate");
    let r = ctx.call("DescribeSecurityGroups", &[("GroupId.1", &sg)]).await;
    assert!(r.ok().body.contains("<cidrIp>10.9.3.0/24</cidrIp>"), "{}", r.body);

    let igw = ctx.call("CreateInternetGateway", &[]).await.ok().text("internetGatewayId").unwrap();
    ctx.call("AttachInternetGateway", &[("InternetGatewayId", &igw), ("VpcId", &vpc)]).await.ok();
    let rtb = ctx.call("CreateRouteTable", &[("VpcId", &vpc)]).await.ok().text("routeTableId").unwrap();
    ctx.call("CreateRoute", &[("RouteTableId", &rtb), ("DestinationCidrBlock", "192.168.5.9/24"), ("GatewayId", &igw)]).await.ok();
    ctx.call("CreateRoute", &[("RouteTableId", &rtb), ("DestinationCidrBlock", "192.168.5.0/24"), ("GatewayId", &igw)])
        .await
        .err("RouteAlreadyExists");
    let r = ctx.call("DescribeRouteTables", &[("RouteTableId.1", &rtb)]).await;
    assert_eq!(r.ok().texts("destinationCidrBlock"), vec!["10.9.0.0/16", "192.168.5.0/24"]);
}

#[tokio::test]
async fn launch_with_groups_and_interfaces() {
    let ctx = TestContext::new().await;
    let vpc = ctx.call("CreateVpc", &[("CidrBlock", "10.5.0.0/16")]).await.ok().text("vpcId").unwrap();
    let subnet = ctx.call("CreateSubnet", &[("VpcId", &vpc), ("CidrBlock", "10.5.1.0/24")]).await.ok().text("subnetId").unwrap();
    let sg = ctx
        .call("CreateSecurityGroup", &[("GroupName", "app"), ("GroupDescription", "app"), ("VpcId", &vpc)])
        .await
        .ok()
        .text("groupId")
        .unwrap();
    let default_sg = ctx.call("DescribeSecurityGroups", &[("GroupName.1", "default")]).await.ok().text("groupId").unwrap();
    let image = ctx.image("corral-minimal");
    // A group of the default VPC with a subnet of another VPC is refused.
    ctx.call(
        "RunInstances",
        &[("ImageId", &image), ("MinCount", "1"), ("MaxCount", "1"), ("SubnetId", &subnet), ("SecurityGroupId.1", &default_sg)],
    )
    .await
    .err("InvalidParameter");
    let r = ctx
        .call(
            "RunInstances",
            &[
                ("ImageId", &image),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("NetworkInterface.1.DeviceIndex", "0"),
                ("NetworkInterface.1.SubnetId", &subnet),
                ("NetworkInterface.1.SecurityGroupId.1", &sg),
                ("NetworkInterface.1.PrivateIpAddress", "10.5.1.9"),
            ],
        )
        .await;
    r.ok();
    assert_eq!(r.text("privateIpAddress").as_deref(), Some("10.5.1.9"));
    assert!(r.body.contains(&format!("<groupId>{sg}</groupId><groupName>app</groupName>")), "{}", r.body);
    let id = r.text("instanceId").unwrap();
    let r = ctx.call("DescribeInstanceAttribute", &[("InstanceId", &id), ("Attribute", "groupSet")]).await;
    assert_eq!(r.ok().texts("groupId"), vec![sg.clone()]);
    ctx.call("DeleteSecurityGroup", &[("GroupId", &sg)]).await.err("DependencyViolation");
}

#[tokio::test]
async fn gateways_route_tables_and_addresses() {
    let ctx = TestContext::new().await;
    // The default VPC routes 0.0.0.0/0 to its attached gateway; its launches get public IPs.
    let vpc0 = ctx.call("DescribeVpcs", &[]).await.ok().text("vpcId").unwrap();
    let r = ctx.call("DescribeInternetGateways", &[("Filter.1.Name", "attachment.vpc-id"), ("Filter.1.Value.1", &vpc0)]).await;
    let igw0 = r.ok().text("internetGatewayId").unwrap();
    let r = ctx.call("DescribeRouteTables", &[("Filter.1.Name", "association.main"), ("Filter.1.Value.1", "true")]).await;
    assert!(r.ok().texts("gatewayId").contains(&igw0), "{}", r.body);
    let id = ctx.run(1, &[]).await.remove(0);
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", &id)]).await;
    let auto_ip = r.ok().text("ipAddress").expect("public IP from the pool");
    assert!(auto_ip.starts_with("198.18."), "{auto_ip}");

    let r = ctx.call("DescribeInstances", &[("Filter.1.Name", "ip-address"), ("Filter.1.Value.1", &auto_ip)]).await;
    assert_eq!(r.ok().texts("instanceId"), vec![id.clone()]);

    // A stop gives the pool address back; a start brings a new one, as on EC2.
    ctx.call("StopInstances", &[("InstanceId.1", &id)]).await.ok();
    ctx.wait_state(&id, "stopped").await;
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", &id)]).await;
    assert_eq!(r.ok().text("ipAddress"), None, "a stopped instance has no public IP");
    ctx.call("StartInstances", &[("InstanceId.1", &id)]).await.ok();
    ctx.wait_state(&id, "running").await;
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", &id)]).await;
    assert!(r.ok().text("ipAddress").is_some(), "a started instance gets a public IP again");

    // Elastic IPs: allocate, associate (replacing the pool address), refuse release in use.
    let r = ctx.call("AllocateAddress", &[("Domain", "vpc")]).await;
    let alloc = r.ok().text("allocationId").unwrap();
    let eip = r.text("publicIp").unwrap();
    assert_ne!(eip, auto_ip);
    let r = ctx.call("AssociateAddress", &[("AllocationId", &alloc), ("InstanceId", &id)]).await;
    let assoc = r.ok().text("associationId").unwrap();
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", &id)]).await;
    assert_eq!(r.ok().text("ipAddress"), Some(eip.clone()));
    let r = ctx.call("DescribeAddresses", &[("Filter.1.Name", "instance-id"), ("Filter.1.Value.1", &id)]).await;
    assert_eq!(r.ok().text("publicIp"), Some(eip.clone()));
    ctx.call("ReleaseAddress", &[("AllocationId", &alloc)]).await.err("InvalidIPAddress.InUse");
    ctx.call("DisassociateAddress", &[("AssociationId", &assoc)]).await.ok();
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", &id)]).await;
    assert_eq!(r.ok().text("ipAddress"), None);
    ctx.call("ReleaseAddress", &[("AllocationId", &alloc)]).await.ok();
    ctx.call("ReleaseAddress", &[("AllocationId", &alloc)]).await.err("InvalidAllocationID.NotFound");

    // A new VPC: its own gateway and route table.
    let vpc = ctx.call("CreateVpc", &[("CidrBlock", "10.8.0.0/16")]).await.ok().text("vpcId").unwrap();
    let subnet = ctx.call("CreateSubnet", &[("VpcId", &vpc), ("CidrBlock", "10.8.1.0/24")]).await.ok().text("subnetId").unwrap();
    let igw = ctx.call("CreateInternetGateway", &[]).await.ok().text("internetGatewayId").unwrap();
    let rtb = ctx.call("CreateRouteTable", &[("VpcId", &vpc)]).await.ok().text("routeTableId").unwrap();
    ctx.call("CreateRoute", &[("RouteTableId", &rtb), ("DestinationCidrBlock", "0.0.0.0/0"), ("GatewayId", &igw)])
        .await
        .err("InvalidParameterValue");
    ctx.call("AttachInternetGateway", &[("InternetGatewayId", &igw), ("VpcId", &vpc)]).await.ok();
    ctx.call("AttachInternetGateway", &[("InternetGatewayId", &igw0), ("VpcId", &vpc)]).await.err("Resource.AlreadyAssociated");
    ctx.call("CreateRoute", &[("RouteTableId", &rtb), ("DestinationCidrBlock", "0.0.0.0/0"), ("GatewayId", &igw)]).await.ok();
    ctx.call("CreateRoute", &[("RouteTableId", &rtb), ("DestinationCidrBlock", "0.0.0.0/0"), ("GatewayId", &igw)])
        .await
        .err("RouteAlreadyExists");
    let assoc = ctx.call("AssociateRouteTable", &[("RouteTableId", &rtb), ("SubnetId", &subnet)]).await.ok().text("associationId").unwrap();
    let r = ctx.call("DescribeRouteTables", &[("RouteTableId.1", &rtb)]).await;
    assert_eq!(r.ok().texts("destinationCidrBlock"), vec!["10.8.0.0/16", "0.0.0.0/0"]);
    assert_eq!(r.text("subnetId"), Some(subnet.clone()));
    ctx.call("DeleteRouteTable", &[("RouteTableId", &rtb)]).await.err("DependencyViolation");
    ctx.call("DeleteInternetGateway", &[("InternetGatewayId", &igw)]).await.err("DependencyViolation");
    ctx.call("DeleteVpc", &[("VpcId", &vpc)]).await.err("DependencyViolation");
    ctx.call("DisassociateRouteTable", &[("AssociationId", &assoc)]).await.ok();
    ctx.call("DeleteRoute", &[("RouteTableId", &rtb), ("DestinationCidrBlock", "0.0.0.0/0")]).await.ok();
    ctx.call("DeleteRouteTable", &[("RouteTableId", &rtb)]).await.ok();
    ctx.call("DetachInternetGateway", &[("InternetGatewayId", &igw), ("VpcId", &vpc)]).await.ok();
    ctx.call("DetachInternetGateway", &[("InternetGatewayId", &igw), ("VpcId", &vpc)]).await.err("Gateway.NotAttached");
    ctx.call("DeleteInternetGateway", &[("InternetGatewayId", &igw)]).await.ok();
    ctx.call("DeleteSubnet", &[("SubnetId", &subnet)]).await.ok();
    ctx.call("DeleteVpc", &[("VpcId", &vpc)]).await.ok();
}

#[tokio::test]
async fn metadata_options_and_live_group_changes() {
    let ctx = TestContext::new().await;
    let id = ctx.run(1, &[("MetadataOptions.HttpTokens", "required"), ("MetadataOptions.HttpPutResponseHopLimit", "2")]).await.remove(0);
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", &id)]).await;
    assert!(r.ok().body.contains("<httpTokens>required</httpTokens>"), "{}", r.body);
    assert_eq!(r.text("httpPutResponseHopLimit").as_deref(), Some("2"));
    let r =
        ctx.call("ModifyInstanceMetadataOptions", &[("InstanceId", &id), ("HttpEndpoint", "disabled"), ("HttpTokens", "optional")]).await;
    assert_eq!(r.ok().text("httpEndpoint").as_deref(), Some("disabled"));
    ctx.call("ModifyInstanceMetadataOptions", &[("InstanceId", &id), ("HttpPutResponseHopLimit", "65")]).await.err("InvalidParameterValue");
    ctx.call(
        "RunInstances",
        &[("ImageId", &ctx.image("corral-minimal")), ("MinCount", "1"), ("MaxCount", "1"), ("MetadataOptions.HttpTokens", "sometimes")],
    )
    .await
    .err("InvalidParameterValue");
    let r = ctx.call("DescribeInstances", &[("InstanceId.1", &id)]).await;
    assert!(r.ok().body.contains("<httpEndpoint>disabled</httpEndpoint>"));
    assert!(r.body.contains("<httpTokens>optional</httpTokens>"));

    let sg = ctx.call("CreateSecurityGroup", &[("GroupName", "web"), ("GroupDescription", "web")]).await.ok().text("groupId").unwrap();
    ctx.call("ModifyInstanceAttribute", &[("InstanceId", &id), ("GroupId.1", &sg)]).await.ok();
    let r = ctx.call("DescribeInstanceAttribute", &[("InstanceId", &id), ("Attribute", "groupSet")]).await;
    assert_eq!(r.ok().texts("groupId"), vec![sg.clone()]);
    let other = ctx.call("CreateVpc", &[("CidrBlock", "10.9.0.0/16")]).await.ok().text("vpcId").unwrap();
    let foreign = ctx
        .call("CreateSecurityGroup", &[("GroupName", "x"), ("GroupDescription", "x"), ("VpcId", &other)])
        .await
        .ok()
        .text("groupId")
        .unwrap();
    ctx.call("ModifyInstanceAttribute", &[("InstanceId", &id), ("GroupId.1", &foreign)]).await.err("InvalidParameter");
}

/// The control plane tells the agent which ports, groups and metadata this host carries, and
/// tells it again when a rule changes.
#[tokio::test]
async fn desired_host_state_follows_the_store() {
    use base64::Engine;
    use corral_testkit::wait_for;
    use std::time::Duration;
    let ctx = TestContext::new().await;
    ctx.call("CreateKeyPair", &[("KeyName", "k"), ("KeyType", "ed25519")]).await.ok();
    let ud = base64::engine::general_purpose::STANDARD.encode("#!/bin/sh\necho hi\n");
    let id = ctx.run(1, &[("KeyName", "k"), ("UserData", &ud)]).await.remove(0);
    ctx.wait_state(&id, "running").await;
    let (host, _) = ctx.agent.host();
    let host = host.expect("host state applied");
    let mut config = corral_net::NetConfig::new("/unused");
    config.public_pool = corral_control::DEFAULT_PUBLIC_POOL.parse().unwrap();
    corral_net::validate(&host.net, &config).expect("a valid desired network");
    let vpc = &host.net.vpcs[0];
    let port = vpc.ports.iter().find(|p| p.instance_id == id).expect("port for the instance");
    assert_eq!(port.ip.to_string(), "172.31.0.4");
    assert!(port.public_ip.is_some(), "default subnets route to the internet gateway");
    let view = host.instances.iter().find(|v| v.instance_id == id).expect("metadata view");
    assert_eq!(view.user_data.as_deref(), Some(&b"#!/bin/sh\necho hi\n"[..]));
    assert!(view.public_keys[0].openssh_key.starts_with("ssh-ed25519 "));
    let group = port.groups[0].clone();

    ctx.call(
        "AuthorizeSecurityGroupIngress",
        &[("GroupId", &group), ("IpProtocol", "tcp"), ("FromPort", "8080"), ("ToPort", "8080"), ("CidrIp", "10.0.0.0/8")],
    )
    .await
    .ok();
    wait_for("the new rule reaches the agent", Duration::from_secs(5), || async {
        let (h, _) = ctx.agent.host();
        let h = h?;
        let g = h.net.vpcs[0].groups.iter().find(|g| g.group_id == group)?;
        g.ingress.iter().any(|r| r.from_port == Some(8080) && r.cidrs.iter().any(|(c, _)| c.to_string() == "10.0.0.0/8")).then_some(())
    })
    .await;
    // A new tag reaches the instance's metadata view at once (not at the next resync).
    ctx.call("CreateTags", &[("ResourceId.1", &id), ("Tag.1.Key", "role"), ("Tag.1.Value", "web")]).await.ok();
    wait_for("the new tag reaches the metadata view", Duration::from_secs(5), || async {
        let (h, _) = ctx.agent.host();
        let view = h?.instances.into_iter().find(|v| v.instance_id == id)?;
        view.tags.iter().any(|(k, v)| k == "role" && v == "web").then_some(())
    })
    .await;
    ctx.call("TerminateInstances", &[("InstanceId.1", &id)]).await.ok();
    ctx.wait_state(&id, "terminated").await;
    wait_for("the port leaves the host", Duration::from_secs(5), || async {
        let (h, _) = ctx.agent.host();
        h?.net.vpcs.iter().all(|v| v.ports.iter().all(|p| p.instance_id != id)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn network_acls_page_exactly_once() {
    let ctx = corral_testkit::TestContext::builder().limit("vpcs=20").build().await;
    for i in 1..=11 {
        ctx.call("CreateVpc", &[("CidrBlock", &format!("10.{i}.0.0/16"))]).await.ok();
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut p = vec![("MaxResults", "5".to_string())];
        if let Some(t) = &token {
            p.push(("NextToken", t.clone()));
        }
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = ctx.call("DescribeNetworkAcls", &p).await;
        let ids: Vec<String> = r.ok().texts("networkAclId").into_iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        assert!(ids.len() <= 5);
        seen.extend(ids);
        token = r.text("nextToken");
        if token.is_none() {
            break;
        }
    }
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (12, 12));
}
