"""The `hangar` command: a client of the control plane's HTTP API."""
