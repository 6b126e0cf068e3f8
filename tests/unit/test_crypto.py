"""Envelope encryption of secrets and the private master key file."""
from __future__ import annotations

import os
import stat

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hangar.crypto import Envelope, load_or_create_master_key, write_private

SECRET = "postgresql://hangar:s3cr3t-p4ssw0rd@127.0.0.1:5432/db"


@pytest.fixture
def envelope() -> Envelope:
    return Envelope(AESGCM.generate_key(bit_length=256))


def test_round_trip(envelope):
    wrapped, ciphertext = envelope.encrypt(SECRET, context="env-1/metadata_db_url")
    assert envelope.decrypt(wrapped, ciphertext, context="env-1/metadata_db_url") == SECRET


@pytest.mark.parametrize("plaintext", ["", "ü-ñíçødé ✓", "x" * 100_000])
def test_round_trip_edge_values(envelope, plaintext):
    wrapped, ciphertext = envelope.encrypt(plaintext, context="c")
    assert envelope.decrypt(wrapped, ciphertext, context="c") == plaintext


def test_ciphertext_does_not_contain_the_plaintext(envelope):
    wrapped, ciphertext = envelope.encrypt(SECRET, context="env-1/x")
    for blob in (wrapped, ciphertext):
        assert SECRET.encode() not in blob
        assert b"s3cr3t-p4ssw0rd" not in blob


def test_each_encryption_is_fresh(envelope):
    first = envelope.encrypt(SECRET, context="c")
    second = envelope.encrypt(SECRET, context="c")
    assert first[0] != second[0]
    assert first[1] != second[1]


def test_wrong_context_fails(envelope):
    wrapped, ciphertext = envelope.encrypt(SECRET, context="env-1/fernet_key")
    with pytest.raises(InvalidTag):
        envelope.decrypt(wrapped, ciphertext, context="env-2/fernet_key")


def test_different_master_key_fails(envelope):
    wrapped, ciphertext = envelope.encrypt(SECRET, context="c")
    other = Envelope(AESGCM.generate_key(bit_length=256))
    with pytest.raises(InvalidTag):
        other.decrypt(wrapped, ciphertext, context="c")


def test_swapped_data_keys_fail(envelope):
    wrapped_a, _ = envelope.encrypt("a", context="c")
    _, ciphertext_b = envelope.encrypt("b", context="c")
    with pytest.raises(InvalidTag):
        envelope.decrypt(wrapped_a, ciphertext_b, context="c")


@pytest.mark.parametrize("which", [0, 1])
def test_tampering_fails(envelope, which):
    parts = list(envelope.encrypt(SECRET, context="c"))
    blob = bytearray(parts[which])
    blob[-1] ^= 0x01
    parts[which] = bytes(blob)
    with pytest.raises(InvalidTag):
        envelope.decrypt(*parts, context="c")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_write_private_creates_0600(tmp_path):
    path = tmp_path / "master.key"
    write_private(path, b"data")
    assert path.read_bytes() == b"data"
    assert mode(path) == 0o600


def test_write_private_tightens_an_existing_file(tmp_path):
    path = tmp_path / "admin.key"
    path.write_bytes(b"old content that is longer")
    path.chmod(0o644)
    write_private(path, b"new")
    assert path.read_bytes() == b"new"
    assert mode(path) == 0o600


def test_write_private_ignores_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        write_private(tmp_path / "k", b"x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "k") == 0o600


def test_master_key_is_created_once_and_reused(tmp_path):
    path = tmp_path / "master.key"
    key = load_or_create_master_key(path)
    assert len(key) == 32
    assert mode(path) == 0o600
    assert load_or_create_master_key(path) == key
    # a key loaded again decrypts what the first one encrypted
    wrapped, ciphertext = Envelope(key).encrypt(SECRET, context="c")
    assert Envelope(load_or_create_master_key(path)).decrypt(wrapped, ciphertext, context="c") == SECRET


def test_damaged_master_key_is_refused(tmp_path):
    path = tmp_path / "master.key"
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="damaged"):
        load_or_create_master_key(path)
