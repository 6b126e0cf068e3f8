"""The reconciler's work for operations of kinds snapshot, restore and clone.

Each takes the Reconciler and reuses its steps (_prepare, _launch, _wait_ready,
_finish, _step), so a snapshot operation runs on the environment's queue like an
update and never races one. Like every handler they are safe to run again after a
crash: a recorded snapshot is not taken twice, an unpack starts from an empty
folder, and a database load replaces the database whole.

Order in a restore: the archive is verified and unpacked, and the revision staged
(runtime, configuration, plugins) while the old revision still runs; only then are the components stopped and the
database replaced. A corrupted archive or a runtime that does not build therefore
leaves the environment running as it was.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from hangar.domain import snapshots
from hangar.domain.snapshots import CLONE, RESTORE, SNAPSHOT
from hangar.domain.status import Status
from hangar.reconciler.queue import Work
from hangar.runtime.snapshot_archive import DB_DUMP
from hangar.store import repository

if TYPE_CHECKING:
    from hangar.reconciler.handlers import Reconciler


def take(reconciler: Reconciler, work: Work, revision: int) -> None:
    """CREATING_SNAPSHOT -> AVAILABLE; the components keep running and stay watched."""
    ctx = reconciler.ctx
    assert work.operation_id is not None
    snapshot_id, kind = snapshots.requested_snapshot(ctx, operation_id=work.operation_id)
    if ctx.backend.get(work.env_id) is None:  # the control plane restarted mid-snapshot: adopt the processes
        reconciler.resume(work.env_id, revision)
    reconciler._step(work, f"taking {kind} snapshot {snapshot_id} (metadata database, DAGs, plugins)")
    snapshots.take_snapshot(ctx, env_id=work.env_id, revision=revision, kind=kind, snapshot_id=snapshot_id)
    reconciler._finish(work, revision, Status.AVAILABLE, f"{kind} snapshot {snapshot_id} taken")


def restore(reconciler: Reconciler, work: Work, revision: int) -> None:
    """UPDATING -> AVAILABLE running `revision` (the snapshot's spec) on the snapshot's database."""
    ctx = reconciler.ctx
    assert work.operation_id is not None
    snapshot_id, _ = snapshots.requested_snapshot(ctx, operation_id=work.operation_id)
    ctx.backend.watch(work.env_id, False)
    reconciler._step(work, f"verifying and unpacking snapshot {snapshot_id}")
    folder = snapshots.unpack(ctx, env_id=work.env_id, snapshot_id=snapshot_id)
    target = reconciler._stage(work, revision)  # runtime and files built while the old revision serves
    reconciler._step(work, "stopping components")
    ctx.backend.stop_environment(work.env_id, target.layout.root)
    reconciler._step(work, f"loading the metadata database from snapshot {snapshot_id}")
    snapshots.load_database(ctx, env_id=work.env_id, dump=folder / DB_DUMP)
    snapshots.adopt_fernet_key(ctx, env_id=work.env_id, snapshot_id=snapshot_id)
    (folder / DB_DUMP).unlink(missing_ok=True)
    reconciler._activate(target)
    reconciler._wait_ready(work, reconciler._launch(work, target))
    reconciler._finish(work, revision, Status.AVAILABLE, f"snapshot {snapshot_id} restored as revision {revision}")


def clone(reconciler: Reconciler, work: Work, revision: int) -> None:
    """CREATING -> AVAILABLE: a new environment whose database is loaded from the snapshot before its first launch.

    The database is loaded before _prepare, which then keeps it (an existing database is
    not copied from the template)."""
    ctx = reconciler.ctx
    assert work.operation_id is not None
    snapshot_id, _ = snapshots.requested_snapshot(ctx, operation_id=work.operation_id)
    ctx.backend.watch(work.env_id, False)
    reconciler._step(work, f"verifying and unpacking snapshot {snapshot_id}")
    folder = snapshots.unpack(ctx, env_id=work.env_id, snapshot_id=snapshot_id)
    with ctx.store.session() as session:
        database = repository.get_by_id(session, work.env_id).database_name
    reconciler._step(work, f"loading metadata database {database} from snapshot {snapshot_id}")
    snapshots.load_database(ctx, env_id=work.env_id, dump=folder / DB_DUMP)
    (folder / DB_DUMP).unlink(missing_ok=True)
    target = reconciler._prepare(work, revision)
    reconciler._wait_ready(work, reconciler._launch(work, target))
    reconciler._finish(work, revision, Status.AVAILABLE, f"cloned from snapshot {snapshot_id}")


def handlers(reconciler: Reconciler) -> dict:
    """Reconciler.handle's entries for these operation kinds."""
    return {SNAPSHOT: lambda work, revision: take(reconciler, work, revision),
            RESTORE: lambda work, revision: restore(reconciler, work, revision),
            CLONE: lambda work, revision: clone(reconciler, work, revision)}
