"""Metrics: Airflow's own StatsD metrics received per environment, and what the control plane
exposes for Prometheus."""
