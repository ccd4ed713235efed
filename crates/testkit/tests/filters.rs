//! Filters the store checks in SQL (tags, an instance's state, type, zone, image...; its VPC,
//! subnet, groups and addresses through its interfaces) return exactly what a plain
//! evaluation of the same filters over the whole fleet returns, on random fleets in two VPCs,
//! paged or not. The plain evaluation here uses EC2's wildcard rules directly.

use corral_testkit::{Rng, TestContext};
use corral_types::wildcard;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug)]
struct Seen {
    instance_type: String,
    state: String,
    zone: String,
    vpc: String,
    subnet: String,
    private_ip: String,
    groups: Vec<String>,
    tags: BTreeMap<String, String>,
}

fn fleet_of(body: &str) -> BTreeMap<String, Seen> {
    let doc = roxmltree::Document::parse(body).expect("xml");
    fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
        n.children().find(|c| c.tag_name().name() == name)
    }
    let text = |n: Option<roxmltree::Node>| n.and_then(|n| n.text()).unwrap_or("").to_string();
    let mut out = BTreeMap::new();
    for item in doc.descendants().filter(|n| n.tag_name().name() == "item" && child(*n, "instanceId").is_some()) {
        let tags = child(item, "tagSet")
            .map(|set| {
                set.children()
                    .filter(|c| c.is_element())
                    .map(|t| (text(child(t, "key")), text(child(t, "value"))))
                    .collect::<BTreeMap<_, _>>()
            })
            .unwrap_or_default();
        out.insert(
            text(child(item, "instanceId")),
            Seen {
                instance_type: text(child(item, "instanceType")),
                state: text(child(item, "instanceState").and_then(|s| child(s, "name"))),
                zone: text(child(item, "placement").and_then(|p| child(p, "availabilityZone"))),
                vpc: text(child(item, "vpcId")),
                subnet: text(child(item, "subnetId")),
                private_ip: text(child(item, "privateIpAddress")),
                groups: child(item, "groupSet")
                    .map(|set| set.children().filter(|c| c.is_element()).map(|g| text(child(g, "groupId"))).collect())
                    .unwrap_or_default(),
                tags,
            },
        );
    }
    out
}

fn plain(fleet: &BTreeMap<String, Seen>, filters: &[(String, Vec<String>)]) -> BTreeSet<String> {
    let any = |patterns: &[String], v: &str| patterns.iter().any(|p| wildcard::matches(p, v));
    fleet
        .iter()
        .filter(|(_, s)| {
            filters.iter().all(|(name, values)| match name.strip_prefix("tag:") {
                Some(key) => s.tags.get(key).is_some_and(|v| any(values, v)),
                None => match name.as_str() {
                    "tag-key" => s.tags.keys().any(|k| any(values, k)),
                    "instance-type" => any(values, &s.instance_type),
                    "instance-state-name" => any(values, &s.state),
                    "availability-zone" => any(values, &s.zone),
                    "vpc-id" => any(values, &s.vpc),
                    "subnet-id" => any(values, &s.subnet),
                    "private-ip-address" => any(values, &s.private_ip),
                    "group-id" | "instance.group-id" => s.groups.iter().any(|g| any(values, g)),
                    other => panic!("no plain evaluation of {other}"),
                },
            })
        })
        .map(|(id, _)| id.clone())
        .collect()
}

async fn described(ctx: &TestContext, filters: &[(String, Vec<String>)], page: Option<&str>) -> BTreeSet<String> {
    let mut params: Vec<(String, String)> = Vec::new();
    for (i, (name, values)) in filters.iter().enumerate() {
        params.push((format!("Filter.{}.Name", i + 1), name.clone()));
        for (j, v) in values.iter().enumerate() {
            params.push((format!("Filter.{}.Value.{}", i + 1, j + 1), v.clone()));
        }
    }
    if let Some(n) = page {
        params.push(("MaxResults".into(), n.into()));
    }
    let mut out = BTreeSet::new();
    let mut token: Option<String> = None;
    loop {
        let mut p = params.clone();
        if let Some(t) = &token {
            p.push(("NextToken".into(), t.clone()));
        }
        let refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = ctx.call("DescribeInstances", &refs).await;
        out.extend(fleet_of(&r.ok().body).into_keys());
        token = r.text("nextToken");
        if token.is_none() {
            return out;
        }
    }
}

