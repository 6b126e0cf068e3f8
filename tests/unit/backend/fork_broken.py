"""A module that cannot be imported, as a broken airflow_local_settings would be."""
raise RuntimeError("broken on purpose")
