"""SigV4 verification against requests signed by botocore itself."""
from __future__ import annotations

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
