"""A joined host: this machine runs Celery workers for an environment of a control plane elsewhere.

`hangar worker join` parses its options and calls hangar.agent.join.join; the rest lives here:

    join.py       the entry point: the token, one join per environment and home, signals
    host.py       JoinedHost: applying bundles, the worker processes and the loop that watches them
    bundle.py     what applying a bundle takes: the runtime, the DAGs and plugins, the worker's spec
    heartbeat.py  the heartbeat thread and what it reports
    client.py     the control plane's routes a joined host may call, with its worker token
    errors.py     why a join stops or waits
    state.py      what the host applied last, on disk (digests, never a secret)
    logs.py       the host's own lines, and reading a worker's log

Importing this package costs nothing: the CLI reads the defaults below at start-up. Its modules
import the runtime builder and the process supervisor, and only `hangar worker join` imports them.
The agent never imports hangar.cli.
"""

# where a joined host looks for its worker token when neither --token nor --token-file is given
TOKEN_VARIABLE = "HANGAR_WORKER_TOKEN"
# seconds between two fetches of the bundle (--refresh-seconds)
REFRESH_SECONDS = 30.0
