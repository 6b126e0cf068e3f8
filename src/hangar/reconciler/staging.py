"""Staging: everything a revision needs, built next to what runs, and then made live.

`stage` builds the runtime, the metadata database, the plugins folder, the startup script
and the configuration text of one revision, and changes nothing that runs. `activate`
makes a staged revision's configuration and DAGs the ones Airflow reads. Every part is
idempotent: a cached runtime is reused, a ready template is kept and an existing database
is not copied twice, so an operation interrupted by a crash is simply staged again.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from secrets import token_urlsafe

from hangar.backend import confinement, identity
from hangar.backend.identity import RunAs
from hangar.buckets import store as buckets
from hangar.context import Context
from hangar.domain.limits import environment_limits
from hangar.domain import git_dags
from hangar.errors import FolderUnreadable, GitSyncFailed, PermanentError, RuntimeBuildFailed
from hangar.reconciler.journal import Journal
from hangar.reconciler.port_claims import claim_ports
from hangar.runtime import airflow_config, gitsync, metadb, plugins, startup
from hangar.runtime.venvs import Runtime, builder_for, ensure_runtime
from hangar.schemas.spec import Executor, Spec
from hangar.store import repository


@dataclass(frozen=True, kw_only=True)
class Target:
    """What one revision of one environment needs to run."""

    env_id: str
    name: str
    revision: int
    spec: Spec
    runtime: Runtime
    layout: airflow_config.EnvironmentLayout
    ports: dict[str, int]
    db_url: str
    dags: str  # the folder the DAGs link points at
    plugins_dir: Path  # this revision's plugins folder (hangar.runtime.plugins.stage)
    startup_script: Path | None
    cfg_text: str  # airflow.cfg as this revision renders it; written when the revision goes live
    run_as: RunAs | None = None  # the environment's own system user (isolation), else None


def stage(ctx: Context, journal: Journal, revision: int) -> Target:
    """Everything `revision` needs, built next to what runs: runtime, metadata database,
    plugins folder, startup script and configuration text. Nothing running changes."""
    settings, env_id = ctx.settings, journal.work.env_id
    env_ports = claim_ports(ctx.store, env_id, start=settings.env_port_start, end=settings.env_port_end)
    with ctx.store.session() as session:
        env = repository.get_by_id(session, env_id)
        spec = repository.get_spec(session, env.id, revision)
        name, database, epoch = env.name, env.database_name, env.runtime_epoch
        external = repository.get_secrets(session, ctx.envelope, env_id=env.id).get("metadata_db_url")

    layout = layout_of(ctx, env_id)
    layout.create()
    run_as = None
    if settings.isolated:
        tasks, memory = environment_limits(spec, max_processes=settings.environment_max_processes,
                                           memory_mib=settings.environment_memory_mib)
        run_as = identity.ensure_user(env_id).confined(env_id, confinement.Limits(tasks, memory))
    plugin_archive = None
    if spec.source is not None:
        spec, plugin_archive = from_bucket(ctx, journal, spec, layout)
    elif spec.git is not None:
        spec = from_git(ctx, journal, spec, env_id=env_id, run_as=run_as)
    started = time.monotonic()
    try:
        runtime = ensure_runtime(
            root=settings.runtimes_dir, python=settings.runtime_python, airflow_version=spec.airflow_version,
            requirements=spec.requirements, progress=journal.throttled(), epoch=epoch,
            celery=spec.executor == Executor.celery, builder=builder_for(settings.isolated),
        )
    except RuntimeBuildFailed:
        ctx.telemetry.runtime_build_duration.labels("failed").observe(time.monotonic() - started)
        raise
    if runtime.built:
        ctx.telemetry.runtime_build_duration.labels("built").observe(time.monotonic() - started)
    journal.record(f"runtime {runtime.key} ready")
    if external:
        db_url = external
    else:
        assert database is not None
        if ctx.postgres.database_state(database) is None:  # an update's database exists already
            template = f"hangar_tpl_{runtime.key}"
            ctx.postgres.ensure_template(template, runtime=runtime, progress=journal.progress)
            ctx.postgres.create_from_template(database, template=template)
        if run_as is not None:  # reached as its own role, over loopback TCP
            password = db_password(ctx, env_id)
            ctx.postgres.ensure_role(database, password=password)
            db_url = ctx.postgres.role_url(database, password=password)
        else:
            db_url = ctx.postgres.url(database)
        journal.record(f"metadata database {database} ready")
    if run_as is not None and spec.plugins and not identity.can_read(Path(spec.plugins), run_as):
        # copied by the control plane, which reads what the environment may not
        raise FolderUnreadable("plugins folder", spec.plugins, run_as.name, run_as.uid)
    plugins_dir = plugins.stage(layout.root / "plugins", source=Path(spec.plugins) if spec.plugins else None,
                                archive=plugin_archive)
    script = startup.install_script(layout.root / "startup", spec.startup_script) if spec.startup_script else None
    assert spec.dags is not None
    if run_as is not None:
        identity.hand_over(layout.root, run_as)
        if not identity.can_read(Path(spec.dags), run_as):
            raise FolderUnreadable("DAGs folder", spec.dags, run_as.name, run_as.uid)
    return Target(env_id=env_id, name=name, revision=revision, spec=spec, runtime=runtime, layout=layout,
                  ports=env_ports, db_url=db_url, dags=spec.dags, plugins_dir=plugins_dir, startup_script=script,
                  run_as=run_as,
                  cfg_text=airflow_config.render_cfg(spec=spec, layout=layout, ports=env_ports, plugins_dir=plugins_dir,
                                                     drain_seconds=settings.drain_seconds,
                                                     broker_url=settings.celery_broker_url,
                                                     statsd_port=settings.statsd_port))


def activate(target: Target) -> None:
    """The revision's configuration and DAGs become the ones Airflow reads. Components
    that read nothing that changed go on; the rest are replaced by the launch (hangar.reconciler.launching)."""
    if target.spec.external_metadata_db:
        metadb.migrate(runtime=target.runtime, url=target.db_url, run_as=target.run_as)
    airflow_config.write_cfg_text(target.layout, target.cfg_text)
    target.layout.point_dags_at(target.dags)
    if target.run_as is not None:
        identity.hand_over(target.layout.root, target.run_as)


def from_bucket(ctx: Context, journal: Journal, spec: Spec, layout: airflow_config.EnvironmentLayout) -> tuple[Spec, bytes | None]:
    """The spec as it runs: DAGs mirrored from the bucket, requirements and plugins at their pinned versions."""
    source = spec.source
    assert source is not None
    result = buckets.materialize_prefix(ctx, bucket=source.bucket, prefix=source.dag_s3_path,
                                        target_dir=layout.dags)
    journal.record(f"DAGs synced from s3://{source.bucket}/{source.dag_s3_path}: {result}")
    changes: dict = {"dags": str(layout.dags)}
    if source.requirements_s3_path:
        changes["requirements"] = buckets.get_object(
            ctx, bucket=source.bucket, key=source.requirements_s3_path,
            version_id=source.requirements_s3_object_version).data.decode()
    if source.startup_script_s3_path:
        changes["startup_script"] = buckets.get_object(
            ctx, bucket=source.bucket, key=source.startup_script_s3_path,
            version_id=source.startup_script_s3_object_version).data.decode(errors="replace")
    archive = None
    if source.plugins_s3_path:
        archive = buckets.get_object(ctx, bucket=source.bucket, key=source.plugins_s3_path,
                                     version_id=source.plugins_s3_object_version).data
    return spec.model_copy(update=changes), archive


def from_git(ctx: Context, journal: Journal, spec: Spec, *, env_id: str, run_as: RunAs | None) -> Spec:
    """The spec as it runs: DAGs from the repository's commit now on its ref. A failed sync fails
    the step with its cause, unless an earlier commit of the same source is there to keep serving
    (an update of other fields while the git host is down goes on with the DAGs it has)."""
    git = spec.git
    assert git is not None
    root = git_dags.git_root(ctx, env_id)
    root.mkdir(parents=True, exist_ok=True)
    try:
        result = gitsync.sync(root=root, source=git_dags.source_for(ctx, git), timeout=ctx.settings.git_timeout)
        journal.record(f"DAGs from {git.url} {git.ref}: commit {result.commit[:12]}")
    except GitSyncFailed as exc:
        state = gitsync.read_state(root)
        if state.commit is None or (state.url, state.ref, state.subdir) != (git.url, git.ref, git.subdir):
            raise PermanentError(f"DAGs from git: {exc.message}") from None
        journal.record(f"DAGs from {git.url} {git.ref}: kept commit {state.commit[:12]}; the sync failed: {exc.message}")
    # readable by the environment's user alone (group), written by the control plane alone
    if run_as is not None:
        os.chown(root, os.geteuid(), run_as.gid)
    root.chmod(0o750 if run_as is not None else 0o755)
    return spec.model_copy(update={"dags": str(root / "current")})


def db_password(ctx: Context, env_id: str) -> str:
    """The password of the environment's database role; made now for one created before roles."""
    with ctx.store.session() as session:
        password = repository.get_secrets(session, ctx.envelope, env_id=env_id).get("db_password")
        if password is None:
            password = token_urlsafe(32)
            repository.put_secret(session, ctx.envelope, env_id=env_id, name="db_password", value=password)
    return password


def layout_of(ctx: Context, env_id: str) -> airflow_config.EnvironmentLayout:
    return airflow_config.EnvironmentLayout(root=ctx.settings.environments_dir / env_id)


def prepare(ctx: Context, journal: Journal, revision: int) -> Target:
    """`stage`, and make its files the live ones (for a revision that is about to run)."""
    target = stage(ctx, journal, revision)
    activate(target)
    return target
