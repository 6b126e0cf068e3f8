"""The MWAA API through the real, unmodified boto3 `mwaa` client.

Covers every operation, the paginator, roles and the error cases as ClientErrors
with the right codes, and runs a DAG through InvokeRestApi."""
from __future__ import annotations

import base64
import json

import httpx
import pytest
from botocore.exceptions import ClientError

from hangar.runtime.venvs import READY_MARKER
from tests.e2e.conftest import MWAA_NETWORK, MWAA_ROLE
from tests.e2e.harness import ADDED_REQUIREMENT, ControlPlane, shared_runtimes_dir, wait_for
from tests.e2e.mwaa_client import dumps, error_code, mwaa, signed

ROLE = MWAA_ROLE
NETWORK = MWAA_NETWORK


@pytest.fixture
def keys(mwaa_keys) -> dict[str, dict]:
    return mwaa_keys


@pytest.fixture
def bucket(mwaa_bucket) -> str:
    return mwaa_bucket


@pytest.fixture
def available(mwaa_env) -> str:
    """mwaa1: mw1.small, MaxWorkers 2, TUE:03:30, tag team=data, core.default_task_retries 1 (conftest)."""
    return mwaa_env


def test_get_environment_fills_every_field_truthfully(plane, keys, available, bucket) -> None:
    env = mwaa(plane.url, keys["Viewer"]).get_environment(Name=available)["Environment"]
    assert env["Status"] == "AVAILABLE"
    assert env["Name"] == available and env["Arn"] == f"arn:aws:airflow:local:000000000000:environment/{available}"
    assert env["AirflowVersion"] == "3.3.2" and env["EnvironmentClass"] == "mw1.small"
    assert env["MaxWorkers"] == 2 and env["MinWorkers"] == 1 and env["Schedulers"] == 2
    assert env["SourceBucketArn"] == f"arn:aws:s3:::{bucket}" and env["DagS3Path"] == "dags"
    assert env["ExecutionRoleArn"] == ROLE and env["NetworkConfiguration"] == NETWORK
    assert env["WeeklyMaintenanceWindowStart"] == "TUE:03:30"
    assert env["Tags"] == {"team": "data"}
    assert env["AirflowConfigurationOptions"] == {"core.default_task_retries": "1"}
    assert env["LoggingConfiguration"]["TaskLogs"] == {"Enabled": True, "LogLevel": "WARNING"}
    assert env["WebserverAccessMode"] == "PRIVATE_ONLY"
    assert env["LastUpdate"]["Status"] == "SUCCESS"
    assert env["WebserverUrl"].startswith("127.0.0.1:")
    assert httpx.get(f"http://{env['WebserverUrl']}/api/v2/monitor/health", timeout=10).status_code == 200


def test_dag_runs_through_invoke_rest_api(plane, keys, available) -> None:
    client = mwaa(plane.url, keys["User"])
    wait_for(lambda: _dag_visible(client, available), timeout=180, what="the DAG to be parsed")
    client.invoke_rest_api(Name=available, Path="/dags/hello_taskflow", Method="PATCH", Body={"is_paused": False})
    run = client.invoke_rest_api(Name=available, Path="/dags/hello_taskflow/dagRuns", Method="POST",
                                 Body={"logical_date": None})
    assert run["RestApiStatusCode"] == 200
    run_id = run["RestApiResponse"]["dag_run_id"]
    # MWAA limits Path to 64 characters, so the run is found in the list rather than by its long id
    def state() -> str | None:
        runs = client.invoke_rest_api(Name=available, Path="/dags/hello_taskflow/dagRuns", Method="GET")
        found = [r["state"] for r in runs["RestApiResponse"]["dag_runs"] if r["dag_run_id"] == run_id]
        return found[0] if found and found[0] in ("success", "failed") else None

    final = wait_for(state, timeout=300, interval=2, what="the run to finish")
    assert final == "success"


def _dag_visible(client, name: str) -> bool:
    try:
        client.invoke_rest_api(Name=name, Path="/dags/hello_taskflow", Method="GET")
        return True
    except ClientError:
        return False


def test_invoke_rest_api_errors(plane, keys, available) -> None:
    client = mwaa(plane.url, keys["User"])
    with pytest.raises(ClientError) as missing:
        client.invoke_rest_api(Name=available, Path="/dags/no_such_dag", Method="GET")
    assert missing.value.response["Error"]["Code"] == "RestApiClientException"
    assert missing.value.response["RestApiStatusCode"] == 404
    for path in ("dags", "/dags/../config", "/dags?limit=1", "//dags"):
        with pytest.raises(ClientError) as bad:
            client.invoke_rest_api(Name=available, Path=path, Method="GET")
        assert bad.value.response["Error"]["Code"] == "ValidationException", path


