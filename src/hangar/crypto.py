"""Envelope encryption of secrets at rest under a master key in HANGAR_HOME.

Each secret gets a fresh 256-bit data key; the data key is wrapped (AES-GCM) under
a key-encryption key and stored beside the ciphertext. The key-encryption key is
either the master key itself or a KMS key's material (hangar.domain.keys), which is
in turn stored wrapped under the master key: master key -> KMS key version -> data
key -> secret. Rotating a key only re-wraps the data keys under it; ciphertexts and
plaintexts stay as they are. The master key file is created 0600; no key material
is ever logged or returned.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12


def write_private(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)  # never through a link
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def load_or_create_master_key(path: Path) -> bytes:
    if path.exists():
        key = path.read_bytes()
        if len(key) != 32:
            raise ValueError(f"master key {path} is damaged (expected 32 bytes)")
        return key
    key = AESGCM.generate_key(bit_length=256)
    write_private(path, key)
    return key


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)


def new_key_material() -> bytes:
    """256 bits for a new KMS key version."""
    return AESGCM.generate_key(bit_length=256)


class Envelope:
    """`key`, where a method takes it, is the key-encryption key: a KMS key version's
    material; without it the master key wraps the data key (access keys, and secrets
    written before KMS keys existed)."""

    def __init__(self, master_key: bytes) -> None:
        self._master = master_key

    def _kek(self, key: bytes | None) -> bytes:
        return self._master if key is None else key

    def encrypt(self, plaintext: str, *, context: str, key: bytes | None = None) -> tuple[bytes, bytes]:
        """Return (wrapped data key, ciphertext); `context` binds both to their owner."""
        data_key = AESGCM.generate_key(bit_length=256)
        aad = context.encode()
        return _seal(self._kek(key), data_key, aad), _seal(data_key, plaintext.encode(), aad)

    def decrypt(self, wrapped_key: bytes, ciphertext: bytes, *, context: str, key: bytes | None = None) -> str:
        aad = context.encode()
        data_key = _open(self._kek(key), wrapped_key, aad)
        return _open(data_key, ciphertext, aad).decode()

    def rewrap(self, wrapped_key: bytes, *, context: str, old: bytes | None, new: bytes | None) -> bytes:
        """The same data key, wrapped under `new` instead of `old`; its ciphertext stays valid."""
        aad = context.encode()
        return _seal(self._kek(new), _open(self._kek(old), wrapped_key, aad), aad)

    def wrap_material(self, material: bytes, *, context: str) -> bytes:
        """A KMS key version's material, sealed under the master key for storage."""
        return _seal(self._master, material, context.encode())

    def unwrap_material(self, sealed: bytes, *, context: str) -> bytes:
        material = _open(self._master, sealed, context.encode())
        if len(material) != 32:
            raise ValueError(f"key material of {context} is damaged (expected 32 bytes)")
        return material
