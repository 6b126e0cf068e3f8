"""A joined host's files: digests both ends agree on, archives that cannot write elsewhere, the
link swap, the control plane's airflow.cfg with this host's paths, and the worker's environment."""
from __future__ import annotations

import configparser
import io
import os
import tarfile
from pathlib import Path

import pytest

from hangar.schemas.spec import Spec
from hangar.runtime.airflow_config import ADDON_PATH, EnvironmentLayout, render_cfg
from hangar.runtime.remote_worker import (
    ArchiveInvalid, content_files, content_sha256, host_name, install_version, localize_cfg, pack, unpack,
    worker_args, worker_env,
)

PORTS = {"web": 28123, "worker_logs": 28124, "trigger_logs": 28125}


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_the_digest_covers_names_and_bytes_follows_links_and_skips_bytecode(tmp_path):
    dags = tree(tmp_path / "dags", {"a.py": "A = 1\n", "sub/b.py": "B = 2\n", ".airflowignore": "tmp/\n"})
    before = content_sha256(dags)
    tree(dags, {"__pycache__/a.cpython-311.pyc": "junk", "sub/c.pyc": "junk"})
    assert content_sha256(dags) == before
    assert [name for name, _ in content_files(dags)] == [".airflowignore", "a.py", "sub/b.py"]

    shared = tree(tmp_path / "shared", {"common.py": "X = 1\n"})
    (dags / "shared").symlink_to(shared, target_is_directory=True)
    (dags / "loop").symlink_to(dags, target_is_directory=True)  # walked once, not forever
    linked = content_sha256(dags)
    assert linked != before and "shared/common.py" in dict(content_files(dags))

    (dags / "a.py").write_text("A = 2\n")
    assert content_sha256(dags) != linked
    (dags / "a.py").write_text("A = 1\n")
    (dags / "a.py").rename(dags / "z.py")
    assert content_sha256(dags) != linked  # the same bytes under another name
    assert content_sha256(tmp_path / "missing") == content_sha256(tmp_path / "empty-is-the-same")


def test_pack_and_unpack_give_the_same_digest_without_links(tmp_path):
    dags = tree(tmp_path / "dags", {"a.py": "A = 1\n", "deep/er/b.py": "B = 2\n"})
    shared = tree(tmp_path / "shared", {"common.py": "X = 1\n"})
    (dags / "shared").symlink_to(shared, target_is_directory=True)
    (dags / "run.sh").write_text("#!/bin/sh\n")
    (dags / "run.sh").chmod(0o755)
    archive = tmp_path / "dags.tar.gz"
    pack(dags, archive)
    out = tmp_path / "out"
    unpack(archive, out)
    assert content_sha256(out) == content_sha256(dags)
    assert not any(path.is_symlink() for path in out.rglob("*"))
    assert os.access(out / "run.sh", os.X_OK) and not os.access(out / "a.py", os.X_OK)
    with tarfile.open(archive) as tar:
        assert {m.uid for m in tar.getmembers()} == {0} and all(m.isfile() for m in tar.getmembers())


@pytest.mark.parametrize("name,kind", [("../escape.py", tarfile.REGTYPE), ("/etc/evil.py", tarfile.REGTYPE),
                                       ("link.py", tarfile.SYMTYPE), ("dev", tarfile.CHRTYPE)])
