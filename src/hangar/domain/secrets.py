"""An environment's secrets: their names, how new ones are made, and the fernet keys Airflow gets.

They are stored encrypted (hangar.store.repository.put_secret) and leave the control plane
only in a component's environment or in a worker bundle.

A fernet rotation (hangar.reconciler.operations.rotate_fernet) keeps the new key under
FERNET_NEXT until every row is re-encrypted; while it is there, Airflow gets "new,old"
(MultiFernet encrypts with the first key and decrypts with either).
"""
from __future__ import annotations

import secrets

from cryptography.fernet import Fernet

FERNET_KEY = "fernet_key"
FERNET_NEXT = "fernet_key_next"  # the new fernet key while a rotation is under way
DB_PASSWORD = "db_password"  # the password of the environment's own database role


def new_secrets() -> dict[str, str]:
    return {
        FERNET_KEY: Fernet.generate_key().decode(),
        "jwt_secret": secrets.token_urlsafe(48),
        "secret_key": secrets.token_urlsafe(32),
        # the password of its own role on the embedded PostgreSQL (used when environments are isolated)
        DB_PASSWORD: secrets.token_urlsafe(32),
    }


def fernet_keys(stored: dict[str, str]) -> str:
    """[core] fernet_key as Airflow should get it now: "new,old" during a rotation, else the key."""
    return ",".join(filter(None, (stored.get(FERNET_NEXT), stored[FERNET_KEY])))
