"""Runtime: what an environment runs on — uv-built venvs, the metadata database,
ports, rendered Airflow configuration and tokens. No status logic lives here."""
