"""`hangar bucket`: versioned buckets, addressed with s3:// URIs as in the AWS CLI.

A client of the HTTP API like every other command. `sync` compares sha256 digests,
so it uploads only files whose bytes changed, and prints the version id of every
object it writes (the ids an environment can pin).
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional
from urllib.parse import quote

import typer
from rich.console import Console

from hangar.cli.client import Client, ClientError, call, fail

bucket_app = typer.Typer(no_args_is_help=True, help="Versioned buckets for DAGs, requirements, plugins and startup scripts.")
out = Console()
SCHEME = "s3://"


def _client() -> Client:
    return Client.from_environment()


def parse_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/key` -> ("bucket", "some/key"); the key may be empty."""
    if not uri.startswith(SCHEME):
        fail(f"{uri!r} is not an s3:// URI (expected s3://BUCKET/KEY)")
    bucket, _, key = uri[len(SCHEME):].partition("/")
    if not bucket:
        fail(f"{uri!r} names no bucket")
    return bucket, key


def _objects_path(bucket: str, key: str | None = None) -> str:
    base = f"/api/v1/buckets/{quote(bucket, safe='')}/objects"
    return base if key is None else f"{base}/{quote(key, safe='/')}"


def _put(client: Client, bucket: str, key: str, data: bytes) -> dict:
    return client.send("PUT", _objects_path(bucket, key), timeout=300, content=data).json()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _folder(prefix: str) -> str:
    stripped = prefix.strip("/")
    return f"{stripped}/" if stripped else ""


