"""DAG sync: environments whose DAGs live in a bucket follow it, as MWAA follows DagS3Path.

Every DAG_SYNC_SECONDS the bucket prefix of each running environment's DAGs is mirrored
into its DAGs folder; Airflow sees the change as it sees any file change."""
from __future__ import annotations

import logging
import threading

from hangar.buckets import store as buckets
from hangar.context import Context
from hangar.domain.status import Status
from hangar.store import repository

log = logging.getLogger(__name__)
DAG_SYNC_SECONDS = 10.0
_SYNCED = (Status.AVAILABLE, Status.UNAVAILABLE, Status.UPDATE_FAILED)


def sync(ctx: Context) -> None:
    with ctx.store.session() as session:
        targets = []
        for env in repository.list_live(session):
            if env.status in _SYNCED and env.running_revision:
                spec = repository.get_spec(session, env.id, env.running_revision)
                if spec.source is not None:
                    targets.append((env.id, spec.source))
    for env_id, source in targets:
        try:
            buckets.materialize_prefix(ctx, bucket=source.bucket, prefix=source.dag_s3_path,
                                       target_dir=ctx.settings.environments_dir / env_id / "dags")
        except Exception:  # one environment's bucket trouble never stops the others' sync
            log.exception("syncing DAGs of environment %s failed", env_id)


def loop(ctx: Context, *, stop: threading.Event) -> None:
    """`sync` every DAG_SYNC_SECONDS until `stop`."""
    while not stop.wait(DAG_SYNC_SECONDS):
        sync(ctx)
