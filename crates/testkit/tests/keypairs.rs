//! Key pairs and tags through the API.

use corral_testkit::TestContext;

#[tokio::test]
async fn create_import_describe_delete() {
    use base64::Engine;
    let ctx = TestContext::new().await;
    let r = ctx.call("CreateKeyPair", &[("KeyName", "rsa-1")]).await;
    r.ok();
    assert!(r.text("keyMaterial").unwrap().starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert_eq!(r.text("keyFingerprint").unwrap().len(), 59, "SHA-1, colon separated");
    let r = ctx.call("CreateKeyPair", &[("KeyName", "ed-1"), ("KeyType", "ed25519")]).await;
    assert!(r.ok().text("keyMaterial").unwrap().starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
    ctx.call("CreateKeyPair", &[("KeyName", "rsa-1")]).await.err("InvalidKeyPair.Duplicate");
    ctx.call("CreateKeyPair", &[("KeyName", "x"), ("KeyType", "dsa")]).await.err("InvalidParameterValue");

    let pub_line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhj3n9bYpd3b1Zw0hNJV+aHc1aJp5TixmMSKvBkS+Pd test@host";
    let material = base64::engine::general_purpose::STANDARD.encode(pub_line);
    let r = ctx.call("ImportKeyPair", &[("KeyName", "imported"), ("PublicKeyMaterial", &material)]).await;
    r.ok();
    let bad = base64::engine::general_purpose::STANDARD.encode("not a key");
    ctx.call("ImportKeyPair", &[("KeyName", "bad"), ("PublicKeyMaterial", &bad)]).await.err("InvalidKey.Format");

    let r = ctx.call("DescribeKeyPairs", &[("Filter.1.Name", "key-name"), ("Filter.1.Value.1", "*-1")]).await;
    // In creation order (AWS promises no order).
    let mut names = r.ok().texts("keyName");
    names.sort();
    assert_eq!(names, vec!["ed-1", "rsa-1"]);
    let r = ctx.call("DescribeKeyPairs", &[("KeyName.1", "imported"), ("IncludePublicKey", "true")]).await;
    assert!(r.ok().text("publicKey").unwrap().starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhj3n9bYpd3b1Zw0hNJV"));
    assert_eq!(r.text("keyType").as_deref(), Some("ed25519"));
    ctx.call("DescribeKeyPairs", &[("KeyName.1", "missing")]).await.err("InvalidKeyPair.NotFound");

    let id = r.text("keyPairId").unwrap();
    ctx.call("DeleteKeyPair", &[("KeyPairId", &id)]).await.ok();
    ctx.call("DeleteKeyPair", &[("KeyName", "rsa-1")]).await.ok();
    ctx.call("DeleteKeyPair", &[("KeyName", "never-existed")]).await.ok();
    let r = ctx.call("DescribeKeyPairs", &[]).await;
    assert_eq!(r.ok().texts("keyName"), vec!["ed-1"]);
}

#[tokio::test]
async fn tags_on_instances_and_images() {
    let ctx = TestContext::new().await;
    let id = ctx.run(1, &[]).await.remove(0);
    let image = ctx.image("corral-minimal");
    ctx.call("CreateTags", &[("ResourceId.1", &id), ("ResourceId.2", &image), ("Tag.1.Key", "env"), ("Tag.1.Value", "dev")]).await.ok();
    let r = ctx.call("DescribeTags", &[("Filter.1.Name", "key"), ("Filter.1.Value.1", "env")]).await;
    let mut types = r.ok().texts("resourceType");
    types.sort();
    assert_eq!(types, vec!["image", "instance"]);
    let r = ctx.call("DescribeImages", &[("Filter.1.Name", "tag:env"), ("Filter.1.Value.1", "dev")]).await;
    assert_eq!(r.ok().texts("imageId"), vec![image.clone()]);
    ctx.call("DeleteTags", &[("ResourceId.1", &id), ("Tag.1.Key", "env"), ("Tag.1.Value", "prod")]).await.ok();
    assert_eq!(ctx.call("DescribeTags", &[]).await.texts("key").len(), 2, "value mismatch deletes nothing");
    ctx.call("DeleteTags", &[("ResourceId.1", &id), ("Tag.1.Key", "env")]).await.ok();
    assert_eq!(ctx.call("DescribeTags", &[]).await.texts("key").len(), 1);
    ctx.call("CreateTags", &[("ResourceId.1", "i-0123456789abcdef0"), ("Tag.1.Key", "a")]).await.err("InvalidInstanceID.NotFound");
    ctx.call("CreateTags", &[("ResourceId.1", &id), ("Tag.1.Key", "aws:x")]).await.err("InvalidParameterValue");
}

#[tokio::test]
async fn static_catalogues() {
    let ctx = TestContext::new().await;
    let r = ctx.call("DescribeInstanceTypes", &[("InstanceType.1", "t3.nano"), ("InstanceType.2", "m5.2xlarge")]).await;
    let mut sizes = r.ok().texts("sizeInMiB");
    sizes.sort();
    assert_eq!(sizes, vec!["32768", "512"]);
    let r = ctx.call("DescribeInstanceTypes", &[("Filter.1.Name", "vcpu-info.default-vcpus"), ("Filter.1.Value.1", "8")]).await;
    let eight = r.ok().texts("instanceType");
    assert!(eight.contains(&"m5.2xlarge".to_string()) && !eight.contains(&"m5.xlarge".to_string()), "{eight:?}");
    assert!(r.texts("defaultVCpus").iter().all(|v| v == "8"));
    // Without MaxResults a page holds 100 types, as on AWS.
    let r = ctx.call("DescribeInstanceTypes", &[]).await;
    assert_eq!(r.ok().texts("instanceType").len(), 100);
    assert!(r.text("nextToken").is_some());
    let r = ctx.call("DescribeImages", &[("Filter.1.Name", "name"), ("Filter.1.Value.1", "corral-*"), ("Owner.1", "self")]).await;
    let mut names = r.ok().texts("name");
    names.sort();
    assert_eq!(names, vec!["corral-debian-12", "corral-minimal"]);
    assert!(r.body.contains("<snapshotId>snap-"), "the root snapshot is listed: {}", r.body);
    let r = ctx.call("DescribeImages", &[("Owner.1", "amazon")]).await;
    assert!(r.ok().texts("imageId").is_empty());
    ctx.call("DescribeImages", &[("ImageId.1", "ami-0123456789abcdef0")]).await.err("InvalidAMIID.NotFound");
    let r = ctx.call("DescribeAccountAttributes", &[]).await;
    assert!(r.ok().texts("attributeName").contains(&"supported-platforms".to_string()));
    let r = ctx.call("DescribeAvailabilityZones", &[("Filter.1.Name", "zone-name"), ("Filter.1.Value.1", "*b")]).await;
    assert_eq!(r.ok().texts("zoneName"), vec!["local-1b"]);
}
