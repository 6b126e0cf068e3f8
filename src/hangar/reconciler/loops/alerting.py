"""Alert evaluation: every `alert_interval` seconds each rule is checked in each environment it
watches (hangar.reconciler.loops.alert_conditions), and incidents follow what holds:

- a condition that holds and has no open incident opens one, and queues one alert;
- an open incident whose condition no longer holds is resolved, and queues one resolved notice;
- a check that cannot tell leaves its incidents as they are.

So each incident alerts once and resolves once, however long it lasts. Deliveries are sent,
and retried, by hangar.reconciler.loops.alert_delivery. One rule's or one environment's
failure never stops the others' checks.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime

from hangar.context import Context
from hangar.domain.status import Status
from hangar.reconciler.loops import alert_conditions
from hangar.reconciler.loops.alert_conditions import Seen
from hangar.domain.metadata_access import metadata_url
from hangar.runtime import metadb
from hangar.schemas.alerts import AlertEvent
from hangar.schemas.spec import Executor
from hangar.schemas.versions import parse_version
from hangar.store import alerts as store, repository
from hangar.store.alert_models import AlertIncidentRow, AlertRuleRow
from hangar.store.models import utcnow

log = logging.getLogger(__name__)
NEEDS_DATABASE = {AlertEvent.task_queued_too_long, AlertEvent.task_running_too_long, AlertEvent.dag_run_failed,
                  AlertEvent.dag_import_errors}
SERVING = (Status.AVAILABLE, Status.UNAVAILABLE, Status.UPDATING, Status.UPDATE_FAILED, Status.MAINTENANCE,
           Status.CREATING_SNAPSHOT, Status.ROLLING_BACK)


def notice(rule: AlertRuleRow, incident: AlertIncidentRow, environment: str, state: str, now: datetime) -> dict:
    return {"alert": rule.name, "event": rule.event, "state": state, "environment": environment,
            "summary": incident.summary, "incident_id": incident.id, "opened_at": incident.opened_at.isoformat(),
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None, "at": now.isoformat()}


class Alerting:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._connections: dict[str, object] = {}  # env_id -> psycopg2 connection to its metadata database

    def tick(self) -> None:
        now = utcnow()
        with self.ctx.store.session() as session:
            rules = store.list_rules(session)
            if not rules:
                return
            envs = {env.id: env for env in repository.list_live(session)}
            wanted = {env_id for rule in rules for env_id in ([rule.environment_id] if rule.environment_id else envs)}
            database = {env_id for rule in rules if AlertEvent(rule.event) in NEEDS_DATABASE
                        for env_id in ([rule.environment_id] if rule.environment_id else envs)}
            seen = {env_id: self._see(session, envs[env_id], env_id in database) for env_id in wanted if env_id in envs}
            for rule in rules:
                for env_id in ([rule.environment_id] if rule.environment_id else list(envs)):
                    if env_id not in seen:
                        continue
                    try:
                        held = alert_conditions.holds(session, rule, seen[env_id], now)
                    except Exception:  # one check's failure never stops the others
                        log.exception("checking alert %s in environment %s failed", rule.name, env_id)
                        self._forget(env_id)
                        continue
                    if held is not None:
                        self._follow(session, rule, envs[env_id], held, now)
        for env_id in set(self._connections) - set(envs):
            self._forget(env_id)

    def _see(self, session, env, with_database: bool) -> Seen:
        spec = repository.get_spec(session, env.id, env.running_revision or env.revision)
        processes = self.ctx.backend.get(env.id)
        cursor = None
        if with_database and env.status in SERVING and env.running_revision is not None:
            try:
                connection = self._connections.get(env.id)
                if connection is None:
                    connection = self._connections[env.id] = metadb.connect(
                        metadata_url(self.ctx, env.id, env.database_name))
                    connection.autocommit = True
                cursor = connection.cursor()
            except Exception:
                log.warning("alerts: the metadata database of environment %s is out of reach", env.id)
                self._forget(env.id)
        return Seen(env=env, major=parse_version(spec.airflow_version)[0],
                    celery_max=spec.max_workers if spec.executor == Executor.celery else None,
                    airflow_health=processes.airflow_health if processes is not None else None, cursor=cursor)

    def _follow(self, session, rule: AlertRuleRow, env, held: dict[str, str], now: datetime) -> None:
        open_ = {incident.key: incident for incident in store.open_incidents(session, rule_id=rule.id, env_id=env.id)}
        for key, summary in held.items():
            if key not in open_:
                incident = AlertIncidentRow(rule_id=rule.id, environment_id=env.id, key=key, summary=summary[:2000],
                                            opened_at=now)
                session.add(incident)
                session.flush()
                store.add_delivery(session, rule_id=rule.id, incident_id=incident.id, environment=env.name,
                                   kind="alert", payload=notice(rule, incident, env.name, "firing", now))
                log.warning("alert %s: %s", rule.name, summary, extra={"env_id": env.id})
        for key, incident in open_.items():
            if key not in held:
                incident.resolved_at = now
                store.add_delivery(session, rule_id=rule.id, incident_id=incident.id, environment=env.name,
                                   kind="resolved", payload=notice(rule, incident, env.name, "resolved", now))
                log.info("alert %s resolved: %s", rule.name, incident.summary, extra={"env_id": env.id})

    def _forget(self, env_id: str) -> None:
        connection = self._connections.pop(env_id, None)
        if connection is not None:
            metadb.close_quietly(connection)


def loop(ctx: Context, *, stop: threading.Event) -> None:
    alerting = Alerting(ctx)
    while not stop.wait(ctx.settings.alert_interval):
        try:
            alerting.tick()
        except Exception:
            log.exception("alert evaluation failed; trying again")
