"""Envelope encryption of secrets at rest under a master key in HANGAR_HOME.

Each secret gets a fresh 256-bit data key; the data key is wrapped (AES-GCM) under
the master key and stored beside the ciphertext. Rotating the master key only
re-wraps data keys. The master key file is created 0600 and never logged.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12


def write_private(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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


class Envelope:
    def __init__(self, master_key: bytes) -> None:
        self._master = master_key

    def encrypt(self, plaintext: str, *, context: str) -> tuple[bytes, bytes]:
        """Return (wrapped data key, ciphertext); `context` binds both to their owner."""
        data_key = AESGCM.generate_key(bit_length=256)
        aad = context.encode()
        return _seal(self._master, data_key, aad), _seal(data_key, plaintext.encode(), aad)

    def decrypt(self, wrapped_key: bytes, ciphertext: bytes, *, context: str) -> str:
        aad = context.encode()
        data_key = _open(self._master, wrapped_key, aad)
        return _open(data_key, ciphertext, aad).decode()
