"""Which Airflow CLI commands ``POST /aws_mwaa/cli`` runs, and for which roles.

Pure standard library, like hangar_airflow.cli_commands, which parses and runs a request
once ``check_command`` has allowed it.

Allow-list source: the "Supported commands" table of AWS's "Apache Airflow CLI command
reference" for MWAA (the v2.x table retrieved was: cheat-sheet; dags delete, list-jobs,
list-runs, next-execution, pause, report, show, state, test, trigger, unpause; providers
behaviours, get, hooks, links, list, widgets; roles create, list; tasks clear,
failed-deps, list, render, state, states-for-dag-run, test; variables delete, get, list,
set; version), with MWAA's option restrictions (no ``dags show --save``, no ``dags test
--save-dagrun/--show-dagrun``). Hangar additions, marked ``hangar`` below: ``dags list``
and ``dags list-import-errors`` (MWAA marked DAG-parsing commands unsupported only
because of its worker/webserver split), ``dags details``, ``dags show-dependencies``,
``dags reserialize``, ``jobs check``, ``pools get/list/set/delete``, ``connections
list/get/add/delete`` and, on Airflow 3 only, ``dags clear``, ``backfill create`` and
``assets list/details/materialize``. ``roles`` exists only on Airflow 2 (FAB).

Deliberately not allowed: anything that reads or writes files on the server
(``variables/pools/connections import|export``, ``--subdir``/``-S`` anywhere, ``dags show
--save``, ``dags test --save-dagrun``, Airflow 3 ``dags test --dagfile-path``), anything
interactive (``tasks test --post-mortem``), ``tasks test --env-vars`` (a USER could
redirect a task's proxies/endpoints and capture connection credentials they may not
read), ``config`` (would print the environment's
secrets, including the JWT signing key), ``db``, ``users``, ``tasks run``, daemons, and
Airflow 2 ``dags backfill`` (runs the backfill inside the CLI process, which the
timeout would kill half-way; Airflow 3's ``backfill create`` only records it).

Role mapping (token ``role`` claim, ordered VIEWER < USER < OP < ADMIN, a role may run
everything at or below it). It follows Airflow's own permission model (FAB's
Viewer/User/Op/Admin on Airflow 2, SimpleAuthManager on Airflow 3):
- VIEWER: read-only DAG/run/task/pool/asset information: version, cheat-sheet, jobs check,
  dags list|list-runs|list-jobs|list-import-errors|next-execution|report|show|
  show-dependencies|state|details, tasks list|state|states-for-dag-run|failed-deps|render,
  pools list|get, assets list|details.
- USER: also changes DAG runs/task instances: dags trigger|pause|unpause|delete|test|clear,
  tasks clear|test, backfill create.
- OP: also variables get|list|set|delete, connections list|get|add|delete, pools
  set|delete, providers *, dags reserialize, assets materialize. Reading variables and
  connections is OP too, as in Airflow (Viewer/User cannot read them in the UI either;
  they commonly hold credentials).
- ADMIN: also roles list|create (Airflow 2).
The role comes from the signed token (the CLI subprocess itself runs with the web
server's full database access; this module is the only gate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ROLE_ORDER = {"VIEWER": 0, "USER": 1, "OP": 2, "ADMIN": 3}

VIEWER, USER, OP, ADMIN = "VIEWER", "USER", "OP", "ADMIN"
AF2, AF3, BOTH = frozenset({2}), frozenset({3}), frozenset({2, 3})

# Options refused with every command: they make the CLI parse an arbitrary server path.
GLOBAL_DENIED_OPTIONS = ("--subdir", "-S")


@dataclass(frozen=True)
class CommandRule:
    min_role: str
    majors: frozenset[int] = BOTH
    denied_options: tuple[str, ...] = ()  # "--long" (abbreviations refused too) or "-x"
    origin: str = "mwaa"  # "mwaa": on MWAA's supported list; "hangar": Hangar addition


_SHOW_DENIED = ("--save", "-s", "--imgcat")

COMMANDS: dict[str, CommandRule] = {
    # VIEWER: read-only
    "version": CommandRule(VIEWER),
    "cheat-sheet": CommandRule(VIEWER),
    "jobs check": CommandRule(VIEWER, origin="hangar"),
    "dags list": CommandRule(VIEWER, origin="hangar"),
    "dags list-import-errors": CommandRule(VIEWER, origin="hangar"),
    "dags list-jobs": CommandRule(VIEWER),
    "dags list-runs": CommandRule(VIEWER),
    "dags next-execution": CommandRule(VIEWER),
    "dags report": CommandRule(VIEWER),
    "dags show": CommandRule(VIEWER, denied_options=_SHOW_DENIED),
    "dags show-dependencies": CommandRule(VIEWER, denied_options=_SHOW_DENIED, origin="hangar"),
    "dags state": CommandRule(VIEWER),
    "dags details": CommandRule(VIEWER, origin="hangar"),
    "tasks list": CommandRule(VIEWER),
    "tasks state": CommandRule(VIEWER),
    "tasks states-for-dag-run": CommandRule(VIEWER),
    "tasks failed-deps": CommandRule(VIEWER),
    "tasks render": CommandRule(VIEWER),
    "pools list": CommandRule(VIEWER, origin="hangar"),
    "pools get": CommandRule(VIEWER, origin="hangar"),
    "assets list": CommandRule(VIEWER, AF3, origin="hangar"),
    "assets details": CommandRule(VIEWER, AF3, origin="hangar"),
    # USER: DAG runs and task instances
    "dags trigger": CommandRule(USER),
    "dags pause": CommandRule(USER),
    "dags unpause": CommandRule(USER),
    "dags delete": CommandRule(USER),
    "dags test": CommandRule(
        USER,
        denied_options=("--save-dagrun", "--show-dagrun", "--imgcat-dagrun", "--dagfile-path", "-f"),
    ),
    "dags clear": CommandRule(USER, AF3, origin="hangar"),
    "backfill create": CommandRule(USER, AF3, origin="hangar"),
    "tasks clear": CommandRule(USER),
    # --env-vars would let a USER point a task's HTTP(S)_PROXY etc. at themselves and
    # capture the credentials of connections they may not read.
    "tasks test": CommandRule(USER, denied_options=("--post-mortem", "-m", "--env-vars")),
    # OP: variables, connections, pools, providers
    "variables get": CommandRule(OP),
    "variables list": CommandRule(OP),
    "variables set": CommandRule(OP),
    "variables delete": CommandRule(OP),
    "connections list": CommandRule(OP, origin="hangar"),
    "connections get": CommandRule(OP, origin="hangar"),
    "connections add": CommandRule(OP, origin="hangar"),
    "connections delete": CommandRule(OP, origin="hangar"),
    "pools set": CommandRule(OP, origin="hangar"),
    "pools delete": CommandRule(OP, origin="hangar"),
    "providers list": CommandRule(OP),
    "providers get": CommandRule(OP),
    "providers hooks": CommandRule(OP),
    "providers links": CommandRule(OP),
    "providers widgets": CommandRule(OP),
    "providers behaviours": CommandRule(OP),
    "dags reserialize": CommandRule(OP, origin="hangar"),
    "assets materialize": CommandRule(OP, AF3, origin="hangar"),
    # ADMIN: FAB roles (Airflow 2 only; Airflow 3 without the FAB provider has no `roles`)
    "roles list": CommandRule(ADMIN, AF2),
    "roles create": CommandRule(ADMIN, AF2),
}

# Commands that are a single word; all others are "<group> <subcommand>".
_SINGLE_WORD = frozenset(name for name in COMMANDS if " " not in name)


class CliRejected(Exception):
    """A request refused before anything ran; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str, command: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.command = command

    def payload(self) -> dict[str, str | None]:
        return {"error": self.message, "command": self.command}


