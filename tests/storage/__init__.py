"""Tests for airflow_provider_canvas_reports.storage."""
