//! Two regions on one QEMU host: `corral serve --regions us-west-2` beside the home region.
//! One corral-minimal guest boots in each, in default VPCs with the same CIDR; each region's
//! networks live in namespaces of their own, and the guest in one region cannot reach the
//! other's private address even with port 22 open to everyone there, while both answer SSH on
//! their public IPs.

mod common;

use common::*;
use corral_testkit::Client;

/// Opens port 22 to everyone in the default group, makes a key pair, launches one guest
/// (at `private_ip` when given); returns (instance id, public IP, private IP).
async fn guest(cloud: &Cloud, c: &Client, region: &str, private_ip: Option<&str>) -> (String, String, String) {
    let sg = c
        .call("DescribeSecurityGroups", &[("Filter.1.Name", "group-name"), ("Filter.1.Value.1", "default")])
        .await
        .ok()
        .text("groupId")
        .expect("default group");
    c.call(
        "AuthorizeSecurityGroupIngress",
        &[("GroupId", &sg), ("IpProtocol", "tcp"), ("FromPort", "22"), ("ToPort", "22"), ("CidrIp", "0.0.0.0/0")],
    )
    .await
    .ok();
    let r = c.call("CreateKeyPair", &[("KeyName", "regional"), ("KeyType", "ed25519")]).await;
    let key = cloud.state.join(format!("{region}.pem"));
    std::fs::write(&key, r.ok().text("keyMaterial").unwrap()).unwrap();
    corral_exec::run_blocking("chmod", &["600", &key.display().to_string()]).unwrap();
    let image = c.call("DescribeImages", &[("Filter.1.Name", "name"), ("Filter.1.Value.1", "corral-minimal")]).await;
    let image = image.ok().text("imageId").expect("corral-minimal registered in the region");
    let zone = format!("{region}a");
    let mut p = vec![
        ("ImageId", image.as_str()),
        ("MinCount", "1"),
        ("MaxCount", "1"),
        ("InstanceType", "t3.micro"),
        ("KeyName", "regional"),
        ("Placement.AvailabilityZone", zone.as_str()),
    ];
    if let Some(ip) = private_ip {
        p.push(("PrivateIpAddress", ip));
    }
    let id = c.call("RunInstances", &p).await.ok().text("instanceId").unwrap();
    wait_state(c, &id, "running", BOOT_DEADLINE).await;
    wait_markers(c, &id, 1).await;
    let d = c.call("DescribeInstances", &[("InstanceId.1", &id)]).await;
    (id, d.ok().text("ipAddress").expect("public IP"), d.text("privateIpAddress").expect("private IP"))
}

#[tokio::test(flavor = "multi_thread")]
async fn one_guest_in_each_of_two_regions_networks_apart() {
    if skip() {
        return;
    }
    let cloud = Cloud::start_args("minimal", &["--regions", "us-west-2"]);
    let home = cloud.c.clone();
    let mut west = cloud.c.clone();
    west.region = "us-west-2".into();

    let (a, a_public, a_private) = guest(&cloud, &home, "local-1", None).await;
    let (b, b_public, b_private) = guest(&cloud, &west, "us-west-2", Some("172.31.0.200")).await;
    assert!(a_private.starts_with("172.31.") && b_private == "172.31.0.200", "{a_private} {b_private}");
    assert_ne!(a_public, b_public);
    // Neither region sees the other's instance.
    west.call("DescribeInstances", &[("InstanceId.1", &a)]).await.err("InvalidInstanceID.NotFound");
    home.call("DescribeInstances", &[("InstanceId.1", &b)]).await.err("InvalidInstanceID.NotFound");

    // Each region's VPC has a namespace of its own: the home region's under the prefix, the
    // other under the prefix and its short code.
    let spaces = cloud.net.namespaces();
    let west_prefix = format!("{}usw2-vpc-", cloud.net.prefix);
    let home_prefix = format!("{}vpc-", cloud.net.prefix);
    assert_eq!(spaces.iter().filter(|n| n.starts_with(&west_prefix)).count(), 1, "{spaces:?}");
    assert_eq!(spaces.iter().filter(|n| n.starts_with(&home_prefix)).count(), 1, "{spaces:?}");

    // Both answer SSH on their public IPs (B's port 22 is open to everyone); A cannot reach
    // B's private address, as it would inside one VPC.
    let key_a = cloud.state.join("local-1.pem");
    let key_b = cloud.state.join("us-west-2.pem");
    let hostname_b = ssh(&cloud.net.host_ns, &key_b, &b_public, "hostname").await.expect("ssh into the us-west-2 guest");
    assert!(!hostname_b.trim().is_empty());
    let probe = format!("nc -w 3 {b_private} 22 </dev/null; echo exit=$?");
    let out = ssh(&cloud.net.host_ns, &key_a, &a_public, &probe).await.expect("ssh into the home guest");
    assert!(out.contains("exit=") && !out.contains("SSH-"), "the home guest reached the other region's private address: {out}");
    assert_ne!(a_private, b_private);

    for (c, id) in [(&home, &a), (&west, &b)] {
        c.call("TerminateInstances", &[("InstanceId.1", id)]).await.ok();
        wait_state(c, id, "terminated", BOOT_DEADLINE).await;
    }
}
