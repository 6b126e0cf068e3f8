"""Store: the control plane's own state (environments, immutable revisions, events,
encrypted secrets and reconcile progress) in SQLite, migrated with Alembic.

Why SQLite and not the embedded PostgreSQL: this state is small and has one writer
(the control plane); SQLite needs no server, so the control plane can start, read
its state and report errors even when the embedded PostgreSQL that holds the
Airflow metadata databases is down. Airflow's own metadata never lives here.
"""
