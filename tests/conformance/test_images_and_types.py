"""Image deprecation, instance type offerings and UEFI data: calls Terraform's aws_ami,
aws_instance and the instance type data sources make."""

import datetime

from support import expect_error, instance_ids


def test_image_deprecation(ec2, launch, wait, run_id):
    iid = instance_ids(launch())[0]
    wait("instance_running", [iid])
    ami = ec2.create_image(InstanceId=iid, Name=f"deprecating-{run_id}", NoReboot=True)["ImageId"]
    try:
        when = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)).replace(microsecond=0)
        assert ec2.enable_image_deprecation(ImageId=ami, DeprecateAt=when)["Return"] is True
        img = ec2.describe_images(ImageIds=[ami])["Images"][0]
        assert img["DeprecationTime"].startswith(when.strftime("%Y-%m-%dT%H:%M:%S"))
        with expect_error("InvalidParameterValue"):
            ec2.enable_image_deprecation(ImageId=ami, DeprecateAt=when - datetime.timedelta(days=60))
        with expect_error("DryRunOperation", 412):
            ec2.disable_image_deprecation(ImageId=ami, DryRun=True)
        assert ec2.disable_image_deprecation(ImageId=ami)["Return"] is True
        assert "DeprecationTime" not in ec2.describe_images(ImageIds=[ami])["Images"][0]
        with expect_error("InvalidAMIID.NotFound"):
            ec2.disable_image_deprecation(ImageId="ami-0123456789abcdef0")
        with expect_error("InvalidAMIID.Malformed"):
            ec2.enable_image_deprecation(ImageId="ami-zz", DeprecateAt=when)
    finally:
        ec2.deregister_image(ImageId=ami, DeleteAssociatedSnapshots=True)


def test_instance_type_offerings(ec2, zones, endpoint):
    region = ec2.describe_instance_type_offerings(Filters=[{"Name": "instance-type", "Values": ["t3.micro"]}])
    assert region["InstanceTypeOfferings"] == [{"InstanceType": "t3.micro", "LocationType": "region", "Location": endpoint.region}]
    by_zone = ec2.describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["t3.micro"]}])["InstanceTypeOfferings"]
    assert sorted(o["Location"] for o in by_zone) == sorted(zones)
    ids = ec2.describe_instance_type_offerings(
        LocationType="availability-zone-id", Filters=[{"Name": "location", "Values": [f"*-az1"]},
                                                      {"Name": "instance-type", "Values": ["m5.large"]}])["InstanceTypeOfferings"]
    assert len(ids) == 1 and ids[0]["Location"].endswith("-az1")
    page = ec2.describe_instance_type_offerings(MaxResults=5)
    assert len(page["InstanceTypeOfferings"]) == 5 and page.get("NextToken")
    with expect_error("InvalidParameterValue"):
        ec2.describe_instance_type_offerings(LocationType="planet")
    with expect_error("DryRunOperation", 412):
        ec2.describe_instance_type_offerings(DryRun=True)


def test_uefi_data(ec2, launch):
    iid = instance_ids(launch())[0]
    out = ec2.get_instance_uefi_data(InstanceId=iid)
    assert out["InstanceId"] == iid and out.get("UefiData", "") == ""
    with expect_error("InvalidInstanceID.NotFound"):
        ec2.get_instance_uefi_data(InstanceId="i-0123456789abcdef0")