def test_cli_token_runs_dags_list(plane, keys, available) -> None:
    token = mwaa(plane.url, keys["User"]).create_cli_token(Name=available)
    url = f"http://{token['WebServerHostname']}/aws_mwaa/cli"
    response = httpx.post(url, content="dags list", headers={"Authorization": f"Bearer {token['CliToken']}",
                                                             "Content-Type": "text/plain"}, timeout=120)
    assert response.status_code == 200, response.text
    assert "hello_taskflow" in base64.b64decode(response.json()["stdout"]).decode()
    refused = httpx.post(url, content="db reset -y", headers={"Authorization": f"Bearer {token['CliToken']}",
                                                              "Content-Type": "text/plain"}, timeout=60)
    assert refused.status_code == 400
    # a CLI token is not an API token, and a forged one is refused
    assert httpx.get(f"http://{token['WebServerHostname']}/api/v2/dags",
                     headers={"Authorization": f"Bearer {token['CliToken']}"}, timeout=30).status_code in (401, 403)
    forged = token["CliToken"][:-4] + ("AAAA" if not token["CliToken"].endswith("AAAA") else "BBBB")
    assert httpx.post(url, content="dags list", headers={"Authorization": f"Bearer {forged}"},
                      timeout=30).status_code in (401, 403)


def test_web_login_token_shape(plane, keys, available) -> None:
    token = mwaa(plane.url, keys["User"]).create_web_login_token(Name=available)
    assert token["WebToken"] and token["WebServerHostname"].startswith("127.0.0.1:")
    with pytest.raises(ClientError) as denied:
        mwaa(plane.url, keys["Viewer"]).create_web_login_token(Name=available)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"


def test_tags_by_arn(plane, keys, available) -> None:
    op = mwaa(plane.url, keys["Op"])
    arn = op.get_environment(Name=available)["Environment"]["Arn"]
    pids = _pids(plane, available)
    op.tag_resource(ResourceArn=arn, Tags={"cost-center": "42", "owner": "me"})
    assert op.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "data", "cost-center": "42", "owner": "me"}
    op.untag_resource(ResourceArn=arn, tagKeys=["owner", "team"])
    assert op.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"cost-center": "42"}
    assert _pids(plane, available) == pids  # tags restart nothing
    unchecked = mwaa(plane.url, keys["Op"], validate=False)
    with pytest.raises(ClientError) as too_many:
        unchecked.tag_resource(ResourceArn=arn, Tags={f"k{i}": "v" for i in range(51)})
    assert too_many.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as long_key:
        unchecked.tag_resource(ResourceArn=arn, Tags={"k" * 129: "v"})
    assert long_key.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as gone:
        op.list_tags_for_resource(ResourceArn=arn.replace(available, "nothere"))
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"


def _pids(plane: ControlPlane, name: str) -> dict:
    return {c["name"]: c["pid"] for c in plane.get(name)["components"]}


def test_role_matrix(plane, keys, available, bucket) -> None:
    viewer, user, op, admin = (mwaa(plane.url, keys[r]) for r in ("Viewer", "User", "Op", "Admin"))
    assert viewer.get_environment(Name=available)["Environment"]["Name"] == available
    assert available in viewer.list_environments()["Environments"]
    for client, call in [(viewer, lambda c: c.update_environment(Name=available, MaxWorkers=3)),
                         (user, lambda c: c.update_environment(Name=available, MaxWorkers=3)),
                         (viewer, lambda c: c.create_cli_token(Name=available)),
                         (op, lambda c: c.delete_environment(Name=available)),
                         (op, lambda c: c.create_environment(Name="nope", ExecutionRoleArn=ROLE,
                                                              SourceBucketArn=f"arn:aws:s3:::{bucket}",
                                                              DagS3Path="dags", NetworkConfiguration=NETWORK))]:
        with pytest.raises(ClientError) as denied:
            call(client)
        assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    # Op may update; the update is applied and the environment settles AVAILABLE again
    op.update_environment(Name=available, MaxWorkers=3)
    env = wait_for(lambda: (e := op.get_environment(Name=available)["Environment"])["Status"] == "AVAILABLE" and e,
                   timeout=600, interval=1, what="the update to finish")
    assert env["MaxWorkers"] == 3 and env["LastUpdate"]["Status"] == "SUCCESS"
    audit = json.loads(plane.cli("audit", "--json").stdout)
    actions = {(a["principal"], a["action"], a["outcome"]) for a in audit}
    assert (keys["Op"]["access_key_id"], "UpdateEnvironment", "success") in actions
    assert (keys["Viewer"]["access_key_id"], "UpdateEnvironment", "AccessDeniedException") in actions


