"""Hangar: self-hosted managed Apache Airflow."""
__version__ = "0.1.0"
