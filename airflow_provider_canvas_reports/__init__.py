"""Apache Airflow provider for Canvas LMS account reports."""

__version__ = "0.1.0"
