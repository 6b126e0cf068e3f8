"""AWS Signature Version 4 verification with botocore's own signer.

The expected signature is recomputed by botocore's SigV4Auth over the request
exactly as the client sent it (raw path, raw query, the headers it signed, the
body), with the secret of the access key named in the credential scope. No part
of SigV4 is written by hand here: only the parsing of the Authorization header.

botocore takes the payload hash from X-Amz-Content-SHA256 when the header is there, so
the header is checked against the body first: a signature over "UNSIGNED-PAYLOAD", or
over another body's hash, would otherwise let a body be swapped under it.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta, timezone

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from hangar.context import Context
from hangar.domain.access import Principal, access_key_secret
from hangar.errors import Unauthorized

SERVICE = "airflow"  # MWAA's signing name in botocore's model
MAX_SKEW = timedelta(minutes=15)
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request,\s*"
    r"SignedHeaders=(?P<headers>[a-z0-9;\-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$"
)


def precheck(ctx: Context, headers: dict[str, str]) -> None:
    """What can be checked before the body is read: a well-formed header naming a live access key."""
    match = _AUTH.match(headers.get("authorization", ""))
    if not match:
        raise Unauthorized("missing or malformed AWS Signature Version 4 Authorization header")
    access_key_secret(ctx, access_key_id=match["key"])


def verify(
    ctx: Context, *, method: str, url: str, headers: dict[str, str], body: bytes, now: datetime | None = None
) -> Principal:
    """Return the caller if the request carries a valid signature; raise Unauthorized otherwise.

    `url` is scheme://host + the raw path and query as sent; `headers` are lower-cased."""
    authorization = headers.get("authorization", "")
    match = _AUTH.match(authorization)
    if not match:
        raise Unauthorized("missing or malformed AWS Signature Version 4 Authorization header")
    if match["service"] != SERVICE:
        raise Unauthorized(f"the request was signed for service {match['service']!r}, not {SERVICE!r}")
    stamp = headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise Unauthorized("missing or malformed X-Amz-Date header") from None
    if stamp[:8] != match["date"]:
        raise Unauthorized("X-Amz-Date does not match the date in the credential scope")
    now = now or datetime.now(timezone.utc)
    if abs(now - signed_at) > MAX_SKEW:
        raise Unauthorized(f"the signature expired: signed at {stamp}, more than 15 minutes from now")
    _check_payload_hash(headers.get("x-amz-content-sha256"), body)
    secret, role = access_key_secret(ctx, access_key_id=match["key"])

    signed = match["headers"].split(";")
    missing = [name for name in signed if name not in headers]
    if missing or "host" not in signed:
        raise Unauthorized(f"signed headers missing from the request: {', '.join(missing) or 'host'}")
    request = AWSRequest(method=method, url=url, data=body, headers={name: headers[name] for name in signed})
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(match["key"], secret), SERVICE, match["region"])
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise Unauthorized("the request signature we calculated does not match the signature you provided")
    return Principal(id=match["key"], role=role)


def _check_payload_hash(claimed: str | None, body: bytes) -> None:
    """The payload hash the client signed must be the body's own (absent: botocore hashes the body)."""
    if claimed is None or hmac.compare_digest(claimed, hashlib.sha256(body).hexdigest()):
        return
    if claimed == "UNSIGNED-PAYLOAD" or claimed.startswith("STREAMING-"):
        raise Unauthorized("unsigned payloads are not accepted: X-Amz-Content-SHA256 must be the SHA-256 of the body")
    raise Unauthorized("X-Amz-Content-SHA256 is not the SHA-256 of the body")
