"""Requirements text checks: Airflow itself is pinned by Hangar."""
from __future__ import annotations

import pytest

from hangar.schemas.requirements import PINNED, canonical, check_requirements, requirement_name
from hangar.errors import ValidationFailed

PINNING_LINES = [
    "apache-airflow",
    "apache-airflow==3.0.0",
    "Apache_Airflow==2.0",
    "APACHE-AIRFLOW>=2",
    "apache.airflow~=3.0",
    "apache-airflow[celery]>=3",
    "apache-airflow[celery,postgres]==3.1.0",
    "apache-airflow @ https://example.com/apache_airflow-3.0.0-py3-none-any.whl",
    "apache-airflow==3.0.0 ; python_version >= '3.9'",
    "apache-airflow-core==3.0.0",
    "Apache.Airflow_Core",
    "apache-airflow-task-sdk>=1.0",
    "apache_airflow_task_sdk",
    "git+https://github.com/apache/airflow.git#egg=apache-airflow-core",
    "git+https://github.com/apache/airflow.git@main#egg=apache_airflow&subdirectory=x",
    "-e git+https://github.com/apache/airflow.git#egg=apache-airflow",
    "   apache-airflow==3.0.0   ",
    "apache-airflow==3.0.0  # pinned on purpose",
]


@pytest.mark.parametrize("line", PINNING_LINES)
def test_lines_naming_pinned_packages_are_rejected(line):
    with pytest.raises(ValidationFailed) as excinfo:
        check_requirements(line)
    assert excinfo.value.message.startswith("requirements line 1:")
    assert "airflow_version" in excinfo.value.message


@pytest.mark.parametrize("line", PINNING_LINES)
def test_error_names_the_line_number(line):
    text = "\n".join(["# my requirements", "", "requests==2.32.0", "--index-url https://pypi.org/simple", line, "pandas"])
    with pytest.raises(ValidationFailed) as excinfo:
        check_requirements(text)
    assert excinfo.value.message.startswith("requirements line 5:")
    assert repr(line.strip()) in excinfo.value.message
    assert excinfo.value.code == "VALIDATION_ERROR"


def test_error_names_which_pinned_package():
    with pytest.raises(ValidationFailed) as excinfo:
        check_requirements("Apache_Airflow_Task_SDK==1.0")
    assert "apache-airflow-task-sdk" in excinfo.value.message


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "apache-airflow-providers-http",
        "apache-airflow-providers-http==5.0.0\napache-airflow-providers-amazon[s3]>=9",
        "apache_airflow_providers_postgres",
        "airflow-provider-great-expectations",
        "apache-airflow-client==3.0.0",
        "# apache-airflow==2.0.0",
        "   # apache-airflow==2.0.0",
        "requests==2.32.0  # not apache-airflow",
        "--index-url https://pypi.org/simple\n--extra-index-url https://example.com/simple",
        "--trusted-host example.com\n--no-binary :all:",
        "pandas>=2; python_version >= '3.10'",
        "mypkg @ https://example.com/mypkg-1.0.tar.gz",
        "-e git+https://github.com/acme/tools.git#egg=acme-tools",
        "\r\nrequests\r\n",
    ],
)
def test_ordinary_requirements_are_accepted(text):
    check_requirements(text)


@pytest.mark.parametrize(
    "line",
    ["-r other.txt", "-rother.txt", "--requirement other.txt", "--requirement=other.txt", "-c constraints.txt",
     "--constraint https://raw.githubusercontent.com/apache/airflow/constraints-3.0.0/constraints-3.11.txt",
     "   -r other.txt"],
)
def test_nested_requirement_and_constraint_files_are_rejected(line):
    with pytest.raises(ValidationFailed) as excinfo:
        check_requirements(f"requests\n{line}\n")
    assert excinfo.value.message.startswith("requirements line 2:")
    assert "nested requirement or constraint files" in excinfo.value.message


def test_first_offending_line_is_reported():
    with pytest.raises(ValidationFailed) as excinfo:
        check_requirements("requests\napache-airflow-core\napache-airflow\n")
    assert excinfo.value.message.startswith("requirements line 2:")


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("Requests==2.0", "requests"),
        ("zope.interface", "zope-interface"),
        ("my__pkg[extra]>=1", "my-pkg"),
        ("foo @ https://x/foo.whl", "foo"),
        ("--index-url https://x", None),
        ("# comment", None),
        ("", None),
        ("   ", None),
        ("git+https://x/y.git#egg=Some_Pkg", "some-pkg"),
    ],
)
def test_requirement_name(line, name):
    assert requirement_name(line) == name


def test_canonical_matches_pep503():
    assert canonical("Apache_Airflow") == "apache-airflow"
    assert canonical("a.-_b") == "a-b"
    assert {canonical(p) for p in PINNED} == PINNED