def test_an_archive_that_would_write_elsewhere_is_refused_before_anything_is_written(tmp_path, name, kind):
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        good = tarfile.TarInfo("good.py")
        good.size = 3
        tar.addfile(good, io.BytesIO(b"x=1"))
        bad = tarfile.TarInfo(name)
        bad.type = kind
        bad.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
        tar.addfile(bad, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    with pytest.raises(ArchiveInvalid):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.py").exists()


def test_a_new_version_replaces_the_link_and_one_older_version_stays(tmp_path):
    layout = EnvironmentLayout(root=tmp_path / "env", joined_host=True)
    layout.create()
    digests = []
    for version in range(3):
        source = tree(tmp_path / f"v{version}", {"a.py": f"A = {version}\n"})
        archive = tmp_path / f"v{version}.tar.gz"
        pack(source, archive)
        digests.append(install_version(archive=archive, parent=layout.dags, link=layout.dags_link))
        assert digests[-1] == content_sha256(source)
        assert (layout.dags_link / "a.py").read_text() == f"A = {version}\n"
    assert sorted(p.name for p in layout.dags.iterdir()) == sorted(d[:16] for d in digests[1:])
    assert layout.dags_link.is_symlink() and Path(os.readlink(layout.dags_link)).name == digests[-1][:16]
    # the same content again changes nothing
    archive = tmp_path / "again.tar.gz"
    pack(tmp_path / "v2", archive)
    assert install_version(archive=archive, parent=layout.dags, link=layout.dags_link) == digests[-1]
    assert len(list(layout.dags.iterdir())) == 2


def test_the_control_planes_paths_become_this_hosts(tmp_path):
    remote = EnvironmentLayout(root=Path("/srv/hangar/environments/0c1d-env"))
    plugins = remote.root / "plugins" / "abcd"
    spec = Spec(dags="/srv/dags", airflow_version="3.3.2", executor="celery",
                airflow_configuration_options={"core.dags_are_paused_at_creation": "False",
                                               "logging.task_log_prefix_template": "100%% {{ ti.task_id }}",
                                               "secrets.backend_kwargs": '{"path": "/srv/hangar/environments/0c1d-env/vars.json"}'})
    cfg = render_cfg(spec=spec, layout=remote, ports=PORTS, plugins_dir=plugins, broker_url="redis://127.0.0.1:6379/0")
    local = EnvironmentLayout(root=tmp_path / "home" / "environments" / "sales", joined_host=True)
    parsed = parse(localize_cfg(cfg, layout=local))
    assert parsed["core"]["dags_folder"] == str(local.dags_link)
    assert parsed["core"]["plugins_folder"] == str(local.plugins_link)
    assert parsed["core"]["simple_auth_manager_passwords_file"] == str(local.passwords)
    assert parsed["logging"]["base_log_folder"] == str(local.logs)
    assert parsed["logging"]["dag_processor_child_process_log_directory"] == str(local.logs / "dag_processor")
    # anything else under the control plane's environment folder moves too; other values are kept as written
    assert parsed["secrets"]["backend_kwargs"] == '{"path": "%s/vars.json"}' % local.root
    assert parsed["logging"]["task_log_prefix_template"] == "100%%%% {{ ti.task_id }}"
    assert parsed["core"]["executor"] == "CeleryExecutor" and parsed["core"]["dags_are_paused_at_creation"] == "False"
    assert "/srv/hangar" not in localize_cfg(cfg, layout=local)


def test_a_percent_in_the_hosts_home_is_written_the_way_airflow_reads_it(tmp_path):
    cfg = "[core]\ndags_folder = /srv/env/dags-current\nplugins_folder = /srv/env/plugins/x\n"
    local = EnvironmentLayout(root=tmp_path / "100%" / "sales", joined_host=True)
    parsed = parse(localize_cfg(cfg, layout=local))
    assert parsed["core"]["dags_folder"] == str(local.dags_link).replace("%", "%%")
    strict = configparser.ConfigParser()  # with interpolation, as Airflow reads it
    strict.read_string(localize_cfg(cfg, layout=local))
    assert strict["core"]["plugins_folder"] == str(local.plugins_link)


def test_the_worker_environment_keeps_no_token_and_puts_this_hosts_paths(tmp_path):
    layout = EnvironmentLayout(root=tmp_path / "env", joined_host=True)
    inherited = {"PATH": "/usr/local/bin:/usr/bin", "HOME": "/root", "LANG": "C.UTF-8", "HANGAR_WORKER_TOKEN": "hwt_x",
                 "HANGAR_HOME": "/x", "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "PYTHONPATH": "/elsewhere",
                 "VIRTUAL_ENV": "/venv", "UV_OFFLINE": "1"}
    bundle_env = {"AIRFLOW__CORE__FERNET_KEY": "k", "TEAM": "sales"}
    env = worker_env(bundle_env, layout=layout, runtime_bin=tmp_path / "rt" / "bin", inherited=inherited)
    assert not any(k.startswith("HANGAR_") for k in env) and "hwt_x" not in env.values()
    assert env["AIRFLOW__CORE__FERNET_KEY"] == "k" and env["TEAM"] == "sales" and "AIRFLOW__CORE__EXECUTOR" not in env
    assert env["AIRFLOW_HOME"] == str(layout.root) and env["AIRFLOW_CONFIG"] == str(layout.cfg)
    assert env["PYTHONPATH"] == str(ADDON_PATH) and "VIRTUAL_ENV" not in env
    assert env["PATH"] == f"{tmp_path / 'rt' / 'bin'}:/usr/local/bin:/usr/bin"
    assert env["UV_OFFLINE"] == "1" and env["LANG"] == "C.UTF-8"


def test_worker_arguments_and_host_names():
    assert worker_args(concurrency=4, queue="hangar.e1", node="edge-1@e1") == [
        "celery", "worker", "--concurrency", "4", "--queues", "hangar.e1", "--celery-hostname", "edge-1@e1",
        "--without-mingle", "--without-gossip"]  # it serves its task logs: they stay on the host
    assert host_name("edge-1.example.com") == "edge-1.example.com"
    assert host_name("my host (2)") == "my-host-2"
    assert host_name("") == "host"


def test_a_joined_hosts_tasks_are_named_by_the_address_the_control_plane_reaches_it_by(tmp_path):
    from hangar.runtime.remote_worker import reachable_address

    assert reachable_address("http://127.0.0.1:8765") == "127.0.0.1"
    layout = EnvironmentLayout(root=tmp_path / "sales", joined_host=True)
    env = worker_env({}, layout=layout, runtime_bin=tmp_path / "rt" / "bin", inherited={}, address="127.77.3.2")
    assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "hangar_airflow.hostname.reachable_address"
    assert env["HANGAR_WORKER_ADDRESS"] == "127.77.3.2"
    assert "HANGAR_WORKER_ADDRESS" not in worker_env({}, layout=layout, runtime_bin=tmp_path, inherited={})