def test_paginator_and_list_limits(plane, keys, bucket) -> None:
    admin = mwaa(plane.url, keys["Admin"])
    for i in range(3):  # a version that does not exist fails fast but still lists
        admin.create_environment(Name=f"page{i}", ExecutionRoleArn=ROLE, SourceBucketArn=f"arn:aws:s3:::{bucket}",
                                 DagS3Path="dags", NetworkConfiguration=NETWORK, AirflowVersion="3.3.99")
    pages = list(admin.get_paginator("list_environments").paginate(PaginationConfig={"PageSize": 1}))
    names = [n for page in pages for n in page["Environments"]]
    assert {"page0", "page1", "page2"} <= set(names) and len(names) == len(set(names))
    assert all(len(page["Environments"]) == 1 for page in pages)
    with pytest.raises(ClientError) as bad:
        mwaa(plane.url, keys["Admin"], validate=False).list_environments(MaxResults=26)
    assert bad.value.response["Error"]["Code"] == "ValidationException"
    failed = wait_for(lambda: (e := admin.get_environment(Name="page0")["Environment"])["Status"] == "CREATE_FAILED" and e,
                      timeout=300, interval=1, what="page0 to fail")
    assert failed["LastUpdate"]["Status"] == "FAILED"
    assert failed["LastUpdate"]["Error"]["ErrorCode"] == "AIRFLOW_VERSION_NOT_FOUND"
    for i in range(3):
        admin.delete_environment(Name=f"page{i}")
    wait_for(lambda: not {"page0", "page1", "page2"} & set(admin.list_environments()["Environments"]),
             timeout=120, what="page0-2 to be deleted")


def test_error_cases_are_client_errors_with_aws_codes(plane, keys, available, bucket) -> None:
    admin = mwaa(plane.url, keys["Admin"])
    unchecked = mwaa(plane.url, keys["Admin"], validate=False)
    cases = [
        (lambda: admin.get_environment(Name="missing"), "ResourceNotFoundException"),
        (lambda: admin.update_environment(Name="missing", MaxWorkers=2), "ResourceNotFoundException"),
        (lambda: admin.delete_environment(Name="missing"), "ResourceNotFoundException"),
        (lambda: admin.create_environment(Name=available, ExecutionRoleArn=ROLE, SourceBucketArn=f"arn:aws:s3:::{bucket}",
                                          DagS3Path="dags", NetworkConfiguration=NETWORK), "ValidationException"),
        (lambda: unchecked.create_environment(Name="1bad", ExecutionRoleArn=ROLE, SourceBucketArn=f"arn:aws:s3:::{bucket}",
                                              DagS3Path="dags", NetworkConfiguration=NETWORK), "ValidationException"),
        (lambda: unchecked.update_environment(Name=available, MaxWorkers=0), "ValidationException"),
        (lambda: unchecked.update_environment(Name=available, Schedulers=9), "ValidationException"),
        (lambda: unchecked.update_environment(Name=available, WeeklyMaintenanceWindowStart="XYZ:99:99"), "ValidationException"),
        (lambda: unchecked.update_environment(Name=available, AirflowConfigurationOptions={"Bad Key": "x"}), "ValidationException"),
        (lambda: unchecked.update_environment(Name=available, EnvironmentClass="mw9.huge"), "ValidationException"),
        (lambda: unchecked.create_environment(Name="badrole", ExecutionRoleArn="not-an-arn",
                                              SourceBucketArn=f"arn:aws:s3:::{bucket}", DagS3Path="dags",
                                              NetworkConfiguration=NETWORK), "ValidationException"),
    ]
    for call, code in cases:
        with pytest.raises(ClientError) as error:
            call()
        assert error.value.response["Error"]["Code"] == code, error.value.response
        assert error.value.response["Error"]["Message"]


