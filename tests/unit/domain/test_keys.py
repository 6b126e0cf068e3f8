"""KMS keys against a real SQLite store: the default key, envelope encryption of
environment secrets under a key, rotation that re-wraps without touching ciphertexts,
tamper detection, alias/ARN resolution, and the checks create and update make."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import select

from hangar.context import Context
from hangar.domain import environments, keys, queries
from hangar.schemas.keys import KeyPublic
from hangar.schemas.spec import EnvironmentCreate, EnvironmentUpdate
from hangar.domain.status import Status
from hangar.errors import EnvironmentBusy, ValidationFailed
from hangar.store import repository
from hangar.store.models import EnvironmentRow, KmsKeyVersionRow, OperationRow, SecretRow

# MWAA's KmsKey pattern (botocore's mwaa model); the ids and ARN forms Hangar accepts fit it
MWAA_KMS = re.compile(r"^((((arn:aws(-[a-z]+)?:kms:[a-z]{2}-[a-z]+-\d:\d+:)?key\/)?[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-"
                      r"[a-f0-9]{4}-[a-f0-9]{12})|((arn:aws(-[a-z]+)?:kms:[a-z]{2}-[a-z]+-\d:\d+:)?alias/.+))$")
SECRET = "postgresql://hangar:s3cr3t-p4ssw0rd@127.0.0.1:5432/db"


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    return folder


def add_env(ctx: Context, env_id: str = "env-1") -> str:
    with ctx.store.session() as session:
        session.add(EnvironmentRow(id=env_id, name=env_id, status="AVAILABLE", revision=1, ports={}))
    return env_id


def put(ctx: Context, env_id: str, name: str, value: str, kms_key_id: str | None = None) -> None:
    with ctx.store.session() as session:
        repository.put_secret(session, ctx.envelope, env_id=env_id, name=name, value=value, kms_key_id=kms_key_id)


def read(ctx: Context, env_id: str) -> dict[str, str]:
    with ctx.store.session() as session:
        return repository.get_secrets(session, ctx.envelope, env_id=env_id)


def rows(ctx: Context, env_id: str) -> dict[str, SecretRow]:
    with ctx.store.session() as session:
        return {r.name: r for r in session.scalars(select(SecretRow).where(SecretRow.environment_id == env_id))}


# --- keys ---


def test_default_key_is_made_once_with_its_alias(ctx):
    first = keys.ensure_default_key(ctx)
    assert keys.ensure_default_key(ctx).key_id == first.key_id
    assert first.alias == "alias/hangar/default"
    assert first.key_manager == "HANGAR"
    assert (first.current_version, first.versions, first.rotated_at) == (1, 1, None)
    assert [k.key_id for k in keys.list_keys(ctx)] == [first.key_id]


def test_key_ids_have_the_aws_key_id_form(ctx):
    key = keys.create_key(ctx, alias="alias/team-a", description="team A")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", key.key_id)
    assert MWAA_KMS.match(key.key_id) and MWAA_KMS.match(key.alias)
    assert key.arn == f"arn:aws:kms:local:000000000000:key/{key.key_id}"
    assert key.key_manager == "CUSTOMER"
    assert key.description == "team A"


@pytest.mark.parametrize("alias", ["team-a", "alias/", "alias/has space", "alias/ünï"])
def test_bad_aliases_are_refused(ctx, alias):
    with pytest.raises(ValidationFailed, match="alias/NAME"):
        keys.create_key(ctx, alias=alias)


@pytest.mark.parametrize("alias", ["alias/aws/mwaa", "alias/hangar/default", "alias/hangar/mine"])
def test_reserved_aliases_are_refused(ctx, alias):
    with pytest.raises(ValidationFailed, match="reserved"):
        keys.create_key(ctx, alias=alias)


def test_an_alias_names_one_key(ctx):
    keys.create_key(ctx, alias="alias/team-a")
    with pytest.raises(keys.KmsAliasExists, match="alias/team-a"):
        keys.create_key(ctx, alias="alias/team-a")
    assert len(keys.list_keys(ctx)) == 1


def test_keys_without_alias_are_fine(ctx):
    a, b = keys.create_key(ctx), keys.create_key(ctx)
    assert a.key_id != b.key_id and a.alias is None is b.alias


# --- resolution ---


def test_id_alias_and_arns_resolve_to_the_key(ctx):
    key = keys.create_key(ctx, alias="alias/team/a")
    refs = [
        key.key_id, key.key_id.upper(), f"key/{key.key_id}", key.arn,
        f"arn:aws:kms:us-east-1:123456789012:key/{key.key_id}",
        "alias/team/a", "arn:aws:kms:eu-west-1:123456789012:alias/team/a", "arn:aws-cn:kms:cn-north-1:1:alias/team/a",
    ]
    for ref in refs:
        assert keys.get_key(ctx, key=ref).key_id == key.key_id, ref
        assert keys.key_id_for(ctx, ref=ref) == key.key_id, ref


def test_none_resolves_to_the_default_key(ctx):
    assert keys.key_id_for(ctx, ref=None) == keys.ensure_default_key(ctx).key_id


@pytest.mark.parametrize("ref", [
    "1234abcd-12ab-34cd-56ef-1234567890ab", "alias/nope", "arn:aws:kms:us-east-1:123456789012:alias/nope",
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
])
def test_unknown_keys_are_named_in_the_error(ctx, ref):
    keys.ensure_default_key(ctx)
    with pytest.raises(keys.KmsKeyNotFound) as caught:
        keys.key_id_for(ctx, ref=ref)
    assert ref in caught.value.message
    assert isinstance(caught.value, ValidationFailed)


@pytest.mark.parametrize("ref", ["not-a-key", "key/not-a-uuid", "arn:aws:kms:us-east-1:1:key/xyz", "1234"])
def test_malformed_references_are_refused(ctx, ref):
    with pytest.raises(ValidationFailed, match="KMS key"):
        keys.get_key(ctx, key=ref)


# --- envelope encryption under a key ---


def test_secrets_are_wrapped_under_the_named_key(ctx):
    env_id = add_env(ctx)
    key = keys.create_key(ctx, alias="alias/team-a")
    put(ctx, env_id, "metadata_db_url", SECRET, kms_key_id=key.key_id)
    assert read(ctx, env_id) == {"metadata_db_url": SECRET}
    row = rows(ctx, env_id)["metadata_db_url"]
    assert (row.kms_key_id, row.kms_key_version) == (key.key_id, 1)
    assert SECRET.encode() not in row.ciphertext + row.wrapped_key
    # the data key is not wrapped under the master key itself
    with pytest.raises(InvalidTag):
        ctx.envelope.decrypt(row.wrapped_key, row.ciphertext, context=f"{env_id}/metadata_db_url")


def test_without_a_key_the_environment_keeps_its_key_or_gets_the_default(ctx):
    env_id, other = add_env(ctx), add_env(ctx, "env-2")
    key = keys.create_key(ctx)
    put(ctx, env_id, "a", "1", kms_key_id=key.key_id)
    put(ctx, env_id, "b", "2")
    put(ctx, other, "a", "3")
    assert rows(ctx, env_id)["b"].kms_key_id == key.key_id
    assert rows(ctx, other)["a"].kms_key_id == keys.ensure_default_key(ctx).key_id


def test_key_material_is_stored_only_sealed(ctx):
    key = keys.create_key(ctx)
    with ctx.store.session() as session:
        version = session.get_one(KmsKeyVersionRow, (key.key_id, 1))
        material = repository.kms_material(session, ctx.envelope, key_id=key.key_id, version=1)
        assert len(material) == 32 and material not in version.wrapped_material
    assert "material" not in KeyPublic.model_fields


def test_rotation_rewraps_data_keys_and_reads_still_work(ctx):
    env_a, env_b = add_env(ctx), add_env(ctx, "env-2")
    key, other = keys.create_key(ctx, alias="alias/rotating"), keys.create_key(ctx)
    for name, value in (("fernet_key", "f"), ("jwt_secret", "j"), ("metadata_db_url", SECRET)):
        put(ctx, env_a, name, value, kms_key_id=key.key_id)
    put(ctx, env_b, "fernet_key", "other", kms_key_id=other.key_id)
    before, untouched = rows(ctx, env_a), rows(ctx, env_b)

    rotated = keys.rotate_key(ctx, key="alias/rotating")

    assert (rotated.current_version, rotated.versions, rotated.rewrapped) == (2, 2, 3)
    assert rotated.rotated_at is not None
    after = rows(ctx, env_a)
    for name, row in after.items():
        assert (row.kms_key_id, row.kms_key_version) == (key.key_id, 2)
        assert row.wrapped_key != before[name].wrapped_key
        assert row.ciphertext == before[name].ciphertext  # plaintexts and ciphertexts do not change
    assert read(ctx, env_a) == {"fernet_key": "f", "jwt_secret": "j", "metadata_db_url": SECRET}
    assert rows(ctx, env_b)["fernet_key"].wrapped_key == untouched["fernet_key"].wrapped_key
    assert read(ctx, env_b) == {"fernet_key": "other"}
    # new writes use the new version; the old version is marked and stays readable
    put(ctx, env_a, "secret_key", "s")
    assert rows(ctx, env_a)["secret_key"].kms_key_version == 2
    with ctx.store.session() as session:
        versions = repository.kms_key_versions(session, key.key_id)
        assert [v.superseded_at is not None for v in versions] == [True, False]
        assert len(repository.kms_material(session, ctx.envelope, key_id=key.key_id, version=1)) == 32
    listed = {k.key_id: k for k in keys.list_keys(ctx)}[key.key_id]
    assert (listed.versions, listed.current_version, listed.rotated_at) == (2, 2, rotated.rotated_at)


def test_rotating_twice_and_rotating_an_unused_key(ctx):
    env_id = add_env(ctx)
    key = keys.create_key(ctx)
    put(ctx, env_id, "fernet_key", "f", kms_key_id=key.key_id)
    keys.rotate_key(ctx, key=key.key_id)
    third = keys.rotate_key(ctx, key=key.arn)
    assert (third.current_version, third.versions, third.rewrapped) == (3, 3, 1)
    assert read(ctx, env_id) == {"fernet_key": "f"}
    assert keys.rotate_key(ctx, key=keys.create_key(ctx).key_id).rewrapped == 0


def test_rotating_an_unknown_key_fails_and_changes_nothing(ctx):
    keys.ensure_default_key(ctx)
    with pytest.raises(keys.KmsKeyNotFound, match="alias/ghost"):
        keys.rotate_key(ctx, key="alias/ghost")
    assert keys.list_keys(ctx)[0].versions == 1


@pytest.mark.parametrize("column", ["wrapped_key", "ciphertext"])
def test_a_tampered_secret_fails_loudly(ctx, column):
    env_id = add_env(ctx)
    put(ctx, env_id, "fernet_key", SECRET, kms_key_id=keys.create_key(ctx).key_id)
    with ctx.store.session() as session:
        row = session.get_one(SecretRow, (env_id, "fernet_key"))
        blob = bytearray(getattr(row, column))
        blob[-1] ^= 0x01
        setattr(row, column, bytes(blob))
    with pytest.raises(repository.SecretUnreadable, match="fernet_key") as caught:
        read(ctx, env_id)
    assert "altered" in caught.value.message and SECRET not in caught.value.message


def test_tampered_key_material_fails_loudly_and_blocks_rotation(ctx):
    env_id = add_env(ctx)
    key = keys.create_key(ctx)
    put(ctx, env_id, "fernet_key", "f", kms_key_id=key.key_id)
    with ctx.store.session() as session:
        version = session.get_one(KmsKeyVersionRow, (key.key_id, 1))
        version.wrapped_material = version.wrapped_material[:-1] + bytes([version.wrapped_material[-1] ^ 1])
    with pytest.raises(repository.SecretUnreadable, match=f"{key.key_id} version 1"):
        read(ctx, env_id)
    with pytest.raises(repository.SecretUnreadable):
        keys.rotate_key(ctx, key=key.key_id)
    assert keys.get_key(ctx, key=key.key_id).versions == 1  # the failed rotation left nothing behind


def test_a_secret_moved_to_another_environment_does_not_open(ctx):
    env_a, env_b = add_env(ctx), add_env(ctx, "env-2")
    key = keys.create_key(ctx)
    put(ctx, env_a, "fernet_key", "f", kms_key_id=key.key_id)
    put(ctx, env_b, "fernet_key", "g", kms_key_id=key.key_id)
    with ctx.store.session() as session:
        a = session.get_one(SecretRow, (env_a, "fernet_key"))
        b = session.get_one(SecretRow, (env_b, "fernet_key"))
        b.wrapped_key, b.ciphertext = a.wrapped_key, a.ciphertext
    with pytest.raises(repository.SecretUnreadable):
        read(ctx, env_b)


def test_rows_from_before_kms_keys_are_read_with_the_master_key_and_rewrapped_on_write(ctx):
    env_id = add_env(ctx)
    with ctx.store.session() as session:  # as Hangar wrote them before migration 0004
        for name, value in (("fernet_key", "f"), ("jwt_secret", "j")):
            wrapped, ciphertext = ctx.envelope.encrypt(value, context=f"{env_id}/{name}")
            session.add(SecretRow(environment_id=env_id, name=name, wrapped_key=wrapped, ciphertext=ciphertext))
    assert read(ctx, env_id) == {"fernet_key": "f", "jwt_secret": "j"}
    old = rows(ctx, env_id)
    assert old["jwt_secret"].kms_key_id is None

    put(ctx, env_id, "fernet_key", "f2")

    default = keys.ensure_default_key(ctx).key_id
    new = rows(ctx, env_id)
    assert {(r.kms_key_id, r.kms_key_version) for r in new.values()} == {(default, 1)}
    assert new["jwt_secret"].ciphertext == old["jwt_secret"].ciphertext
    assert read(ctx, env_id) == {"fernet_key": "f2", "jwt_secret": "j"}


# --- environments name their key ---


def test_create_wraps_the_environment_secrets_under_its_kms_key(ctx, dags):
    key = keys.create_key(ctx, alias="alias/team-a")
    environments.create_environment(ctx, request=EnvironmentCreate(
        name="tenant", dags=str(dags), kms_key="arn:aws:kms:us-east-1:123456789012:alias/team-a"))
    with ctx.store.session() as session:
        env_id = repository.get_live(session, "tenant").id
    assert {(r.kms_key_id, r.kms_key_version) for r in rows(ctx, env_id).values()} == {(key.key_id, 1)}
    assert set(read(ctx, env_id)) == {"fernet_key", "jwt_secret", "secret_key", "db_password"}
    assert queries.get_environment(ctx, name="tenant").spec.kms_key.endswith("alias/team-a")


def test_create_without_a_key_uses_the_default_key(ctx, dags):
    environments.create_environment(ctx, request=EnvironmentCreate(name="plain", dags=str(dags)))
    with ctx.store.session() as session:
        env_id = repository.get_live(session, "plain").id
    default = keys.ensure_default_key(ctx).key_id
    assert {r.kms_key_id for r in rows(ctx, env_id).values()} == {default}


def test_create_with_an_unknown_kms_key_is_refused_and_stores_nothing(ctx, dags):
    ref = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    with pytest.raises(ValidationFailed, match=re.escape(ref)):
        environments.create_environment(ctx, request=EnvironmentCreate(name="nokey", dags=str(dags), kms_key=ref))
    assert queries.list_environments(ctx) == []


def _make_available(ctx: Context, name: str) -> str:
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        env.status, env.running_revision, env.last_good_revision = Status.AVAILABLE, env.revision, env.revision
        repository.close_operations(session, env.id, step="done")  # as the create's end does
        return env.id


def test_update_checks_the_kms_key_and_moves_the_data_keys(ctx, dags):
    environments.create_environment(ctx, request=EnvironmentCreate(name="movable", dags=str(dags)))
    env_id = _make_available(ctx, "movable")
    before = read(ctx, env_id)
    with pytest.raises(ValidationFailed, match="alias/missing"):
        environments.update_environment(ctx, name="movable", request=EnvironmentUpdate(kms_key="alias/missing"))
    assert queries.get_environment(ctx, name="movable").revision == 1

    key = keys.create_key(ctx, alias="alias/new-home")
    environments.update_environment(ctx, name="movable", request=EnvironmentUpdate(kms_key="alias/new-home"))
    assert {r.kms_key_id for r in rows(ctx, env_id).values()} == {key.key_id}
    assert read(ctx, env_id) == before


def test_rotate_fernet_opens_an_operation_on_the_running_revision(ctx, dags):
    environments.create_environment(ctx, request=EnvironmentCreate(name="fern", dags=str(dags)))
    with pytest.raises(EnvironmentBusy):  # still CREATING
        environments.rotate_fernet(ctx, name="fern")
    env_id = _make_available(ctx, "fern")
    submitted = []
    ctx.submit = lambda *args: submitted.append(args)
    env = environments.rotate_fernet(ctx, name="fern")
    assert env.status == "UPDATING" and env.last_update.status == "PENDING"
    with ctx.store.session() as session:
        operation = session.get_one(OperationRow, submitted[0][1])
        assert (operation.kind, operation.revision, operation.environment_id) == ("rotate-fernet", 1, env_id)
    with pytest.raises(EnvironmentBusy):  # one at a time
        environments.rotate_fernet(ctx, name="fern")
