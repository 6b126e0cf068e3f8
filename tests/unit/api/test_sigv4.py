"""SigV4 verification against requests signed by botocore itself."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from hangar.api.mwaa.sigv4 import verify
from hangar.domain.access import Role, create_access_key, revoke_access_key
from hangar.errors import Unauthorized

URL = "http://127.0.0.1:8765/tags/arn%3Aaws%3Aairflow%3Alocal%3A000000000000%3Aenvironment%2Fx?tagKeys=a&tagKeys=b"


def signed(key_id: str, secret: str, *, body: bytes = b"", url: str = URL, service: str = "airflow") -> dict[str, str]:
    request = AWSRequest(method="DELETE", url=url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(key_id, secret), service, "us-east-1").add_auth(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = "127.0.0.1:8765"
    return headers


def test_a_botocore_signature_verifies_and_names_the_caller(ctx) -> None:
    key = create_access_key(ctx, role=Role.Op)
    principal = verify(ctx, method="DELETE", url=URL, headers=signed(key.access_key_id, key.secret_access_key), body=b"")
    assert principal.id == key.access_key_id and principal.role == Role.Op


@pytest.mark.parametrize("case", ["wrong secret", "other body", "other path", "other service", "unknown key",
                                  "revoked", "no header", "stale"])
def test_bad_signatures_are_refused(ctx, case: str) -> None:
    key = create_access_key(ctx, role=Role.Admin)
    headers = signed(key.access_key_id, key.secret_access_key, body=b"{}")
    body, url, now = b"{}", URL, None
    if case == "wrong secret":
        headers = signed(key.access_key_id, "x" * 40, body=b"{}")
    elif case == "other body":
        body = b'{"a": 1}'
    elif case == "other path":
        url = URL.replace("environment%2Fx", "environment%2Fy")
    elif case == "other service":
        headers = signed(key.access_key_id, key.secret_access_key, body=b"{}", service="s3")
    elif case == "unknown key":
        headers = signed("HKIAUNKNOWN000000000", key.secret_access_key, body=b"{}")
    elif case == "revoked":
        revoke_access_key(ctx, access_key_id=key.access_key_id)
    elif case == "no header":
        headers.pop("authorization")
    elif case == "stale":
        now = datetime.now(timezone.utc) + timedelta(minutes=16)
    with pytest.raises(Unauthorized):
        verify(ctx, method="DELETE", url=url, headers=headers, body=body, now=now)


def _signed_with_payload_header(key_id: str, secret: str, *, body: bytes, payload_hash: str) -> dict[str, str]:
    request = AWSRequest(method="DELETE", url=URL, data=body,
                         headers={"Content-Type": "application/json", "X-Amz-Content-SHA256": payload_hash})
    SigV4Auth(Credentials(key_id, secret), "airflow", "us-east-1").add_auth(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = "127.0.0.1:8765"
    return headers


def test_a_body_swapped_under_an_unsigned_payload_signature_is_refused(ctx) -> None:
    key = create_access_key(ctx, role=Role.Admin)
    headers = _signed_with_payload_header(key.access_key_id, key.secret_access_key, body=b'{"tags": {"a": "1"}}',
                                          payload_hash="UNSIGNED-PAYLOAD")
    with pytest.raises(Unauthorized, match="unsigned payloads are not accepted"):
        verify(ctx, method="DELETE", url=URL, headers=headers, body=b'{"tags": {"owner": "mallory"}}')


def test_a_payload_hash_header_that_is_not_the_bodys_is_refused(ctx) -> None:
    key = create_access_key(ctx, role=Role.Admin)
    original = b'{"tags": {"a": "1"}}'
    headers = _signed_with_payload_header(key.access_key_id, key.secret_access_key, body=original,
                                          payload_hash=hashlib.sha256(original).hexdigest())
    assert verify(ctx, method="DELETE", url=URL, headers=headers, body=original).id == key.access_key_id
    with pytest.raises(Unauthorized, match="is not the SHA-256 of the body"):
        verify(ctx, method="DELETE", url=URL, headers=headers, body=b'{"tags": {"owner": "mallory"}}')