def test_raw_requests_malformed_json_unknown_fields_and_bad_signatures(plane, keys, available) -> None:
    admin = keys["Admin"]
    malformed = signed(plane.url, admin, "PATCH", f"/environments/{available}", b"{not json")
    assert malformed.status_code == 400 and error_code(malformed) == "ValidationException"
    unknown = signed(plane.url, admin, "PATCH", f"/environments/{available}", dumps({"MaxWorkers": 2, "Colour": "red"}))
    assert unknown.status_code == 400 and error_code(unknown) == "ValidationException"
    assert "Colour" in unknown.json()["message"]
    wrong_secret = {**admin, "secret_access_key": "x" * 40}
    forged = signed(plane.url, wrong_secret, "GET", f"/environments/{available}")
    assert forged.status_code == 403 and error_code(forged) == "AccessDeniedException"
    unknown_key = {"access_key_id": "HKIAUNKNOWN000000000", "secret_access_key": "y" * 40}
    assert error_code(signed(plane.url, unknown_key, "GET", "/environments")) == "AccessDeniedException"
    unsigned = httpx.get(f"{plane.url}/environments", timeout=10)
    assert unsigned.status_code == 403 and error_code(unsigned) == "AccessDeniedException"
    # a signature over one body does not cover another
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = dumps({"MaxWorkers": 2})
    request = AWSRequest(method="PATCH", url=f"{plane.url}/environments/{available}", data=body,
                         headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(admin["access_key_id"], admin["secret_access_key"]), "airflow", "us-east-1").add_auth(request)
    tampered = httpx.patch(f"{plane.url}/environments/{available}", content=dumps({"MaxWorkers": 3}),
                           headers=dict(request.headers.items()), timeout=30)
    assert tampered.status_code == 403 and error_code(tampered) == "AccessDeniedException"


def test_expired_cli_and_web_tokens_are_refused(plane, keys, available) -> None:
    import jwt

    client = mwaa(plane.url, keys["User"])
    secret = plane.secrets(available)["jwt_secret"]
    for purpose, get in (("cli", client.create_cli_token), ("web", client.create_web_login_token)):
        issued = get(Name=available)
        token = issued["CliToken"] if purpose == "cli" else issued["WebToken"]
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
        claims["exp"], claims["nbf"], claims["iat"] = claims["exp"] - 3600, claims["nbf"] - 3600, claims["iat"] - 3600
        expired = jwt.encode(claims, secret, algorithm=header["alg"])
        host = issued["WebServerHostname"]
        if purpose == "cli":
            response = httpx.post(f"http://{host}/aws_mwaa/cli", content="dags list",
                                  headers={"Authorization": f"Bearer {expired}"}, timeout=30)
        else:
            response = httpx.post(f"http://{host}/aws_mwaa/aws-console-sso/login", data={"token": expired},
                                  timeout=30, follow_redirects=False)
        assert response.status_code == 401, (purpose, response.status_code, response.text[:300])
        assert "_token" not in response.cookies


def test_requirements_object_version_is_pinned_while_the_bucket_changes(plane, keys, bucket, tmp_path) -> None:
    first = tmp_path / "requirements.txt"
    first.write_text(f"{ADDED_REQUIREMENT}\n")  # the runtime test_safe_changes adds too: built once
    package, version = ADDED_REQUIREMENT.split("==")
    plane.cli("bucket", "cp", str(first), f"s3://{bucket}/requirements.txt")
    versions = json.loads(plane.cli("bucket", "ls", f"s3://{bucket}/requirements.txt", "--versions", "--json").stdout)
    admin = mwaa(plane.url, keys["Admin"])
    admin.create_environment(Name="pinned", ExecutionRoleArn=ROLE, SourceBucketArn=f"arn:aws:s3:::{bucket}",
                             DagS3Path="dags", RequirementsS3Path="requirements.txt", NetworkConfiguration=NETWORK)
    env = wait_for(lambda: (e := admin.get_environment(Name="pinned")["Environment"])["Status"] != "CREATING" and e,
                   timeout=600, interval=1, what="pinned to settle")
    assert env["Status"] == "AVAILABLE", env.get("LastUpdate")
    pinned = env["RequirementsS3ObjectVersion"]
    assert pinned in json.dumps(versions)
    # the bucket moves on; the environment keeps the version it was created with
    first.write_text(f"{package}==0.5.0\n")
    plane.cli("bucket", "cp", str(first), f"s3://{bucket}/requirements.txt")
    again = admin.get_environment(Name="pinned")["Environment"]
    assert again["RequirementsS3ObjectVersion"] == pinned
    rest = mwaa(plane.url, keys["User"]).invoke_rest_api(Name="pinned", Path="/version", Method="GET")
    assert rest["RestApiStatusCode"] == 200
    # an Airflow 3 runtime with it (Airflow 2's runtimes have inflection of their own)
    found = shared_runtimes_dir().glob(f"*/lib/python3.11/site-packages/{package}-{version}.dist-info")
    assert any((p.parents[3] / READY_MARKER).read_text() == env["AirflowVersion"] for p in found), env["AirflowVersion"]
    admin.delete_environment(Name="pinned")
    wait_for(lambda: "pinned" not in admin.list_environments()["Environments"], timeout=300,
             what="pinned to be deleted")
