//! End to end on real QEMU with networking: a `corral-minimal` guest launched with a key pair,
//! a security group and user-data. SSH into it with the key; `admin` has passwordless sudo (on
//! corral-debian-12 too); user-data's marker is there; the listener user-data started on port
//! 8080 is dropped until an ingress rule allows it, answers after, and is dropped again after
//! revoke, with the instance running throughout; its metadata service refuses IMDSv1 once
//! tokens are required. Also: groups and same-CIDR VPCs isolate instances; a route through an
//! instance carries traffic only while its source/destination check is off; a guest reaches
//! neither the host's own services nor another instance's metadata; a new type and
//! new user-data set while stopped reach the guest at its next start. Everything runs inside
//! network namespaces the test makes (the "host" that reaches public IPs is one of them).

mod common;

use base64::Engine;
use common::*;
use corral_testkit::{wait_for, Client};
use std::time::Duration;

const USER_DATA: &str = "#!/bin/sh
echo corral-e2e-user-data-ran
printf '#!/bin/sh\\necho hello-from-8080\\n' > /var/tmp/hello.sh
chmod 755 /var/tmp/hello.sh
nc -ll -p 8080 -e /var/tmp/hello.sh &
";

/// Run over SSH as the login user: fails unless sudo works without a password (`-n`: never
/// prompt), then prints root's uid.
const SUDO_CHECK: &str = "sudo -n true && sudo -n id -u";

/// Connects from the test's host namespace to `ip:port` and reads what the server says.
/// Ok(text) when it answers, Err("timeout") when packets are dropped, Err(other) otherwise.
async fn probe(ns: &str, ip: &str, port: u16) -> Result<String, String> {
    let script = format!(
        "import socket,sys\ntry:\n s=socket.create_connection(('{ip}',{port}),timeout=2); print(s.recv(100).decode().strip())\nexcept socket.timeout:\n print('timeout'); sys.exit(3)\nexcept Exception as e:\n print(type(e).__name__); sys.exit(4)"
    );
    match in_ns(ns, &["python3", "-c", &script]).await {
        Ok(out) => Ok(out.trim().to_string()),
        Err(e) if e.contains("timeout") => Err("timeout".into()),
        Err(e) => Err(e),
    }
}

