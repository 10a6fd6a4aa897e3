"""What Canvas is, with no I/O and no Airflow: the Report model and states, errors, URLs,
parameters, pagination, download checks and the retry policy as pure decisions."""