#[tokio::test]
async fn stored_filters_select_what_a_plain_evaluation_selects() {
    let seed: u64 = std::env::var("CORRAL_FILTER_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_c0a1);
    let mut rng = Rng(seed);
    let ctx = TestContext::new().await;
    let keys = ["team", "env", "Name"];
    let values = ["red", "blue", "green-1", "green-2", "a[b]", "Red"];
    let types = ["t3.micro", "t3.small", "m5.large"];
    let zones = ["local-1a", "local-1b"];
    // A second group in the default VPC, and a second VPC with a subnet and a group of its own.
    let default_vpc = ctx.call("DescribeVpcs", &[]).await.ok().text("vpcId").expect("the default VPC");
    let group = |vpc: String, name: &'static str| {
        let ctx = &ctx;
        async move {
            let r = ctx.call("CreateSecurityGroup", &[("GroupName", name), ("GroupDescription", name), ("VpcId", &vpc)]).await;
            r.ok().text("groupId").expect("group id")
        }
    };
    let web = group(default_vpc, "web").await;
    let other_vpc = ctx.call("CreateVpc", &[("CidrBlock", "10.9.0.0/16")]).await.ok().text("vpcId").expect("vpc id");
    let other_subnet = ctx
        .call("CreateSubnet", &[("VpcId", &other_vpc), ("CidrBlock", "10.9.1.0/24"), ("AvailabilityZone", "local-1b")])
        .await
        .ok()
        .text("subnetId")
        .expect("subnet id");
    let other_group = group(other_vpc, "other").await;
    let mut ids = Vec::new();
    for _ in 0..40 {
        let mut params = vec![("InstanceType".to_string(), rng.pick(&types).to_string())];
        match rng.next_u64() % 5 {
            0 => {
                params.push(("SubnetId".into(), other_subnet.clone()));
                params.push(("SecurityGroupId.1".into(), other_group.clone()));
            }
            placed => {
                params.push(("Placement.AvailabilityZone".into(), rng.pick(&zones).to_string()));
                if placed % 2 == 0 {
                    params.push(("SecurityGroupId.1".into(), web.clone()));
                }
            }
        }
        let tags = rng.next_u64() % 3;
        if tags > 0 {
            params.push(("TagSpecification.1.ResourceType".into(), "instance".into()));
        }
        let mut used = BTreeSet::new();
        for t in 0..tags {
            let key = rng.pick(&keys);
            if used.insert(key) {
                params.push((format!("TagSpecification.1.Tag.{}.Key", t + 1), key.into()));
                params.push((format!("TagSpecification.1.Tag.{}.Value", t + 1), rng.pick(&values).into()));
            }
        }
        let refs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ids.extend(ctx.run(1, &refs).await);
    }
    for id in ids.iter().step_by(4) {
        ctx.call("StopInstances", &[("InstanceId.1", id)]).await.ok();
    }
    for (i, id) in ids.iter().enumerate() {
        ctx.wait_state(id, if i % 4 == 0 { "stopped" } else { "running" }).await;
    }
    let fleet = fleet_of(&ctx.call("DescribeInstances", &[]).await.ok().body);
    assert_eq!(fleet.len(), ids.len());

    let patterns = ["red", "*", "green-*", "?ed", "a[b]", "a[*", "blue", "*-2", "nothing", "R*"];
    let some_of = |fleet: &BTreeMap<String, Seen>, f: fn(&Seen) -> Vec<String>| -> Vec<String> {
        fleet.values().flat_map(f).collect::<BTreeSet<_>>().into_iter().collect()
    };
    let vpcs = some_of(&fleet, |s| vec![s.vpc.clone()]);
    let subnets = some_of(&fleet, |s| vec![s.subnet.clone()]);
    let groups = some_of(&fleet, |s| s.groups.clone());
    let ips = some_of(&fleet, |s| vec![s.private_ip.clone()]);
    assert!(vpcs.len() == 2 && subnets.len() == 3 && groups.len() == 3, "{vpcs:?} {subnets:?} {groups:?}");
    let with_wildcards =
        |ids: &[String], extra: &[&str]| -> Vec<String> { ids.iter().cloned().chain(extra.iter().map(|s| s.to_string())).collect() };
    let vpcs = with_wildcards(&vpcs, &["vpc-*", "vpc-0*", "nothing"]);
    let subnets = with_wildcards(&subnets, &["subnet-*", "*a*"]);
    let groups = with_wildcards(&groups, &["sg-*", "sg-?*"]);
    let ips = with_wildcards(&ips[..3.min(ips.len())], &["172.31.*", "10.9.1.?", "10.9.*"]);
    let mut nonempty = 0;
    for round in 0..90 {
        let mut filters: Vec<(String, Vec<String>)> = Vec::new();
        for _ in 0..=(rng.next_u64() % 2) {
            let some =
                |rng: &mut Rng, from: &[&str]| -> Vec<String> { (0..=(rng.next_u64() % 2)).map(|_| rng.pick(from).to_string()).collect() };
            let from = |rng: &mut Rng, from: &[String]| -> Vec<String> {
                (0..=(rng.next_u64() % 2)).map(|_| from[(rng.next_u64() % from.len() as u64) as usize].clone()).collect()
            };
            let filter = match rng.next_u64() % 9 {
                5 => ("vpc-id".to_string(), from(&mut rng, &vpcs)),
                6 => ("subnet-id".to_string(), from(&mut rng, &subnets)),
                7 => (rng.pick(&["group-id", "instance.group-id"]).to_string(), from(&mut rng, &groups)),
                8 => ("private-ip-address".to_string(), from(&mut rng, &ips)),
                0 | 1 => (format!("tag:{}", rng.pick(&keys)), some(&mut rng, &patterns)),
                2 => ("tag-key".to_string(), some(&mut rng, &["team", "e*", "?ame", "x*"])),
                3 => ("instance-type".to_string(), some(&mut rng, &["t3.*", "m5.large", "t3.micr?"])),
                _ => (
                    rng.pick(&["instance-state-name", "availability-zone"]).to_string(),
                    some(&mut rng, &["running", "stopped", "local-1a", "local-1*"]),
                ),
            };
            filters.push(filter);
        }
        let want = plain(&fleet, &filters);
        nonempty += usize::from(!want.is_empty());
        assert_eq!(described(&ctx, &filters, None).await, want, "round {round}, seed {seed}: {filters:?}");
        assert_eq!(described(&ctx, &filters, Some("5")).await, want, "round {round} paged, seed {seed}: {filters:?}");
    }
    assert!(nonempty > 10, "too few filters selected anything ({nonempty}): the test would prove little");
}