async fn authorize(c: &Client, action: &str, group: &str, port: &str) {
    c.call(action, &[("GroupId", group), ("IpProtocol", "tcp"), ("FromPort", port), ("ToPort", port), ("CidrIp", "0.0.0.0/0")]).await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_user_data_and_live_security_groups() {
    if skip() {
        return;
    }
    let cloud = Cloud::start("minimal");
    let (c, net) = (cloud.c.clone(), &cloud.net);
    let image = cloud.image("corral-minimal").await;

    let key = cloud.key_pair("e2e").await;
    let sg = c.call("CreateSecurityGroup", &[("GroupName", "web"), ("GroupDescription", "e2e")]).await.ok().text("groupId").unwrap();
    authorize(&c, "AuthorizeSecurityGroupIngress", &sg, "22").await;

    let ud = base64::engine::general_purpose::STANDARD.encode(USER_DATA);
    let r = c
        .call(
            "RunInstances",
            &[
                ("ImageId", &image),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("InstanceType", "t3.micro"),
                ("KeyName", "e2e"),
                ("SecurityGroupId.1", &sg),
                ("UserData", &ud),
            ],
        )
        .await;
    let id = r.ok().text("instanceId").unwrap();
    wait_state(&c, &id, "running", BOOT_DEADLINE).await;
    let out = wait_markers(&c, &id, 1).await;
    assert!(out.contains("corral-minimal: metadata ok"), "the guest read its metadata:\n{out}");
    let r = c.call("DescribeInstances", &[("InstanceId.1", &id)]).await;
    let public = r.ok().text("ipAddress").expect("a public IP");

    // SSH with the key pair; user-data ran.
    let log = ssh(&net.host_ns, &key, &public, "cat /var/log/user-data.log").await.expect("ssh as admin with the key pair");
    assert!(log.contains("corral-e2e-user-data-ran"), "user-data's marker: {log}");
    // The login user becomes root without a password, as on every EC2 image.
    let root = ssh(&net.host_ns, &key, &public, SUDO_CHECK).await.expect("passwordless sudo for admin on corral-minimal");
    assert_eq!(root.trim(), "0", "sudo -n id -u: {root}");

    // 8080: dropped, then allowed, then dropped again, live.
    assert_eq!(probe(&net.host_ns, &public, 8080).await, Err("timeout".into()), "no rule: packets dropped");
    authorize(&c, "AuthorizeSecurityGroupIngress", &sg, "8080").await;
    let answer = wait_for("8080 to open", Duration::from_secs(20), || async { probe(&net.host_ns, &public, 8080).await.ok() }).await;
    assert_eq!(answer, "hello-from-8080");
    authorize(&c, "RevokeSecurityGroupIngress", &sg, "8080").await;
    wait_for("8080 to close", Duration::from_secs(20), || async {
        (probe(&net.host_ns, &public, 8080).await == Err("timeout".into())).then_some(())
    })
    .await;
    assert_eq!(state_of(&c, &id).await, "running");

    // The metadata service, as the guest sees it: v1 works until tokens are required.
    let v1 = "wget -q -O - http://169.254.169.254/latest/meta-data/instance-id";
    assert_eq!(ssh(&net.host_ns, &key, &public, v1).await.map(|s| s.trim().to_string()), Ok(id.clone()));
    c.call("ModifyInstanceMetadataOptions", &[("InstanceId", &id), ("HttpTokens", "required")]).await.ok();
    wait_for("IMDSv1 refused", Duration::from_secs(20), || async { ssh(&net.host_ns, &key, &public, v1).await.is_err().then_some(()) })
        .await;

    c.call("TerminateInstances", &[("InstanceId.1", &id)]).await.ok();
    wait_state(&c, &id, "terminated", Duration::from_secs(60)).await;
    wait_for("the VPC namespace to go with its last instance", Duration::from_secs(60), || async {
        net.namespaces().is_empty().then_some(())
    })
    .await;
}

/// A TCP service of the host: a listener in the test's host namespace on every address, saying
/// `host-service` to whoever connects; ended (by its pid) when dropped.
struct HostService(std::process::Child);

impl HostService {
    fn start(host_ns: &str, port: u16) -> HostService {
        let code = format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',{port}))\ns.listen(8)\nwhile True:\n  c,_=s.accept()\n  c.sendall(b'host-service\\n')\n  c.close()\n"
        );
        let child = corral_exec::std_command("ip")
            .args(["netns", "exec", host_ns, "python3", "-c", &code])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start the host's service");
        HostService(child)
    }
}

