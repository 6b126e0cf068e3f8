"""Buckets: named, versioned object stores under HANGAR_HOME, the local stand-in for
the S3 bucket an MWAA environment reads its DAGs, requirements, plugins and startup
script from.

Kept import-free on purpose: hangar.store.models (or the Alembic env) imports
hangar.buckets.models, and anything heavier here would make that import circular.
"""
