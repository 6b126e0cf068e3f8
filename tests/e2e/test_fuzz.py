"""A bounded schemathesis run over the native and MWAA APIs of a control plane with no Airflow
environment: no response may be a server error.

Cases come from the API's own OpenAPI document. Native calls carry the admin key; MWAA calls
are signed with an Admin access key by botocore's signer, so the fuzzed bodies get past
authentication. Creates are left out (a valid one would build an Airflow environment); every
other route is called with what the schema allows and what it does not."""
from __future__ import annotations

import os
import shutil
from collections import Counter

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode

from tests.e2e.conftest import private_folder
from tests.e2e.harness import ControlPlane, free_port
from tests.e2e.mwaa_client import REGION

# examples per operation, half of them outside the schema: 53 operations, so about 1,000 cases
EXAMPLES = int(os.environ.get("HANGAR_FUZZ_EXAMPLES", "20"))
CREATES = {("POST", "/api/v1/environments"), ("PUT", "/environments/{Name}")}


@pytest.fixture(scope="module")
def empty_plane() -> ControlPlane:
    home = private_folder("hangar-fuzz-")
    control = ControlPlane(home=home, port=free_port(), env_port_start=26000 + (os.getpid() % 30) * 100)
    control.start()
    yield control
    control.cleanup()
    shutil.rmtree(home, ignore_errors=True)


def test_no_fuzzed_request_gets_a_server_error(empty_plane: ControlPlane) -> None:
    plane = empty_plane
    admin = {"Authorization": f"Bearer {plane.key}"}
    created = plane.api("POST", "/api/v1/access-keys", json={"role": "Admin"})
    assert created.status_code == 201, created.text
    key = created.json()
    signer = SigV4Auth(Credentials(key["access_key_id"], key["secret_access_key"]), "airflow", REGION)
    schema = schemathesis.openapi.from_url(f"{plane.url}/api/v1/openapi.json", headers=admin,
                                           config=SchemathesisConfig())
    session = requests.Session()
    cases, server_errors, statuses = 0, [], Counter()

    def send(case) -> requests.Response:
        prepared = requests.Request(**case.as_transport_kwargs(base_url=plane.url)).prepare()
        if case.path.startswith("/api/v1"):
            prepared.headers.update(admin)
        else:  # MWAA: signed over the exact bytes sent
            signed = AWSRequest(method=prepared.method, url=prepared.url, data=prepared.body or b"",
                                headers={k: v for k, v in prepared.headers.items() if k.lower() == "content-type"})
            signer.add_auth(signed)
            prepared.headers.update(dict(signed.headers.items()))
        return session.send(prepared, timeout=30)

    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        if (operation.method.upper(), operation.path) in CREATES:
            continue

        strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
        try:  # what the schema does not allow, too (an operation with nothing to break has none)
            strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
        except Exception:
            pass

        @given(case=st.one_of(strategies))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def call(case) -> None:
            nonlocal cases
            response = send(case)
            cases += 1
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                server_errors.append(f"{operation.method.upper()} {operation.path}: {response.status_code} "
                                     f"{response.text[:200]} for {case.as_curl_command()[:300]}")

        call()
    print(f"schemathesis: {cases} cases over {len(operations) - len(CREATES)} operations, "
          f"{len(server_errors)} server errors; statuses {dict(sorted(statuses.items()))}")
    assert cases > 0
    assert server_errors == []
    assert plane.api("GET", "/health").status_code == 200