@bucket_app.command("create")
def create(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Create a bucket (Admin)."""
    bucket = call("POST", "/api/v1/buckets", json={"name": name})
    if as_json:
        print(json.dumps(bucket))
        return
    out.print(f"created {SCHEME}{bucket['name']}  ({bucket['arn']})", markup=False)


@bucket_app.command("delete")
def delete(name: str) -> None:
    """Delete an empty bucket with all its old versions (Admin)."""
    call("DELETE", f"/api/v1/buckets/{quote(name, safe='')}")
    out.print(f"deleted {SCHEME}{name}", markup=False)


@bucket_app.command("ls")
def ls(
    uri: Optional[str] = typer.Argument(None, help="s3://BUCKET\\[/PREFIX]; without it, list buckets"),
    versions: bool = typer.Option(False, "--versions", help="every version and delete marker"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List buckets, or the objects in a bucket under a prefix."""
    try:
        client = _client()
        if uri is None:
            buckets = client.request("GET", "/api/v1/buckets")
        else:
            bucket, prefix = parse_uri(uri)
            objects = client.request("GET", _objects_path(bucket), params={"prefix": prefix, "versions": versions})
    except ClientError as exc:
        fail(str(exc))
    if uri is None:
        if as_json:
            print(json.dumps(buckets, indent=2))
            return
        for b in buckets:
            print(f"{b['created_at']}  {SCHEME}{b['name']}")
        return
    if as_json:
        print(json.dumps(objects, indent=2))
        return
    for o in objects:
        if versions:
            flags = ("latest " if o["is_latest"] else "") + ("DELETE-MARKER" if o["delete_marker"] else "")
            print(f"{o['created_at']}  {o['size']:>10}  {o['version_id']}  {o['key']}  {flags}".rstrip())
        else:
            print(f"{o['created_at']}  {o['size']:>10}  {o['key']}")


@bucket_app.command("cp")
def cp(
    source: str = typer.Argument(..., help="LOCAL_FILE or s3://BUCKET/KEY ('-' is stdin/stdout)"),
    destination: str = typer.Argument(..., help="s3://BUCKET/KEY or LOCAL_PATH"),
    version_id: Optional[str] = typer.Option(None, "--version-id", help="download this version"),
) -> None:
    """Upload a file to a bucket, or download an object (optionally an exact version)."""
    upload = destination.startswith(SCHEME)
    if upload == source.startswith(SCHEME):
        fail("exactly one of SOURCE and DESTINATION must be an s3:// URI")
    if upload and version_id:
        fail("--version-id selects what to download; uploads always create a new version")
    try:
        if upload:
            bucket, key = parse_uri(destination)
            if source == "-":
                data = sys.stdin.buffer.read()
            else:
                path = Path(source)
                if not path.is_file():
                    fail(f"{source} is not a file")
                data = path.read_bytes()
                if not key or key.endswith("/"):
                    key += path.name
            if not key:
                fail(f"{destination} names no key")
            version = _put(_client(), bucket, key, data)
            print(f"upload: {source} to {SCHEME}{bucket}/{key}  version {version['version_id']}")
            return
        bucket, key = parse_uri(source)
        if not key:
            fail(f"{source} names no key")
        response = _client().send("GET", _objects_path(bucket, key), timeout=300,
                                  params={"version_id": version_id} if version_id else None)
    except ClientError as exc:
        fail(str(exc))
    if destination == "-":
        sys.stdout.buffer.write(response.content)
        sys.stdout.buffer.flush()
        return
    target = Path(destination)
    if target.is_dir() or destination.endswith(("/", os.sep)):
        target = target / key.rsplit("/", 1)[-1]
    _write_atomic(target, response.content)
    print(f"download: {SCHEME}{bucket}/{key} to {target}  version {response.headers.get('x-hangar-version-id')}",
          file=sys.stderr)


@bucket_app.command("rm")
def rm(uri: str) -> None:
    """Delete an object: adds a delete marker; earlier versions stay readable by version id."""
    bucket, key = parse_uri(uri)
    if not key:
        fail(f"{uri} names no key")
    marker = call("DELETE", _objects_path(bucket, key))
    print(f"delete: {uri}  delete marker {marker['version_id']}")


def _local_files(root: Path, exclude: list[str]) -> tuple[dict[str, Path], dict[str, Path]]:
    """The files to upload by their path under `root`, and the ones skipped because they are
    symlinks (or under a symlinked folder) that lead outside `root`: never uploaded."""
    files, outside = {}, {}
    inside = root.resolve()
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        if any(fnmatch.fnmatch(rel, pattern) for pattern in exclude):
            continue
        if not (real := path.resolve()).is_relative_to(inside):
            outside[rel] = real
            continue
        files[rel] = path
    return files, outside


@bucket_app.command("sync")
def sync(
    local_dir: Path = typer.Argument(..., help="local folder"),
    uri: str = typer.Argument(..., help="s3://BUCKET/PREFIX, e.g. s3://my-airflow/dags"),
    delete: bool = typer.Option(False, "--delete", help="delete objects under the prefix that have no local file"),
    exclude: list[str] = typer.Option([], "--exclude", help="glob on the path relative to LOCAL_DIR (repeatable)"),
    as_json: bool = typer.Option(False, "--json", help="print what changed as JSON"),
) -> None:
    """Upload files whose bytes differ from the latest object under the prefix."""
    if not local_dir.is_dir():
        fail(f"{local_dir} is not a folder")
    bucket, prefix = parse_uri(uri)
    folder = _folder(prefix)
    changes: list[dict] = []
    try:
        client = _client()
        remote = {o["key"]: o for o in client.request("GET", _objects_path(bucket), params={"prefix": folder})}
        local, outside = _local_files(local_dir, exclude)
        for rel, target in outside.items():
            changes.append({"action": "skip", "path": rel, "reason": "symlink leads outside the folder"})
            print(f"skip: {local_dir / rel} -> {target} leads outside {local_dir}", file=sys.stderr)
        for rel, path in local.items():
            key = folder + rel
            data = path.read_bytes()
            current = remote.get(key)
            if current is not None and current["sha256"] == hashlib.sha256(data).hexdigest():
                continue
            version = _put(client, bucket, key, data)
            changes.append({"action": "upload", "key": key, "version_id": version["version_id"]})
            if not as_json:
                print(f"upload: {path} to {SCHEME}{bucket}/{key}  version {version['version_id']}")
        if delete:
            for key in sorted(remote):
                rel = key[len(folder):]
                if rel in local or rel in outside or key.endswith("/") or any(fnmatch.fnmatch(rel, p) for p in exclude):
                    continue
                marker = client.request("DELETE", _objects_path(bucket, key))
                changes.append({"action": "delete", "key": key, "version_id": marker["version_id"]})
                if not as_json:
                    print(f"delete: {SCHEME}{bucket}/{key}  delete marker {marker['version_id']}")
    except ClientError as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(changes, indent=2))
