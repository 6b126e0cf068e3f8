"""An environment's logs and metrics pages.

Logs: a search form over the same filters as GET /api/v1/environments/{name}/logs, checked by the
same domain code (a bad filter is named next to its field), and a live tail that polls for the
lines added after the page's cursor, so that it neither misses nor repeats one. Metrics: charts
of Hangar's own series over 1 hour, 24 hours or 7 days, read from the embedded time series as
GET …/metrics reads them, downsampled on the server (hangar.api.console.charts draws them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlencode

from fastapi import Query, Request
from markupsafe import Markup
from starlette.responses import Response

from hangar.api.console import charts
from hangar.api.console.pages.common import STOP_POLLING, console_router
from hangar.api.console.render import page
from hangar.api.deps import ContextDep, Reader
from hangar.domain import logs, queries
from hangar.domain.metric_history import metric_history
from hangar.errors import EnvironmentNotFound, ValidationFailed
from hangar.logstore.lines import LEVELS
from hangar.schemas.metrics import MetricSeriesPublic
from hangar.store.models import utcnow

router = console_router()

TAIL_DEFAULT, TAIL_MAX = 200, 10_000
POLL_SECONDS = 2


@dataclass
class LogFilters:
    """The form's fields as given (text), so that a refused one is shown as it was typed."""
    component: list[str] = field(default_factory=list)
    level: str = ""
    since: str = ""
    until: str = ""
    grep: str = ""

    def domain(self) -> dict:
        return {"components": self.component, "level": self.level or None, "since": self.since or None,
                "until": self.until or None, "grep": self.grep or None}

    def query(self) -> list[tuple[str, str]]:
        pairs = [("component", name) for name in self.component]
        pairs += [(key, value) for key in ("level", "since", "until", "grep") if (value := getattr(self, key))]
        return pairs


def _filters(component: list[str], level: str, since: str, until: str, grep: str) -> LogFilters:
    return LogFilters(component=[c.strip() for c in component if c.strip()], level=level.strip(),
                      since=since.strip(), until=until.strip(), grep=grep)


def _problems(present: list[str], filters: LogFilters, tail: str) -> dict[str, str]:
    """Each refused field's message, in the domain's words: every filter is checked on its own
    (by the query the API builds), so that all of a form's mistakes show at once."""
    problems = {}
    given = filters.domain()
    for name, key in (("component", "components"), ("level", "level"), ("since", "since"), ("until", "until")):
        alone = {"components": [], "level": None, "since": None, "until": None, "grep": None, key: given[key]}
        try:
            logs.build_query(present, **alone, limit=0)
        except ValidationFailed as problem:
            problems[name] = problem.message
    if not tail.strip().isdigit() or not 1 <= int(tail) <= TAIL_MAX:
        problems["tail"] = f"tail {tail!r} is not a whole number of lines from 1 to {TAIL_MAX:,}"
    return problems


def _choices(present: list[str], chosen: list[str]) -> list[tuple[str, str]]:
    """The component list's (value, label)s: every component that has logged, a role that has
    numbered ones (worker: all of them), and whatever was asked for that is neither."""
    options = [(role, f"{role} (every one)") for role in logs.numbered_roles(present)] + [(name, name) for name in present]
    known = {value for value, _ in options}
    return options + [(name, name) for name in chosen if name not in known]


def _follow_url(name: str, filters: LogFilters, cursor: int) -> str:
    return f"/console/environments/{name}/logs/lines?" + urlencode([("after", str(cursor)), *filters.query()])


@router.get("/environments/{name}/logs", name="console.logs")
def logs_page(
    request: Request, name: str, c: ContextDep, caller: Reader,
    component: list[str] = Query([]), level: str = "", since: str = "", until: str = "", grep: str = "",
    tail: str = str(TAIL_DEFAULT), live: bool = False,
) -> Response:
    present = logs.log_components(c, name=name)
    filters = _filters(component, level, since, until, grep)
    problems = _problems(present, filters, tail)
    lines, cursor = [], 0
    if not problems:
        found, _ = logs.read_logs(c, name=name, limit=int(tail), **filters.domain())
        lines, cursor = found.lines, found.cursor
    here = [*filters.query(), ("tail", tail)]
    return page(request, "logs.html", status_code=400 if problems else 200, title=f"Logs · {name}",
                section="environments", name=name, filters=filters, tail=tail, tail_max=TAIL_MAX,
                live=live, following=live and not problems, problems=problems, lines=lines, levels=LEVELS,
                choices=_choices(present, filters.component), follow_url=_follow_url(name, filters, cursor),
                poll_seconds=POLL_SECONDS, live_on=f"?{urlencode([*here, ('live', '1')])}",
                live_off=f"?{urlencode(here)}")


