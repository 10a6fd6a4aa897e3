from datetime import timedelta

import pytest

from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.operators._arguments import count, duration, flag, retry_policy


@pytest.mark.parametrize(("value", "expected"), [(0, 0.0), (0.2, 0.2), (timedelta(seconds=3), 3.0)])
def test_a_pause_may_be_zero(value, expected):
    assert duration(value, name="start_spacing", allow_zero=True) == expected


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), timedelta(seconds=-1)])
def test_a_pause_is_never_negative_nan_or_endless(bad):
    with pytest.raises(ValueError, match="start_spacing must be a duration of 0 or more"):
        duration(bad, name="start_spacing", allow_zero=True)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), timedelta(0)])
def test_a_wait_duration_is_positive(bad):
    with pytest.raises(ValueError, match="poll_interval must be a positive duration"):
        duration(bad, name="poll_interval", default=60.0)


def test_none_is_the_default_where_there_is_one():
    assert duration(None, name="timeout", default=86400.0) == 86400.0
    with pytest.raises(TypeError, match="expected_run_time must be a duration"):
        duration(None, name="expected_run_time")


def test_a_timeout_of_none_is_refused_not_read_as_no_limit():
    # Written out, None reads as "no limit"; the start operator's wait always has a deadline.
    from airflow_provider_canvas_reports.operators.reports import StartAccountReportOperator

    with pytest.raises(TypeError, match=r"timeout=None: every wait has a deadline.*default is 24 hours"):
        StartAccountReportOperator(task_id="start", report="provisioning_csv", timeout=None)


def test_a_number_in_a_string_is_a_duration():
    # What Variable.get() gives for a value kept in a Variable.
    assert duration("120", name="poll_interval", default=60.0) == 120.0
    assert duration(" 0.5 ", name="start_spacing", allow_zero=True) == 0.5
    with pytest.raises(ValueError, match=r"poll_interval must be a positive duration, not -3\.0"):
        duration("-3", name="poll_interval", default=60.0)


@pytest.mark.parametrize("bad", ["1h", "", "60s", [60], True])
def test_a_duration_is_a_number_or_a_timedelta(bad):
    with pytest.raises(
        TypeError, match=r"timeout must be a duration, seconds \(a number\) or a datetime.timedelta"
    ):
        duration(bad, name="timeout", default=1.0)


@pytest.mark.parametrize(
    ("word", "expected"), [("true", True), ("False", False), (" false ", False), (True, True)]
)
def test_a_switch_is_a_bool_or_its_word(word, expected):
    assert flag(word, name="extract_zip") is expected


@pytest.mark.parametrize("bad", ["no", "yes", "0", 1, 0, None])
def test_a_switch_is_a_bool(bad):
    with pytest.raises(TypeError, match="extract_zip must be True or False"):
        flag(bad, name="extract_zip")


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (0, ValueError),
        (-2, ValueError),
        ("0", ValueError),
        ("three", TypeError),
        ("1.5", TypeError),
        (2.0, TypeError),
        (True, TypeError),
    ],
)
def test_a_count_is_a_whole_number_from_one(bad, error):
    with pytest.raises(error, match="download_attempts must be"):
        count(bad, name="download_attempts")
    assert count(3, name="download_attempts") == 3
    assert count("3", name="download_attempts") == 3


def test_a_spool_dir_may_be_a_path():
    from pathlib import Path

    from airflow_provider_canvas_reports.operators.download import DownloadReportOperator

    task = DownloadReportOperator(
        task_id="d", report="r", report_id=1, destination="/x", spool_dir=Path("/tmp/s")
    )
    assert task.spool_dir == "/tmp/s"


def test_a_retry_policy_or_a_dict_of_its_fields():
    policy = RetryPolicy(max_attempts=2)
    assert retry_policy(None) is None
    assert retry_policy(policy) is policy
    assert retry_policy({"max_attempts": 2}) == policy
    with pytest.raises(ValueError, match=r"RetryPolicy\.max_attempts must be at least 1"):
        retry_policy({"max_attempts": 0})


def _operators():
    from airflow_provider_canvas_reports.operators.download import DownloadReportOperator
    from airflow_provider_canvas_reports.operators.reports import StartAccountReportOperator
    from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor

    return {
        "start": (
            lambda **kw: StartAccountReportOperator(task_id="s", report="r", wait_for_completion=True, **kw),
            {
                "timeout": 3600,
                "poll_interval": 30,
                "max_poll_interval": 240,
                "expected_run_time": 600,
                "start_jitter": 2,
                "start_spacing": 0.5,
            },
        ),
        "sensor": (
            lambda **kw: ReportCompleteSensor(task_id="w", report="r", report_id=1, **kw),
            {
                "timeout": 3600,
                "poke_interval": 30,
                "max_poll_interval": 240,
                "expected_run_time": 600,
                "start_spacing": 0.5,
            },
        ),
        "download": (
            lambda **kw: DownloadReportOperator(task_id="d", report="r", report_id=1, destination="/x", **kw),
            {"download_retry_delay": 3, "start_spacing": 0.5},
        ),
    }


@pytest.mark.parametrize(
    ("operator", "argument"),
    [(operator, argument) for operator, (_make, values) in _operators().items() for argument in values],
)
def test_every_duration_argument_takes_a_number_in_a_string(operator, argument):
    # What Variable.get() gives: the README promises it for every duration of every operator.
    make, values = _operators()[operator]
    as_number = make(**{argument: values[argument]})
    as_string = make(**{argument: str(values[argument])})

    def settings(task):
        # Less what keeps the arguments as given: the constructor's kwargs, and expected_run_time
        # (kept as given for templating; what the wait uses is in `wait`).
        return {
            k: v
            for k, v in vars(task).items()
            if k not in ("_BaseOperator__init_kwargs", "expected_run_time")
        }

    assert settings(as_string) == settings(as_number)
