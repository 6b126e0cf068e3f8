"""The real boto3 `mwaa` client pointed at a Hangar control plane, plus a raw signed
request helper for inputs boto3 itself refuses to send (malformed JSON, unknown
fields). Signing uses botocore's own SigV4Auth, as any AWS SDK would."""
from __future__ import annotations

import json

import boto3
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

REGION = "us-east-1"


def mwaa(url: str, key: dict, *, validate: bool = True):
    # MWAA's model prefixes hosts with api. and env.; scripts turn that off for a local endpoint
    # with AWS_DISABLE_HOST_PREFIX_INJECTION=true (set by the fixtures), not with code changes
    config = Config(parameter_validation=validate, retries={"max_attempts": 1})
    return boto3.client("mwaa", endpoint_url=url, region_name=REGION, aws_access_key_id=key["access_key_id"],
                        aws_secret_access_key=key["secret_access_key"], config=config)


def signed(url: str, key: dict, method: str, path: str, body: bytes = b"", content_type: str = "application/json") -> httpx.Response:
    request = AWSRequest(method=method, url=f"{url}{path}", data=body, headers={"Content-Type": content_type})
    SigV4Auth(Credentials(key["access_key_id"], key["secret_access_key"]), "airflow", REGION).add_auth(request)
    return httpx.request(method, f"{url}{path}", content=body, headers=dict(request.headers.items()), timeout=30)


def error_code(response: httpx.Response) -> str:
    return response.headers.get("x-amzn-ErrorType", "").split(":")[0]


def dumps(value) -> bytes:
    return json.dumps(value).encode()