impl Drop for HostService {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A security group open on `ports` (TCP, from anywhere); returns its id.
async fn group_open_on(c: &Client, name: &str, ports: &[&str]) -> String {
    let sg = c.call("CreateSecurityGroup", &[("GroupName", name), ("GroupDescription", "e2e")]).await.ok().text("groupId").unwrap();
    for port in ports {
        authorize(c, "AuthorizeSecurityGroupIngress", &sg, port).await;
    }
    sg
}

/// Launches one instance and returns its id.
async fn launch(c: &Client, params: &[(&str, &str)]) -> String {
    let mut p = vec![("MinCount", "1"), ("MaxCount", "1"), ("InstanceType", "t3.micro")];
    p.extend_from_slice(params);
    c.call("RunInstances", &p).await.ok().text("instanceId").unwrap()
}

/// Two instances of one VPC reach each other only as their groups allow (here through a rule
/// naming the other group); a VPC with the same CIDR is not reachable at all.
#[tokio::test(flavor = "multi_thread")]
async fn groups_and_vpcs_isolate_instances() {
    if skip() {
        return;
    }
    let cloud = Cloud::start("minimal");
    let (c, net) = (cloud.c.clone(), &cloud.net);
    let image = cloud.image("corral-minimal").await;
    let key = cloud.key_pair("e2e").await;

    // Two VPCs with the same CIDR, each with a public subnet.
    let mut subnets = Vec::new();
    for _ in 0..2 {
        let vpc = c.call("CreateVpc", &[("CidrBlock", "10.0.0.0/16")]).await.ok().text("vpcId").unwrap();
        let subnet = c.call("CreateSubnet", &[("VpcId", &vpc), ("CidrBlock", "10.0.1.0/24")]).await.ok().text("subnetId").unwrap();
        let igw = c.call("CreateInternetGateway", &[]).await.ok().text("internetGatewayId").unwrap();
        c.call("AttachInternetGateway", &[("InternetGatewayId", &igw), ("VpcId", &vpc)]).await.ok();
        let rtb = c.call("CreateRouteTable", &[("VpcId", &vpc)]).await.ok().text("routeTableId").unwrap();
        c.call("CreateRoute", &[("RouteTableId", &rtb), ("DestinationCidrBlock", "0.0.0.0/0"), ("GatewayId", &igw)]).await.ok();
        c.call("AssociateRouteTable", &[("RouteTableId", &rtb), ("SubnetId", &subnet)]).await.ok();
        c.call("ModifySubnetAttribute", &[("SubnetId", &subnet), ("MapPublicIpOnLaunch.Value", "true")]).await.ok();
        subnets.push((vpc, subnet));
    }
    let group = |vpc: String, name: &'static str| {
        let c = c.clone();
        async move {
            c.call("CreateSecurityGroup", &[("GroupName", name), ("GroupDescription", name), ("VpcId", &vpc)])
                .await
                .ok()
                .text("groupId")
                .unwrap()
        }
    };
    let client = group(subnets[0].0.clone(), "client").await;
    let server_sg = group(subnets[0].0.clone(), "server").await;
    let open_sg = group(subnets[1].0.clone(), "open").await;
    authorize(&c, "AuthorizeSecurityGroupIngress", &client, "22").await;
    authorize(&c, "AuthorizeSecurityGroupIngress", &open_sg, "8080").await;

    let ud = base64::engine::general_purpose::STANDARD.encode(USER_DATA);
    let a = launch(&c, &[("ImageId", &image), ("KeyName", "e2e"), ("SubnetId", &subnets[0].1), ("SecurityGroupId.1", &client)]).await;
    let b = launch(
        &c,
        &[
            ("ImageId", &image),
            ("SubnetId", &subnets[0].1),
            ("SecurityGroupId.1", &server_sg),
            ("PrivateIpAddress", "10.0.1.10"),
            ("UserData", &ud),
        ],
    )
    .await;
    let other = launch(
        &c,
        &[
            ("ImageId", &image),
            ("SubnetId", &subnets[1].1),
            ("SecurityGroupId.1", &open_sg),
            ("PrivateIpAddress", "10.0.1.11"),
            ("UserData", &ud),
        ],
    )
    .await;
    for id in [&a, &b, &other] {
        wait_state(&c, id, "running", BOOT_DEADLINE).await;
        wait_markers(&c, id, 1).await;
    }
    let r = c.call("DescribeInstances", &[("InstanceId.1", &a)]).await;
    r.ok();
    let a_public = r.text("ipAddress").expect("A has a public IP");
    let fetch = |ip: &'static str| format!("echo | nc -w 3 {ip} 8080 || echo unreachable");

