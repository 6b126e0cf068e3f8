"""An environment's metrics over the last minutes, from the embedded time series
(hangar.reconciler.loops.metric_sampling writes it)."""
from __future__ import annotations

from datetime import timedelta

from hangar.context import Context
from hangar.errors import ValidationFailed
from hangar.schemas.metrics import MetricSeriesPublic
from hangar.store import metric_samples, repository
from hangar.store.models import utcnow


def metric_history(ctx: Context, *, name: str, names: list[str], minutes: float, samples: int = 20000,
                   missing_ok: bool = False) -> list[MetricSeriesPublic]:
    """Each series of the named metrics (every metric without names), oldest point first, from at
    most `samples` samples spread evenly over the window. A name no sample of the environment
    holds is refused with the names it does hold, unless `missing_ok` (a chart of it is then
    empty)."""
    with ctx.store.session() as session:
        env = repository.get_live(session, name)
        start = utcnow() - timedelta(minutes=minutes)
        rows = [(row.at, row.values) for row in metric_samples.since(session, env.id, start, limit=samples)]
    series: dict[str, MetricSeriesPublic] = {}
    known: set[str] = set()
    parsed: dict[str, tuple[str, dict[str, str]]] = {}  # a key is parsed once, not once per sample
    wanted = {n.strip() for n in names if n.strip()}
    for at, values in rows:
        for key, value in values.items():
            if key not in parsed:
                parsed[key] = metric_samples.parse_key(key)
            metric, labels = parsed[key]
            known.add(metric)
            if wanted and metric not in wanted:
                continue
            entry = series.setdefault(key, MetricSeriesPublic(name=metric, labels=labels, points=[]))
            entry.points.append((at, value))
    unknown = sorted(wanted - known)
    if unknown and not missing_ok:
        held = ", ".join(sorted(known)) or f"none in the last {minutes:g} minutes"
        raise ValidationFailed(f"unknown metric {', '.join(map(repr, unknown))} for {name!r}: it has {held}")
    return sorted(series.values(), key=lambda s: (s.name, sorted(s.labels.items())))
