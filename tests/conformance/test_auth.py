"""SigV4 on every request: header and presigned query, and AWS's error for each way to get it
wrong."""

import datetime

import pytest

from support import expect_error, http_get, http_post, raw_request, utcnow, EC2_NAMESPACE


def test_signed_post_and_signed_get_both_work(endpoint):
    for method in ("POST", "GET"):
        resp = raw_request(endpoint, {"Action": "DescribeRegions"}, method=method)
        assert resp.status == 200, (method, resp.body)
        assert resp.xml().tag == f"{{{EC2_NAMESPACE}}}DescribeRegionsResponse"


def test_wrong_secret_is_signature_does_not_match(make_client):
    bad = make_client("ec2", secret_key="not-the-secret-" + "x" * 25)
    with expect_error("SignatureDoesNotMatch", 403):
        bad.describe_regions()


def test_unknown_access_key_is_auth_failure(make_client):
    stranger = make_client("ec2", access_key="AKIAIOSFODNN7EXAMPLE", secret_key="y" * 40)
    with expect_error("AuthFailure", 401):
        stranger.describe_regions()


def test_wrong_secret_is_refused_by_sts_too(make_client):
    bad = make_client("sts", secret_key="not-the-secret-" + "x" * 25)
    with expect_error("SignatureDoesNotMatch", 403):
        bad.get_caller_identity()


def test_body_changed_after_signing_is_signature_does_not_match(endpoint):
    resp = raw_request(
        endpoint,
        {"Action": "DescribeInstances", "InstanceId.1": "i-0123456789abcdef0"},
        send_instead={"Action": "DescribeInstances", "InstanceId.1": "i-0123456789abcdef1"},
    )
    assert resp.error_code() == "SignatureDoesNotMatch", resp.body
    assert resp.status == 403


def test_characters_that_need_encoding_survive_signing(endpoint):
    # SigV4 canonicalisation of spaces, '+', '/', '=', '%', '*', '~' and UTF-8, in both the
    # form body (POST) and the query string (GET).
    value = "a b+c/d=e %20 & * ~ é ✓"
    for method in ("POST", "GET"):
        resp = raw_request(
            endpoint,
            {"Action": "DescribeInstances", "Filter.1.Name": "tag:odd key/é", "Filter.1.Value.1": value},
            method=method,
        )
        assert resp.status == 200, (method, resp.body)


def test_unsigned_request_is_missing_authentication_token(endpoint):
    resp = raw_request(endpoint, {"Action": "DescribeRegions"}, sign=False)
    assert resp.error_code() == "MissingAuthenticationToken", resp.body
    assert resp.status in (401, 403), resp.status


def test_malformed_authorization_header_is_incomplete_signature(endpoint):
    resp = raw_request(
        endpoint,
        {"Action": "DescribeRegions"},
        sign=False,
        extra_headers={"Authorization": "AWS4-HMAC-SHA256 garbage"},
    )
    assert resp.error_code() == "IncompleteSignature", resp.body
    assert resp.status == 400


@pytest.mark.parametrize("skew_minutes", [-20, 20])
def test_clock_skew_beyond_15_minutes_is_request_expired(endpoint, skew_minutes):
    at = utcnow() + datetime.timedelta(minutes=skew_minutes)
    resp = raw_request(endpoint, {"Action": "DescribeRegions"}, at=at)
    assert resp.error_code() == "RequestExpired", resp.body
    assert 400 <= resp.status < 500


def test_clock_skew_within_15_minutes_is_accepted(endpoint):
    resp = raw_request(endpoint, {"Action": "DescribeRegions"}, at=utcnow() - datetime.timedelta(minutes=5))
    assert resp.status == 200, resp.body


def test_presigned_get_url_works(ec2):
    url = ec2.generate_presigned_url("describe_regions", Params={}, ExpiresIn=300, HttpMethod="GET")
    assert "X-Amz-Signature=" in url and "Action=DescribeRegions" in url
    resp = http_get(url)
    assert resp.status == 200, resp.body
    assert resp.xml().tag == f"{{{EC2_NAMESPACE}}}DescribeRegionsResponse"


def test_presigned_url_carries_parameters(ec2):
    url = ec2.generate_presigned_url(
        "describe_instances", Params={"InstanceIds": ["i-0123456789abcdef0"]}, ExpiresIn=300, HttpMethod="GET"
    )
    resp = http_get(url)
    # Authenticated, then refused for what it asks: the signature covered the parameters.
    assert resp.error_code() == "InvalidInstanceID.NotFound", resp.body


def test_presigned_url_signed_for_post_works_with_post(ec2):
    # botocore signs EC2 presigned URLs for the operation's own method (POST) by default.
    url = ec2.generate_presigned_url("describe_regions", Params={}, ExpiresIn=300)
    resp = http_post(url)
    assert resp.status == 200, resp.body


def test_tampered_presigned_url_is_refused(ec2):
    url = ec2.generate_presigned_url("describe_regions", Params={}, ExpiresIn=300, HttpMethod="GET")
    tampered = url.replace("Action=DescribeRegions", "Action=DescribeAvailabilityZones")
    resp = http_get(tampered)
    assert resp.error_code() == "SignatureDoesNotMatch", resp.body
    assert resp.status == 403


def test_expired_presigned_url_is_refused(ec2, monkeypatch):
    import botocore.auth

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: utcnow() - datetime.timedelta(minutes=10))
    url = ec2.generate_presigned_url("describe_regions", Params={}, ExpiresIn=60, HttpMethod="GET")
    monkeypatch.undo()
    resp = http_get(url)
    assert 400 <= resp.status < 500, resp.body
    assert resp.error_code() in ("RequestExpired", "AuthFailure"), resp.body