    // B's group has no rule for A: dropped. A rule naming A's group opens it.
    let out = ssh(&net.host_ns, &key, &a_public, &fetch("10.0.1.10")).await.expect("ssh into A");
    assert!(!out.contains("hello-from-8080"), "no rule yet, but B answered: {out}");
    c.call(
        "AuthorizeSecurityGroupIngress",
        &[
            ("GroupId", &server_sg),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "8080"),
            ("IpPermissions.1.ToPort", "8080"),
            ("IpPermissions.1.Groups.1.GroupId", &client),
        ],
    )
    .await
    .ok();
    wait_for("B to answer A through the group rule", Duration::from_secs(30), || async {
        let out = ssh(&net.host_ns, &key, &a_public, &fetch("10.0.1.10")).await.ok()?;
        out.contains("hello-from-8080").then_some(())
    })
    .await;
    // The other VPC's instance allows everyone on 8080, yet A cannot reach it.
    let out = ssh(&net.host_ns, &key, &a_public, &fetch("10.0.1.11")).await.expect("ssh into A");
    assert!(!out.contains("hello-from-8080"), "another VPC answered: {out}");

    // The host's own services: a listener on every address of the host (the test's host
    // namespace) answers the host itself, and no guest, at the host end of either VPC's link.
    let _service = HostService::start(&net.host_ns, 2222);
    let addrs = in_ns(&net.host_ns, &["ip", "-4", "-o", "addr", "show"]).await.unwrap();
    let host_ends: Vec<String> = addrs
        .lines()
        .filter(|l| l.split_whitespace().nth(1).is_some_and(|dev| dev.starts_with(corral_net::names::HOST_LINK_PREFIX)))
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1)?.split('/').next().map(str::to_string))
        .collect();
    assert_eq!(host_ends.len(), 2, "one link per VPC: {addrs}");
    for end in &host_ends {
        let here =
            wait_for("the host's service to listen", Duration::from_secs(10), || async { probe(&net.host_ns, end, 2222).await.ok() }).await;
        assert_eq!(here, "host-service");
        let out = ssh(&net.host_ns, &key, &a_public, &format!("echo | nc -w 3 {end} 2222 || echo unreachable")).await.expect("ssh into A");
        assert!(!out.contains("host-service"), "a guest reached the host's service at {end}: {out}");
    }

    // Another instance's metadata: the service answers A as A; with B's address as the source
    // of A's packets (added to A's interface, and the route to the service told to use it),
    // A's packets are dropped as spoofed before they reach it.
    let imds = "printf 'GET /latest/meta-data/instance-id HTTP/1.0\\r\\n\\r\\n' | nc -w 3 169.254.169.254 80 || echo unreachable";
    let own = ssh(&net.host_ns, &key, &a_public, imds).await.expect("ssh into A");
    assert!(own.contains(&a), "A's own metadata: {own}");
    let spoof = "sudo -n ip addr add 10.0.1.10/32 dev eth0 && \
                 sudo -n ip route replace 169.254.169.254 via $(ip route | awk '/^default/ {print $3}') dev eth0 src 10.0.1.10 && \
                 ip route get 169.254.169.254";
    let spoofed = ssh(&net.host_ns, &key, &a_public, &format!("{spoof} && {imds}")).await.expect("ssh into A");
    assert!(spoofed.contains("src 10.0.1.10"), "A's packets to the service now leave as B's: {spoofed}");
    assert!(!spoofed.contains(&b), "A read B's metadata by taking B's address: {spoofed}");
    assert!(spoofed.contains("unreachable"), "{spoofed}");

    for id in [&a, &b, &other] {
        c.call("TerminateInstances", &[("InstanceId.1", id)]).await.ok();
    }
    for id in [&a, &b, &other] {
        wait_state(&c, id, "terminated", Duration::from_secs(60)).await;
    }
    wait_for("every VPC namespace to go", Duration::from_secs(60), || async { net.namespaces().is_empty().then_some(()) }).await;
}

/// corral-debian-12 takes the key pair and user-data through its unmodified cloud-init (Ec2
/// data source), and `admin` logs in with the key and has passwordless sudo.
#[tokio::test(flavor = "multi_thread")]
async fn debian_takes_key_pair_and_user_data_through_cloud_init() {
    if skip() {
        return;
    }
    let cloud = Cloud::start("all");
    let (c, net) = (cloud.c.clone(), &cloud.net);
    let image = cloud.image("corral-debian-12").await;
    let key = cloud.key_pair("deb").await;
    let sg = group_open_on(&c, "ssh", &["22"]).await;
    let ud = base64::engine::general_purpose::STANDARD.encode("#!/bin/sh\necho debian-user-data-ran > /var/tmp/corral-marker\n");
    // A root volume bigger than the image: cloud-init grows the file system to it.
    let id = launch(
        &c,
        &[
            ("ImageId", &image),
            ("InstanceType", "t3.small"),
            ("KeyName", "deb"),
            ("SecurityGroupId.1", &sg),
            ("UserData", &ud),
            ("BlockDeviceMapping.1.DeviceName", "/dev/xvda"),
            ("BlockDeviceMapping.1.Ebs.VolumeSize", "6"),
        ],
    )
    .await;
    wait_state(&c, &id, "running", BOOT_DEADLINE).await;
    let public = c.call("DescribeInstances", &[("InstanceId.1", &id)]).await.text("ipAddress").expect("public IP");
    // Debian with systemd and cloud-init boots in about a minute under TCG (HOST-NOTES.md).
    let marker = wait_for("SSH into corral-debian-12 and the user-data marker", Duration::from_secs(400), || async {
        ssh(&net.host_ns, &key, &public, "cat /var/tmp/corral-marker").await.ok().filter(|s| s.contains("debian-user-data-ran"))
    })
    .await;
    assert!(marker.contains("debian-user-data-ran"));
    let hostname = ssh(&net.host_ns, &key, &public, "hostname").await.unwrap();
    assert!(hostname.trim().starts_with("ip-172-31-"), "cloud-init set the EC2 host name: {hostname}");
    let root = ssh(&net.host_ns, &key, &public, SUDO_CHECK).await.expect("passwordless sudo for admin on corral-debian-12");
    assert_eq!(root.trim(), "0", "sudo -n id -u: {root}");
    let size = ssh(&net.host_ns, &key, &public, "df -B1 --output=size / | tail -1").await.unwrap();
    let size: u64 = size.trim().parse().unwrap_or(0);
    assert!(size > 5 << 30, "the root file system was grown to the 6 GiB volume: {size} bytes");
    c.call("TerminateInstances", &[("InstanceId.1", &id)]).await.ok();
    wait_state(&c, &id, "terminated", Duration::from_secs(120)).await;
}

