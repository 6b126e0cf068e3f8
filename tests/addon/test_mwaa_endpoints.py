"""Pure parts of the MWAA-compatible add-on routes: no Airflow needed.

Token purposes (``tokens``), the CLI allow-list / role mapping (``cli_allowlist``), its runner (``cli_commands``)
and the framework-free request handling of ``mwaa`` (CLI auth, SSO page and form).
The Airflow-facing glue is verified against real Airflow 2 and 3 web servers by hand.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import os
import re
import sys
import time
import uuid
from pathlib import Path

import jwt
import pytest

from hangar.runtime.airflow_addon.hangar_airflow import cli_allowlist, cli_commands, mwaa, tokens
from hangar.runtime.airflow_addon.hangar_airflow.cli_allowlist import CliRejected, check_command
from hangar.runtime.airflow_addon.hangar_airflow.cli_commands import parse_command

SECRET = "s" * 64
ADDON = Path(tokens.__file__).parent
ECHO = [sys.executable, "-c", "import sys; print(' '.join(sys.argv[1:]))"]


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def legacy_token(**overrides) -> str:
    """A token as minted before purposes existed (no hangar_purpose claim)."""
    now = int(time.time())
    claims = {"jti": uuid.uuid4().hex, "sub": "admin", "role": "ADMIN", "aud": "apache-airflow",
              "iat": now, "nbf": now, "exp": now + 60, **overrides}
    return jwt.encode(claims, SECRET.encode(), algorithm="HS512")


# --- token purposes -------------------------------------------------------------------------


def test_existing_mint_call_still_makes_api_tokens():
    token = tokens.mint(SECRET, sub="alice", role="OP", valid_for_seconds=3600)
    claims = claims_of(token)
    assert claims["hangar_purpose"] == "api"
    assert claims["aud"] == "apache-airflow"  # what Airflow 3 accepts natively
    assert tokens.decode(token, SECRET)["sub"] == "alice"
    assert tokens.decode(token, SECRET, purpose="api")["role"] == "OP"


@pytest.mark.parametrize("purpose", ["web", "cli"])
def test_purpose_tokens_are_single_purpose(purpose):
    token = tokens.mint(SECRET, sub="alice", role="USER", valid_for_seconds=60, purpose=purpose)
    claims = claims_of(token)
    assert claims["hangar_purpose"] == purpose
    assert claims["aud"] == tokens.audience_for(purpose) != tokens.AUDIENCE
    assert claims["exp"] - claims["iat"] == 60
    assert tokens.decode(token, SECRET, purpose=purpose)["sub"] == "alice"
    for other in tokens.PURPOSES - {purpose}:
        with pytest.raises(tokens.TokenError, match="purpose"):
            tokens.decode(token, SECRET, purpose=other)
    # Without a purpose, decode keeps its old meaning (API audience): refused too, which is
    # what keeps web/CLI tokens out of the Airflow 2 auth backend.
    with pytest.raises(tokens.TokenError):
        tokens.decode(token, SECRET)


@pytest.mark.parametrize("purpose", ["web", "cli"])
def test_api_tokens_do_not_pass_as_web_or_cli(purpose):
    token = tokens.mint(SECRET, sub="alice", role="ADMIN", valid_for_seconds=60)
    with pytest.raises(tokens.TokenError, match="wrong purpose"):
        tokens.decode(token, SECRET, purpose=purpose)


def test_legacy_tokens_count_as_api():
    token = legacy_token()
    assert tokens.decode(token, SECRET, purpose="api")["sub"] == "admin"
    with pytest.raises(tokens.TokenError):
        tokens.decode(token, SECRET, purpose="web")


def test_purpose_claim_must_match_even_with_the_right_audience():
    token = legacy_token(aud="hangar-web", hangar_purpose="cli")
    with pytest.raises(tokens.TokenError, match="purpose is 'cli', not 'web'"):
        tokens.decode(token, SECRET, purpose="web")


def test_expired_and_forged_purpose_tokens_are_refused():
    now = int(time.time()) - 300
    expired = legacy_token(aud="hangar-web", hangar_purpose="web", iat=now, nbf=now, exp=now + 60)
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.decode(expired, SECRET, purpose="web")
    forged = tokens.mint("x" * 64, sub="alice", role="ADMIN", valid_for_seconds=60, purpose="web")
    with pytest.raises(tokens.TokenError, match="Signature"):
        tokens.decode(forged, SECRET, purpose="web")


def test_mint_validates_purpose_and_short_lifetimes():
    with pytest.raises(ValueError):
        tokens.mint(SECRET, sub="a", role="ADMIN", valid_for_seconds=60, purpose="ssh")
    with pytest.raises(ValueError, match="short-lived"):
        tokens.mint(SECRET, sub="a", role="ADMIN", valid_for_seconds=tokens.MAX_SHORT_LIVED_SECONDS + 1, purpose="web")
    tokens.mint(SECRET, sub="a", role="ADMIN", valid_for_seconds=86400, purpose="api")  # API tokens may be long
    with pytest.raises(ValueError):
        tokens.decode("x", SECRET, purpose="ssh")


# --- CLI: parsing ---------------------------------------------------------------------------


def test_parse_command_splits_like_a_shell_without_one():
    assert parse_command(b"dags trigger my_dag -c '{\"k\": \"v w\"}'") == ["dags", "trigger", "my_dag", "-c", '{"k": "v w"}']
    assert parse_command("airflow dags list") == ["dags", "list"]  # a leading `airflow` is tolerated
    assert parse_command("dags list; rm -rf /") == ["dags", "list;", "rm", "-rf", "/"]  # no shell: just args
    assert parse_command("  version \n") == ["version"]


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"", 400), (b"   ", 400), (b"airflow", 400), (b"dags list 'unclosed", 400), (b"\xff\xfe", 400),
     (b"dags list \x00", 400), (b"dags list " + b"x" * cli_commands.MAX_COMMAND_BYTES, 413)],
)
def test_parse_command_rejects(body, status):
    with pytest.raises(CliRejected) as info:
        parse_command(body)
    assert info.value.status == status


def test_command_name():
    assert cli_allowlist.command_name(["dags", "list", "-o", "json"]) == "dags list"
    assert cli_allowlist.command_name(["version"]) == "version"
    assert cli_allowlist.command_name(["cheat-sheet", "-v"]) == "cheat-sheet"
    assert cli_allowlist.command_name(["dags", "--help"]) == "dags"
    assert cli_allowlist.command_name(["dags"]) == "dags"


# --- CLI: allow-list and roles --------------------------------------------------------------


@pytest.mark.parametrize("major", [2, 3])
@pytest.mark.parametrize(
    "command",
    ["db reset -y", "config list", "config get-value api_auth jwt_secret", "users create -u x -r Admin",
     "variables export /tmp/v.json", "variables import /tmp/v.json", "connections export /tmp/c.json",
     "pools import /tmp/p.json", "tasks run d t r", "scheduler", "webserver", "api-server", "db shell",
     "rotate-fernet-key", "info", "plugins", "standalone", "kerberos", "dags", "-h", "foo bar"],
)
def test_commands_off_the_list_are_400_naming_the_command(command, major):
    args = parse_command(command)
    with pytest.raises(CliRejected) as info:
        check_command(args, role="ADMIN", airflow_major=major)
    assert info.value.status == 400
    assert info.value.command == cli_allowlist.command_name(args)
    assert repr(info.value.command) in info.value.message


def test_version_specific_commands():
    check_command(["roles", "list"], role="ADMIN", airflow_major=2)
    check_command(["backfill", "create", "--dag-id", "d"], role="USER", airflow_major=3)
    check_command(["dags", "clear", "d", "-y"], role="USER", airflow_major=3)
    for args, major in ((["roles", "list"], 3), (["backfill", "create"], 2), (["dags", "backfill", "d"], 2),
                        (["dags", "clear", "d"], 2), (["assets", "list"], 2)):
        with pytest.raises(CliRejected) as info:
            check_command(args, role="ADMIN", airflow_major=major)
        assert info.value.status == 400


ROLE_CASES = {
    "dags list": "VIEWER", "dags list-runs hangar_probe_dag": "VIEWER", "dags state d 2024-01-01": "VIEWER",
    "dags show d": "VIEWER", "dags next-execution d": "VIEWER", "tasks list d": "VIEWER",
    "tasks states-for-dag-run d r": "VIEWER", "pools list": "VIEWER", "pools get default_pool": "VIEWER",
    "version": "VIEWER", "cheat-sheet": "VIEWER", "jobs check": "VIEWER",
    "dags trigger d": "USER", "dags pause d": "USER", "dags unpause d": "USER", "tasks clear d -y": "USER",
    "dags test d 2024-01-01": "USER", "tasks test d t 2024-01-01": "USER", "dags delete d -y": "USER",
    "variables get k": "OP", "variables list": "OP", "variables set k v": "OP", "variables delete k": "OP",
    "pools set p 3 desc": "OP", "pools delete p": "OP", "connections list": "OP",
    "connections add c --conn-uri http://x": "OP", "connections get c": "OP", "providers list": "OP",
    "dags reserialize": "OP", "roles list": "ADMIN", "roles create R": "ADMIN",
}


@pytest.mark.parametrize(("command", "min_role"), sorted(ROLE_CASES.items()))
def test_role_mapping(command, min_role):
    args = parse_command(command)
    major = 2 if args[0] == "roles" else 3
    for role, order in cli_allowlist.ROLE_ORDER.items():
        if order >= cli_allowlist.ROLE_ORDER[min_role]:
            assert check_command(args, role=role, airflow_major=major) == cli_allowlist.command_name(args)
        else:
            with pytest.raises(CliRejected) as info:
                check_command(args, role=role, airflow_major=major)
            assert info.value.status == 403
            assert min_role in info.value.message


def test_viewer_commands_are_read_only():
    viewer = cli_allowlist.allowed_commands("VIEWER", 3)
    assert "dags list" in viewer and "version" in viewer
    writes = re.compile(r"\b(trigger|pause|unpause|delete|clear|set|add|create|test|reserialize|materialize)\b")
    assert not [name for name in viewer if writes.search(name)]


def test_roles_are_nested_and_rules_valid():
    for major in (2, 3):
        previous: set[str] = set()
        for role in ("VIEWER", "USER", "OP", "ADMIN"):
            current = set(cli_allowlist.allowed_commands(role, major))
            assert previous <= current
            previous = current
        assert cli_allowlist.allowed_commands("NOBODY", major) == []
    for name, rule in cli_allowlist.COMMANDS.items():
        assert rule.min_role in cli_allowlist.ROLE_ORDER, name
        assert rule.majors and rule.majors <= {2, 3}, name
        assert rule.origin in ("mwaa", "hangar"), name
        assert all(o.startswith("--") or (len(o) == 2 and o[0] == "-") for o in rule.denied_options), name


def test_unknown_role_is_403():
    with pytest.raises(CliRejected) as info:
        check_command(["dags", "list"], role="ROOT", airflow_major=3)
    assert info.value.status == 403


@pytest.mark.parametrize(
    "command",
    ["dags show d --save /tmp/x.png", "dags show d --save=/tmp/x.png", "dags show d --sav /tmp/x.png",
     "dags show d -s /tmp/x.png", "dags show d -s/tmp/x.png", "dags show d -vs /tmp/x.png", "dags show d --imgcat",
     "dags test d 2024-01-01 --save-dagrun /tmp/x", "dags test d 2024-01-01 --show-dagrun",
     "dags test d 2024-01-01 -f /etc/passwd", "dags test d 2024-01-01 --dagfile /tmp/x.py",
     "tasks test d t 2024-01-01 --post-mortem", "tasks test d t 2024-01-01 -m",
     "tasks test d t 2024-01-01 --env-vars '{\"HTTPS_PROXY\": \"http://evil\"}'",
     "dags list --subdir /etc", "dags list -S /etc", "dags list --sub=/etc", "dags trigger d -S /x"],
)
def test_denied_options(command):
    with pytest.raises(CliRejected) as info:
        check_command(parse_command(command), role="ADMIN", airflow_major=3)
    assert info.value.status == 400
    assert "is not allowed with" in info.value.message


@pytest.mark.parametrize(
    "command",
    ["dags list-runs d -s 2024-01-01", "tasks clear d -s 2024-01-01 -y", "tasks clear d -f -y",
     "dags list -o json", "dags show d", "variables set k '-Some value with spaces'", "tasks test d t 2024-01-01 --map-index -1",
     "dags trigger d -c '{\"save\": \"--save\"}'"],
)
def test_options_allowed(command):
    check_command(parse_command(command), role="ADMIN", airflow_major=3)


def test_denied_option_matching():
    denied = ("--save", "-s")
    assert cli_allowlist.denied_option("--sa", denied) == "--save"
    assert cli_allowlist.denied_option("--save=x", denied) == "--save"
    assert cli_allowlist.denied_option("--saved", denied) is None  # not an abbreviation of --save
    assert cli_allowlist.denied_option("-xs", denied) == "-s"
    assert cli_allowlist.denied_option("--", denied) is None
    assert cli_allowlist.denied_option("-", denied) is None
    assert cli_allowlist.denied_option("save", denied) is None


# --- CLI: runner ----------------------------------------------------------------------------


def test_run_captures_output_and_exit_code():
    result = cli_commands.run([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"])
    assert (result.stdout.strip(), result.stderr.strip(), result.exit_code, result.timed_out) == (b"out", b"err", 3, False)
    status, body = cli_commands.result_payload(result)
    assert status == 200  # as MWAA: a failing command is still a 200 with its output
    assert base64.b64decode(body["stdout"]).strip() == b"out"
    assert base64.b64decode(body["stderr"]).strip() == b"err"
    assert body["exit_code"] == 3


def test_run_stdin_is_closed():
    result = cli_commands.run([sys.executable, "-c", "import sys; print(repr(sys.stdin.read()))"])
    assert result.stdout.strip() == b"''"


def test_run_timeout_kills_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    result = cli_commands.run([sys.executable, "-c", script], timeout=2)
    assert time.monotonic() - started < 15
    assert result.timed_out and result.stdout.strip() == b"started"
    assert b"timed out" in result.stderr
    grandchild = int(pid_file.read_text())
    for _ in range(50):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("grandchild survived the timeout")
    status, body = cli_commands.result_payload(result)
    assert status == 504 and "error" in body and base64.b64decode(body["stdout"]).strip() == b"started"


def test_run_caps_output():
    result = cli_commands.run([sys.executable, "-c", "print('x' * 5000)"], max_output=100)
    assert result.stdout.startswith(b"x" * 100) and b"truncated at 100 bytes" in result.stdout


def test_airflow_argv_uses_the_servers_interpreter():
    assert cli_commands.airflow_argv(["dags", "list"]) == [sys.executable, "-m", "airflow", "dags", "list"]


def test_cli_slots_are_exclusive_and_released(tmp_path):
    with cli_commands.cli_slot(str(tmp_path), 2) as first, cli_commands.cli_slot(str(tmp_path), 2) as second:
        assert first and second
        with cli_commands.cli_slot(str(tmp_path), 2) as third:
            assert not third
    with cli_commands.cli_slot(str(tmp_path), 2) as again:
        assert again


def test_execute_end_to_end_without_airflow(tmp_path):
    status, body = cli_commands.execute(
        b"dags list -o json", role="VIEWER", airflow_major=3, slots=1, directory=str(tmp_path), argv_prefix=ECHO
    )
    assert status == 200 and base64.b64decode(body["stdout"]).strip() == b"dags list -o json"
    status, body = cli_commands.execute(
        b"db reset -y", role="ADMIN", airflow_major=3, slots=1, directory=str(tmp_path), argv_prefix=ECHO
    )
    assert (status, body["command"]) == (400, "db reset")
    with cli_commands.cli_slot(str(tmp_path), 1):
        status, body = cli_commands.execute(
            b"version", role="VIEWER", airflow_major=3, slots=1, directory=str(tmp_path), argv_prefix=ECHO
        )
    assert status == 429


# --- mwaa.py: request handling without a framework ------------------------------------------


def cli_token(role="VIEWER", purpose="cli", **kwargs):
    return tokens.mint(SECRET, sub="alice", role=role, valid_for_seconds=60, purpose=purpose, **kwargs)


def handle(authorization, body=b"dags list", major=3, tmp_path=None):
    return mwaa.handle_cli(
        authorization, body, secret=SECRET, airflow_major=major, argv_prefix=ECHO,
        directory=str(tmp_path) if tmp_path else None,
    )


def test_handle_cli_auth(tmp_path):
    status, body, headers = handle(None)
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    assert handle("Basic abc")[0] == 401
    for purpose in ("web", "api"):
        status, body, _ = handle(f"Bearer {cli_token(purpose=purpose)}")
        assert status == 401 and "wrong purpose" in body["error"]
    assert handle("Bearer not-a-jwt")[0] == 401
    now = int(time.time()) - 300
    expired = legacy_token(aud="hangar-cli", hangar_purpose="cli", iat=now, nbf=now, exp=now + 60)
    assert handle(f"Bearer {expired}")[0] == 401
    bad_role = legacy_token(aud="hangar-cli", hangar_purpose="cli", role="ROOT")
    assert handle(f"Bearer {bad_role}")[0] == 403


def test_handle_cli_checks_the_token_before_the_command(tmp_path):
    assert handle(None, b"db reset -y")[0] == 401  # nothing about the allow-list leaks


def test_handle_cli_runs_allowed_commands(tmp_path):
    status, body, headers = handle(f"bearer {cli_token()}", tmp_path=tmp_path)
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert base64.b64decode(body["stdout"]).strip() == b"dags list"
    status, body, _ = handle(f"Bearer {cli_token()}", b"dags trigger d", tmp_path=tmp_path)
    assert status == 403
    status, body, _ = handle(f"Bearer {cli_token()}", b"db reset", tmp_path=tmp_path)
    assert (status, body["command"]) == (400, "db reset")
    assert handle(f"Bearer {cli_token()}", None, tmp_path=tmp_path)[0] == 413
    with cli_commands.cli_slot(str(tmp_path), mwaa.CLI_SLOTS[2]):
        status, _, headers = handle(f"Bearer {cli_token()}", major=2, tmp_path=tmp_path)
    assert status == 429 and headers["Retry-After"]


def test_sso_form_and_web_claims():
    web = tokens.mint(SECRET, sub="alice", role="VIEWER", valid_for_seconds=60, purpose="web")
    assert mwaa.token_from_form(f"token={web}".encode()) == web
    assert mwaa.token_from_form(b"") == mwaa.token_from_form(b"other=1") == ""
    assert mwaa.token_from_form(b"token=" + b"a" * mwaa.MAX_FORM_BYTES) == ""
    assert mwaa.web_claims(web, SECRET)["sub"] == "alice"
    for wrong in (cli_token(), cli_token(purpose="api")):
        with pytest.raises(tokens.TokenError):
            mwaa.web_claims(wrong, SECRET)
    with pytest.raises(tokens.TokenError, match="role"):
        mwaa.web_claims(legacy_token(aud="hangar-web", hangar_purpose="web", role="ROOT"), SECRET)


def test_sso_page_is_self_contained_and_csp_allows_only_its_script():
    page = mwaa.SSO_PAGE
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert scripts == [mwaa.SSO_SCRIPT]
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    csp = mwaa.SSO_PAGE_HEADERS["Content-Security-Policy"]
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp and "form-action 'self'" in csp
    assert not re.search(r"\b(src|href)=", page)  # no external resources
    assert "location.hash" in mwaa.SSO_SCRIPT and "replaceState" in mwaa.SSO_SCRIPT
    assert 'method="post"' in page
    assert mwaa.SSO_PAGE_HEADERS["Cache-Control"] == "no-store"


def test_failure_page_escapes_the_reason():
    assert "&lt;script&gt;" in mwaa.failure_page("<script>")


def test_bearer_token():
    assert mwaa.bearer_token("Bearer abc ") == "abc"
    assert mwaa.bearer_token("bearer abc") == "abc"
    assert mwaa.bearer_token("Basic abc") == mwaa.bearer_token(None) == mwaa.bearer_token("") == ""


# --- import hygiene -------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["cli_commands.py", "cli_allowlist.py", "tokens.py", "mwaa.py", "login.py"])
def test_pure_modules_import_nothing_from_airflow_at_import_time(module):
    tree = ast.parse((ADDON / module).read_text())
    top_level = []
    for node in tree.body:  # module level only; builders import frameworks lazily
        if isinstance(node, ast.Import):
            top_level += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            top_level.append(node.module or "")
    assert not [name for name in top_level if name.split(".")[0] in {"airflow", "flask", "flask_login", "fastapi", "starlette"}]
    if module in ("cli_commands.py", "cli_allowlist.py"):
        assert not [name for name in top_level if name in {"tokens", "jwt"}]  # standard library only
