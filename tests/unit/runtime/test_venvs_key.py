"""runtime_key: one runtime per (python, airflow version, requirements), shared by equal inputs."""
from __future__ import annotations

import re

import pytest

from hangar.runtime.venvs import base_packages, runtime_key

REQS = "requests==2.32.0\npandas>=2\napache-airflow-providers-http\n"


def key(python: str = "3.11", airflow_version: str = "3.0.0", requirements: str | None = REQS) -> str:
    return runtime_key(python=python, airflow_version=airflow_version, requirements=requirements)


def test_key_is_stable_and_short_hex():
    assert key() == key()
    assert re.fullmatch(r"[0-9a-f]{16}", key())


def test_key_ignores_line_order_blank_lines_and_surrounding_whitespace():
    shuffled = "\n\n  apache-airflow-providers-http  \npandas>=2\n\n\nrequests==2.32.0"
    assert key(requirements=shuffled) == key()
    assert key(requirements="a\r\nb\r\n") == key(requirements="b\na")


def test_no_requirements_is_the_same_as_empty_requirements():
    assert key(requirements=None) == key(requirements="") == key(requirements="\n  \n")


@pytest.mark.parametrize(
    "changed",
    [
        {"python": "3.12"},
        {"airflow_version": "3.0.1"},
        {"airflow_version": "2.11.2"},
        {"requirements": REQS + "numpy\n"},
        {"requirements": REQS.replace("2.32.0", "2.32.1")},
        {"requirements": None},
    ],
)
def test_key_changes_with_each_input(changed):
    assert key(**changed) != key()


def test_inputs_do_not_run_together():
    # the separator keeps ("3.1", "13.0.0") apart from ("3.11", "3.0.0")
    assert runtime_key(python="3.1", airflow_version="13.0.0", requirements=None) != key(requirements=None)
    assert key(requirements="ab") != key(requirements="a\nb")


def test_base_packages_pin_airflow_to_the_version():
    assert base_packages("3.0.0")[0] == "apache-airflow[postgres,statsd]==3.0.0"
