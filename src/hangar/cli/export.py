"""`hangar env export NAME --format helm-values`: the environment as values for the official
Apache Airflow Helm chart, to run the same environment on Kubernetes.

The YAML goes to stdout (or --output FILE) and nothing else does, so it can be piped into
helm; what the user still has to do (secrets to create, an image to build) goes to stderr.
With requirements, --output FILE also writes FILE.requirements.txt and FILE.Dockerfile.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from hangar.cli.client import call, fail

export_app = typer.Typer()


@export_app.command("export")
def env_export(
    name: str,
    format_: str = typer.Option("helm-values", "--format", help="helm-values: for the chart apache-airflow/airflow"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write the values to FILE instead of stdout"),
) -> None:
    """Write chart values that reproduce the environment on Kubernetes (secrets only by name)."""
    params = {"format": format_}
    if output is not None:
        params["requirements_file"] = f"{output.name}.requirements.txt"
    result = call("GET", f"/api/v1/environments/{name}/export", params=params)
    import yaml

    text = yaml.safe_dump(result["values"], sort_keys=False, default_flow_style=False, width=120)
    if output is None:
        sys.stdout.write(text)
        if result.get("dockerfile"):
            _note("this environment has requirements: run again with --output FILE to write the Dockerfile "
                  f"and requirements for the image {_image(result)}")
    else:
        _write(output, text)
        if result.get("dockerfile"):
            requirements = output.with_name(f"{output.name}.requirements.txt")
            dockerfile = output.with_name(f"{output.name}.Dockerfile")
            _write(requirements, result["requirements"])
            _write(dockerfile, result["dockerfile"])
            _note(f"build the image: docker build -f {dockerfile} -t {_image(result)} {output.parent or '.'}")
        _note(f"wrote {output}")
    _note("create these Kubernetes secrets before `helm install`:")
    for secret in result["secrets"]:
        _note(f"  {secret['name']}: {', '.join(secret['keys'])} ({secret['purpose']})")
    for line in result["notes"]:
        _note(line)


def _image(result: dict) -> str:
    airflow = result["values"]["images"]["airflow"]
    return f"{airflow['repository']}:{airflow['tag']}"


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")


def _note(line: str) -> None:
    print(line, file=sys.stderr)
