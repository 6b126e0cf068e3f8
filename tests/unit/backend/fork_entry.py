"""The component a test fork server forks: it reports what it was given, then waits."""
import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    report = Path(os.environ["FORK_REPORT"])
    pid_file = Path(os.environ["FORK_PID_FILE"])
    record = json.loads(pid_file.read_text()) if pid_file.exists() else None
    print("component says hello", flush=True)
    report.write_text(json.dumps({
        "pid": os.getpid(), "sid": os.getsid(0), "cwd": os.getcwd(), "argv": sys.argv,
        "env": dict(os.environ), "record": record, "preloaded": "tests.unit.backend.fork_preloaded" in sys.modules,
        "web_preloaded": "tests.unit.backend.fork_web" in sys.modules,
        "modules": sorted(name for name in sys.modules if name.startswith("tests.unit.backend.fork_")),
    }))
    release = Path(os.environ["FORK_RELEASE"])
    while not release.exists():
        time.sleep(0.05)
    return 3
