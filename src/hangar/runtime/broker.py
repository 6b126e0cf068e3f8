"""The Celery broker shared by Celery environments: reachability, redaction and isolation.

Environments share one broker (Redis or RabbitMQ) and never take each other's tasks:
each has its own default queue and exchange (`hangar.<environment id>`), its workers
consume only that queue, and on Redis every key the environment's Celery writes carries
the prefix `hangar.<environment id>:` (kombu's global_keyprefix), so not even Celery's
control messages meet.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from hangar.errors import BrokerUnreachable

SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")


@dataclass(frozen=True, kw_only=True)
class Isolation:
    queue: str
    # [celery_broker_transport_options] for the environment's airflow.cfg
    transport_options: dict[str, str]


def isolation(url: str, env_id: str) -> Isolation:
    queue = f"hangar.{env_id}"
    options = {}
    if _scheme(url).startswith("redis"):
        options["global_keyprefix"] = f"{queue}:"
    return Isolation(queue=queue, transport_options=options)


def redact(url: str) -> str:
    """The URL with its password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


def check_url(url: str) -> None:
    if _scheme(url) not in SCHEMES:
        raise BrokerUnreachable(f"broker URL {redact(url)!r} is not a Redis or RabbitMQ URL "
                                "(redis://host:6379/0 or amqp://user:password@host:5672//)")


def check_reachable(url: str, *, timeout: float = 5.0) -> None:
    """Connect to the broker once; raise BrokerUnreachable with the broker client's own error."""
    from kombu import Connection

    check_url(url)
    try:
        with Connection(url, connect_timeout=timeout, transport_options={"max_retries": 0}) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
            if _scheme(url).startswith("redis"):
                connection.default_channel.client.ping()
    except Exception as exc:  # the client's own exception names the cause (refused, auth, vhost)
        message = str(exc).replace(url, redact(url))
        raise BrokerUnreachable(f"the Celery broker {redact(url)} cannot be reached: {type(exc).__name__}: {message}") from None
