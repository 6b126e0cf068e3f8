"""How the control plane's loops reach an environment's metadata database, and with whose rights."""
from __future__ import annotations

from hangar.context import Context
from hangar.store import repository


def metadata_url(ctx: Context, env_id: str, database: str | None) -> str:
    """The environment's external database, or its embedded one: as the environment's own role
    when isolated (its database is its code's to shape, a view or a function, so the control plane
    reads it with no more rights than the environment has)."""
    with ctx.store.session() as session:
        secrets = repository.get_secrets(session, ctx.envelope, env_id=env_id)
    if secrets.get("metadata_db_url"):
        return secrets["metadata_db_url"]
    assert database is not None
    if ctx.settings.isolated and secrets.get("db_password"):
        return ctx.postgres.role_url(database, password=secrets["db_password"])
    return ctx.postgres.url(database)