@router.get("/environments/{name}/logs/lines", name="console.log_lines")
def log_lines(
    request: Request, name: str, c: ContextDep, caller: Reader, after: int = Query(ge=0),
    component: list[str] = Query([]), level: str = "", since: str = "", until: str = "", grep: str = "",
) -> Response:
    """The lines added after the cursor `after`, to append to the page's, and the poller again with
    the cursor they end at (swapped out of band), so the next poll goes on from there."""
    filters = _filters(component, level, since, until, grep)
    try:
        found = logs.read_logs_after(c, name=name, cursor=after, **filters.domain())
    except EnvironmentNotFound as gone:
        if not request.headers.get("hx-request"):
            raise
        return page(request, "_log_lines.html", status_code=STOP_POLLING, lines=[], stopped=gone.message)
    return page(request, "_log_lines.html", lines=found.lines, poll_seconds=POLL_SECONDS,
                follow_url=_follow_url(name, filters, found.cursor), oob=True)


# --- metrics ---

RANGES = {"1h": (60, "1 hour"), "24h": (24 * 60, "24 hours"), "7d": (7 * 24 * 60, "7 days")}
SAMPLES = 4 * charts.MAX_POINTS  # samples read per window: a 7-day one holds 60,480 at the default 10 s
CPU = "hangar_component_cpu_seconds_total"


@dataclass(frozen=True)
class ChartSpec:
    ident: str
    title: str
    unit: str
    metrics: dict[str, str]  # metric -> its line's name; a series with a job or component label is named by it
    how: str = "max"


CHARTS = (
    ChartSpec("heartbeat", "Airflow heartbeat age (scheduler and other jobs)", "seconds",
              {"hangar_airflow_heartbeat_age_seconds": "heartbeat"}),
    ChartSpec("tasks", "Tasks queued and running", "count",
              {"hangar_tasks_queued": "queued", "hangar_tasks_running": "running"}),
    ChartSpec("workers", "Celery workers, current and desired", "count",
              {"hangar_workers_current": "current", "hangar_workers_desired": "desired"}),
    ChartSpec("cpu", "CPU per component (% of one core)", "cpu", {CPU: "cpu"}, how="mean"),
    ChartSpec("memory", "Memory per component", "bytes", {"hangar_component_memory_bytes": "memory"}),
)


def _line_order(series: MetricSeriesPublic) -> tuple:
    job = series.labels.get("job")
    return (job != "scheduler", job or "", series.labels.get("component", ""))


def _chart(spec: ChartSpec, series: list[MetricSeriesPublic], *, start, end, empty: str) -> Markup:
    lines = []
    order = list(spec.metrics)
    for s in sorted((s for s in series if s.name in spec.metrics), key=lambda s: (order.index(s.name), *_line_order(s))):
        times, values = [at for at, _ in s.points], [value for _, value in s.points]
        if s.name == CPU:
            times, values = charts.rate(times, values)
        label = s.labels.get("job") or s.labels.get("component") or spec.metrics[s.name]
        lines.append(charts.line(label, times, values, start=start.timestamp(), end=end.timestamp(), how=spec.how))
    return charts.line_chart(spec.title, lines, start=start, end=end, unit=spec.unit, ident=f"chart-{spec.ident}",
                             empty=empty)


@router.get("/environments/{name}/metrics", name="console.metrics")
def metrics_page(request: Request, name: str, c: ContextDep, caller: Reader,
                 span: str = Query("1h", alias="range")) -> Response:
    env = queries.get_environment(c, name=name)
    context = {"title": f"Metrics · {name}", "section": "environments", "name": name,
               "ranges": [(key, words) for key, (_, words) in RANGES.items()], "span": span,
               "sample_seconds": c.settings.metrics_sample_seconds, "retention_days": c.settings.metrics_retention_days}
    if span not in RANGES:
        problem = f"range {span!r} is not one of {', '.join(RANGES)}"
        return page(request, "metrics.html", status_code=400, problem=problem, charts=[], **context)
    minutes, _ = RANGES[span]
    end = utcnow()
    start = end - timedelta(minutes=minutes)
    names = [metric for spec in CHARTS for metric in spec.metrics]
    series = metric_history(c, name=name, names=names, minutes=minutes, samples=SAMPLES, missing_ok=True)
    drawn = []
    for spec in CHARTS:
        empty = "no samples yet"
        if spec.ident == "workers" and env.executor != "celery":
            empty = f"no samples: the {env.executor} executor runs tasks without Celery workers"
        drawn.append((spec, _chart(spec, series, start=start, end=end, empty=empty)))
    return page(request, "metrics.html", charts=drawn, problem=None, **context)
