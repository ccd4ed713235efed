//! A filled-in [`InstanceView`] for tests here and in the agent: one instance in `10.0.1.0/24`
//! with a public address, a key pair and user-data.

use std::net::Ipv4Addr;

use chrono::{TimeZone, Utc};

use crate::view::{GroupRef, InstanceView, InterfaceView, MetadataOptions, PublicKey};

/// An instance whose primary private address is `ip`, named after `instance_id`.
pub fn instance_view(instance_id: &str, ip: Ipv4Addr) -> InstanceView {
    let [a, b, c, d] = ip.octets();
    let hostname = format!("ip-{a}-{b}-{c}-{d}.local-1.compute.internal");
    let launch = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).single().expect("valid date");
    InstanceView {
        instance_id: instance_id.to_string(),
        image_id: "ami-0123456789abcdef0".into(),
        instance_type: "t3.micro".into(),
        launch_index: 0,
        reservation_id: "r-0123456789abcdef0".into(),
        account_id: "123456789012".into(),
        region: "local-1".into(),
        availability_zone: "local-1a".into(),
        availability_zone_id: "local1-az1".into(),
        architecture: "x86_64".into(),
        hostname: hostname.clone(),
        interfaces: vec![InterfaceView {
            interface_id: "eni-0123456789abcdef0".into(),
            device_number: 0,
            mac: format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}"),
            private_ips: vec![ip],
            public_ip: Some(Ipv4Addr::new(198, 51, 100, d)),
            public_hostname: Some(format!("ec2-198-51-100-{d}.local-1.compute.amazonaws.com")),
            local_hostname: hostname,
            subnet_id: "subnet-0123456789abcdef0".into(),
            subnet_cidr: format!("{a}.{b}.{c}.0/24"),
            vpc_id: "vpc-0123456789abcdef0".into(),
            vpc_cidrs: vec![format!("{a}.{b}.0.0/16")],
            security_groups: vec![
                GroupRef { id: "sg-0123456789abcdef0".into(), name: "default".into() },
                GroupRef { id: "sg-0fedcba9876543210".into(), name: "web".into() },
            ],
        }],
        public_keys: vec![PublicKey {
            name: "my-key".into(),
            openssh_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyMaterialOnlyForTests my-key".into(),
        }],
        user_data: Some(b"#!/bin/sh\necho hello > /tmp/marker\n".to_vec()),
        launch_time: launch,
        pending_time: launch,
        root_device_name: "/dev/xvda".into(),
        block_devices: Vec::new(),
        tags: vec![("Name".into(), "web-1".into()), ("team".into(), "infra".into())],
        options: MetadataOptions::default(),
    }
}