/// A route through an instance (CreateRoute with InstanceId) takes the VPC's traffic for a
/// network to that instance; its answers from an address that is not its own reach the
/// client only once ModifyInstanceAttribute turns its source/destination check off.
#[tokio::test(flavor = "multi_thread")]
async fn source_dest_check_off_lets_an_instance_forward() {
    if skip() {
        return;
    }
    let cloud = Cloud::start("minimal");
    let (c, net) = (cloud.c.clone(), &cloud.net);
    let image = cloud.image("corral-minimal").await;
    let key = cloud.key_pair("e2e").await;
    let sg = group_open_on(&c, "fwd", &["22", "8081"]).await;
    // The "router" holds 10.99.0.5, an address no instance has, and answers on 8081 there.
    let router_ud = base64::engine::general_purpose::STANDARD.encode(
        "#!/bin/sh\nip addr add 10.99.0.5/32 dev lo\nprintf '#!/bin/sh\\necho behind-the-router\\n' > /var/tmp/r.sh\nchmod 755 /var/tmp/r.sh\nnc -ll -p 8081 -e /var/tmp/r.sh &\n",
    );
    let router = launch(&c, &[("ImageId", &image), ("KeyName", "e2e"), ("SecurityGroupId.1", &sg), ("UserData", &router_ud)]).await;
    let client = launch(&c, &[("ImageId", &image), ("KeyName", "e2e"), ("SecurityGroupId.1", &sg)]).await;
    for id in [&router, &client] {
        wait_state(&c, id, "running", BOOT_DEADLINE).await;
        wait_markers(&c, id, 1).await;
    }
    let public = c.call("DescribeInstances", &[("InstanceId.1", &client)]).await.ok().text("ipAddress").expect("public IP");
    let vpc = c.call("DescribeInstances", &[("InstanceId.1", &router)]).await.ok().text("vpcId").expect("vpc");
    let main = c
        .call(
            "DescribeRouteTables",
            &[("Filter.1.Name", "vpc-id"), ("Filter.1.Value.1", &vpc), ("Filter.2.Name", "association.main"), ("Filter.2.Value.1", "true")],
        )
        .await
        .ok()
        .text("routeTableId")
        .expect("main table");
    c.call("CreateRoute", &[("RouteTableId", &main), ("DestinationCidrBlock", "10.99.0.0/24"), ("InstanceId", &router)]).await.ok();

    let ask = "nc -w 3 10.99.0.5 8081 </dev/null; echo done";
    // Check on (the default): the router's answers, from 10.99.0.5, are dropped.
    let out = ssh(&net.host_ns, &key, &public, ask).await.expect("ssh into the client");
    assert!(!out.contains("behind-the-router"), "answers passed with the check on: {out}");
    c.call("ModifyInstanceAttribute", &[("InstanceId", &router), ("SourceDestCheck.Value", "false")]).await.ok();
    let answer = wait_for("the router's answers to pass", Duration::from_secs(30), || async {
        ssh(&net.host_ns, &key, &public, ask).await.ok().filter(|o| o.contains("behind-the-router"))
    })
    .await;
    assert!(answer.contains("behind-the-router"));
    // Back on: dropped again.
    c.call("ModifyInstanceAttribute", &[("InstanceId", &router), ("SourceDestCheck.Value", "true")]).await.ok();
    wait_for("the router's answers to be dropped again", Duration::from_secs(30), || async {
        ssh(&net.host_ns, &key, &public, ask).await.ok().filter(|o| !o.contains("behind-the-router"))
    })
    .await;
    for id in [&router, &client] {
        c.call("TerminateInstances", &[("InstanceId.1", id)]).await.ok();
    }
    for id in [&router, &client] {
        wait_state(&c, id, "terminated", Duration::from_secs(60)).await;
    }
}

