"""DescribeImages: filters (image-id, name with wildcards, owner-id), Owners, and errors."""

from support import UNKNOWN_AMI_ID, expect_error


def ids(response):
    return {i["ImageId"] for i in response["Images"]}


def test_describe_by_image_id(ec2, image):
    found = ec2.describe_images(ImageIds=[image["ImageId"]])["Images"]
    assert [i["ImageId"] for i in found] == [image["ImageId"]]
    assert found[0]["Name"] == image["Name"]
    by_filter = ec2.describe_images(Filters=[{"Name": "image-id", "Values": [image["ImageId"]]}])
    assert ids(by_filter) == {image["ImageId"]}


def test_name_filter_wildcards(ec2, image):
    name = image["Name"]
    assert image["ImageId"] in ids(ec2.describe_images(Filters=[{"Name": "name", "Values": [name]}]))
    assert image["ImageId"] in ids(ec2.describe_images(Filters=[{"Name": "name", "Values": [name[:3] + "*"]}]))
    assert image["ImageId"] in ids(ec2.describe_images(Filters=[{"Name": "name", "Values": [name[:-1] + "?"]}]))
    assert image["ImageId"] in ids(ec2.describe_images(Filters=[{"Name": "name", "Values": ["*" + name[-3:]]}]))
    # An exact name is exact: a prefix alone does not match.
    assert image["ImageId"] not in ids(ec2.describe_images(Filters=[{"Name": "name", "Values": [name[:-1]]}]))
    nothing = ec2.describe_images(Filters=[{"Name": "name", "Values": ["no-such-image-*-conformance"]}])
    assert nothing["Images"] == []


def test_owner_filters(ec2, image, account_id):
    owner = image["OwnerId"]
    assert image["ImageId"] in ids(ec2.describe_images(Filters=[{"Name": "owner-id", "Values": [owner]}]))
    assert image["ImageId"] in ids(ec2.describe_images(Owners=[owner]))
    other = "000000000000" if owner != "000000000000" else "111111111111"
    assert image["ImageId"] not in ids(ec2.describe_images(Filters=[{"Name": "owner-id", "Values": [other]}]))
    mine = ids(ec2.describe_images(Owners=["self"]))
    assert (image["ImageId"] in mine) == (owner == account_id)
    for img in ec2.describe_images(Owners=["self"])["Images"]:
        assert img["OwnerId"] == account_id


def test_owner_aliases_are_accepted(ec2):
    # Scripts ask for Amazon's images by alias; an endpoint without any answers an empty list.
    assert isinstance(ec2.describe_images(Owners=["amazon"])["Images"], list)


def test_filters_combine_with_and(ec2, image):
    both = ec2.describe_images(Filters=[
        {"Name": "name", "Values": [image["Name"]]},
        {"Name": "image-id", "Values": [image["ImageId"]]},
    ])
    assert ids(both) == {image["ImageId"]}
    contradiction = ec2.describe_images(Filters=[
        {"Name": "name", "Values": [image["Name"]]},
        {"Name": "image-id", "Values": [UNKNOWN_AMI_ID]},
    ])
    assert contradiction["Images"] == []


def test_image_errors(ec2):
    with expect_error("InvalidAMIID.NotFound"):
        ec2.describe_images(ImageIds=[UNKNOWN_AMI_ID])
    with expect_error("InvalidAMIID.Malformed"):
        ec2.describe_images(ImageIds=["ami-xyz"])
    with expect_error("InvalidParameterValue"):
        ec2.describe_images(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
