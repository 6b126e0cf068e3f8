"""Reconciler: makes each environment's running state match its desired revision."""