/// A new instance type and new user-data, set while the instance is stopped, are what the
/// guest gets at its next start: its memory, and what the metadata service serves.
#[tokio::test(flavor = "multi_thread")]
async fn type_and_user_data_changes_reach_the_guest_at_the_next_start() {
    if skip() {
        return;
    }
    let cloud = Cloud::start("minimal");
    let (c, net) = (cloud.c.clone(), &cloud.net);
    let image = cloud.image("corral-minimal").await;
    let key = cloud.key_pair("e2e").await;
    let sg = group_open_on(&c, "resize", &["22"]).await;
    let first = base64::engine::general_purpose::STANDARD.encode("#!/bin/sh\necho first-user-data\n");
    let params = [
        ("MinCount", "1"),
        ("MaxCount", "1"),
        ("InstanceType", "t3.nano"),
        ("ImageId", image.as_str()),
        ("KeyName", "e2e"),
        ("SecurityGroupId.1", sg.as_str()),
        ("UserData", first.as_str()),
    ];
    let id = c.call("RunInstances", &params).await.ok().text("instanceId").unwrap();
    wait_state(&c, &id, "running", BOOT_DEADLINE).await;
    wait_markers(&c, &id, 1).await;
    let public = c.call("DescribeInstances", &[("InstanceId.1", &id)]).await.ok().text("ipAddress").expect("public IP");
    let mem_kib = |s: String| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let facts = "grep MemTotal /proc/meminfo; wget -q -O - http://169.254.169.254/latest/user-data";
    let before = ssh(&net.host_ns, &key, &public, facts).await.expect("ssh");
    assert!(before.contains("first-user-data"), "{before}");
    let before_kib = mem_kib(before.lines().next().unwrap_or_default().to_string());
    assert!(before_kib > 0 && before_kib <= 512 * 1024, "t3.nano has 512 MiB: {before}");

    c.call("StopInstances", &[("InstanceId.1", &id)]).await.ok();
    wait_state(&c, &id, "stopped", Duration::from_secs(120)).await;
    let second = base64::engine::general_purpose::STANDARD.encode(b"#!/bin/sh\necho second-user-data\n");
    c.call("ModifyInstanceAttribute", &[("InstanceId", &id), ("InstanceType.Value", "t3.small")]).await.ok();
    c.call("ModifyInstanceAttribute", &[("InstanceId", &id), ("UserData.Value", &second)]).await.ok();
    c.call("StartInstances", &[("InstanceId.1", &id)]).await.ok();
    wait_state(&c, &id, "running", BOOT_DEADLINE).await;
    let public = c.call("DescribeInstances", &[("InstanceId.1", &id)]).await.ok().text("ipAddress").expect("public IP");
    let after =
        wait_for("ssh after the start", Duration::from_secs(90), || async { ssh(&net.host_ns, &key, &public, facts).await.ok() }).await;
    assert!(after.contains("second-user-data"), "the metadata service serves the new user-data: {after}");
    let after_kib = mem_kib(after.lines().next().unwrap_or_default().to_string());
    assert!(after_kib > 1536 * 1024, "t3.small has 2 GiB: {after}");
    c.call("TerminateInstances", &[("InstanceId.1", &id)]).await.ok();
    wait_state(&c, &id, "terminated", Duration::from_secs(60)).await;
}
