"""Code that runs inside Airflow processes (put on their PYTHONPATH), not in the control plane."""
