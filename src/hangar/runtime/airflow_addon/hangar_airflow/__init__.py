"""Hangar's in-Airflow add-on: password-less, Hangar-minted JWT login.

This package is put on the PYTHONPATH of every Airflow process Hangar starts
(``PYTHONPATH=.../runtime/airflow_addon``). It must import only the standard
library, Airflow and Airflow's own dependencies (PyJWT; fastapi on Airflow 3;
flask/flask_login on Airflow 2). ``tokens`` is also imported by the control plane,
so this ``__init__`` imports nothing.
"""
