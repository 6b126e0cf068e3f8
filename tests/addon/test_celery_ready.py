"""hangar_airflow.celery_ready on stand-ins for Celery and its Airflow provider: the configuration is
the provider's own, and worker_ready writes the file HANGAR_READY_FILE names, whole.

Real Celery workers writing their ready file are checked by tests/e2e/test_celery_redis.py."""
from __future__ import annotations

import importlib
import os
import sys
import types

import pytest

from hangar.backend.components import READY_FILE_ENV

MODULE = "hangar.runtime.airflow_addon.hangar_airflow.celery_ready"


class Signal:
    def __init__(self) -> None:
        self.receivers: list = []

    def connect(self, receiver):
        self.receivers.append(receiver)
        return receiver

    def send(self, sender=None) -> None:
        for receiver in self.receivers:
            receiver(signal=self, sender=sender)


@pytest.fixture
def addon(monkeypatch):
    """The module imported afresh over stand-ins: (module, the provider's config, worker_ready)."""
    config = {"broker_url": "redis://127.0.0.1:6379/0", "worker_concurrency": 5}
    signal = Signal()
    for name in ("airflow", "airflow.providers", "airflow.providers.celery", "airflow.providers.celery.executors"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    default = types.ModuleType("airflow.providers.celery.executors.default_celery")
    default.DEFAULT_CELERY_CONFIG = config
    monkeypatch.setitem(sys.modules, default.__name__, default)
    celery, signals = types.ModuleType("celery"), types.ModuleType("celery.signals")
    signals.worker_ready = signal
    monkeypatch.setitem(sys.modules, "celery", celery)
    monkeypatch.setitem(sys.modules, "celery.signals", signals)
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    yield importlib.import_module(MODULE), config, signal
    sys.modules.pop(MODULE, None)


def test_the_configuration_is_the_providers_own(addon):
    module, config, _ = addon
    assert module.CELERY_CONFIG is config  # the provider takes it for its default, unchanged
    assert module.READY_FILE_ENV == READY_FILE_ENV


def test_worker_ready_writes_the_named_file_with_the_workers_pid(addon, tmp_path, monkeypatch):
    module, _, signal = addon
    ready = tmp_path / "run" / "worker-1.ready"
    ready.parent.mkdir()
    monkeypatch.setenv(READY_FILE_ENV, str(ready))  # read when the signal comes, not at import
    signal.send(sender=object())
    assert ready.read_text() == f"{os.getpid()}\n"
    assert [p.name for p in ready.parent.iterdir()] == ["worker-1.ready"]  # nothing left aside


def test_without_the_variable_or_a_writable_folder_nothing_is_raised(addon, tmp_path, monkeypatch, caplog):
    module, _, signal = addon
    monkeypatch.delenv(READY_FILE_ENV, raising=False)
    signal.send()  # the scheduler, or a worker started by hand
    assert not list(tmp_path.iterdir())
    monkeypatch.setenv(READY_FILE_ENV, str(tmp_path / "missing" / "worker-1.ready"))
    signal.send()  # the worker runs on; Hangar keeps it STARTING
    assert "cannot write the ready file" in caplog.text