def command_name(args: Sequence[str]) -> str:
    """``dags list`` for ``["dags", "list", ...]``, ``version`` for ``["version"]``."""
    if not args:
        return ""
    if args[0] in _SINGLE_WORD or len(args) == 1 or args[1].startswith("-"):
        return args[0]
    return f"{args[0]} {args[1]}"


def allowed_commands(role: str, airflow_major: int) -> list[str]:
    """The commands ``role`` may run on this Airflow major version, sorted."""
    level = ROLE_ORDER.get(role, -1)
    return sorted(
        name
        for name, rule in COMMANDS.items()
        if airflow_major in rule.majors and ROLE_ORDER[rule.min_role] <= level
    )


def _looks_like_option(token: str) -> bool:
    # Mirrors argparse: "-", "--" and tokens with a space are never options.
    return token.startswith("-") and token not in ("-", "--") and " " not in token


def denied_option(token: str, denied: Sequence[str]) -> str | None:
    """The denied option ``token`` would select, else None.

    Long options are matched like argparse matches them: ``--sav`` and ``--save=x`` select
    ``--save`` (Airflow's parser allows unambiguous abbreviations). A single-dash token is a
    cluster of short flags possibly followed by a value (``-vs``, ``-sFILE``), so it is
    refused if any of its characters is a denied short flag (conservative).
    """
    if not _looks_like_option(token):
        return None
    if token.startswith("--"):
        name = token.split("=", 1)[0]
        for option in denied:
            if option.startswith("--") and option.startswith(name):
                return option
        return None
    letters = token[1:]
    for option in denied:
        if len(option) == 2 and option[0] == "-" and option[1] in letters:
            return option
    return None


def check_command(args: Sequence[str], *, role: str, airflow_major: int) -> str:
    """Return the command's name if ``role`` may run ``args``; else raise ``CliRejected``."""
    name = command_name(args)
    rule = COMMANDS.get(name)
    if rule is None or airflow_major not in rule.majors:
        raise CliRejected(
            400, f"Airflow CLI command {name!r} is not allowed on this environment (Airflow {airflow_major})", name
        )
    if role not in ROLE_ORDER:
        raise CliRejected(403, f"unknown role {role!r}", name)
    denied = (*GLOBAL_DENIED_OPTIONS, *rule.denied_options)
    for token in args[len(name.split()):]:
        option = denied_option(token, denied)
        if option is not None:
            raise CliRejected(400, f"option {option} is not allowed with {name!r}", name)
    if ROLE_ORDER[role] < ROLE_ORDER[rule.min_role]:
        raise CliRejected(403, f"{name!r} needs role {rule.min_role} or higher; this token's role is {role}", name)
    return name
