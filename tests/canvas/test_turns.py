import pytest

from airflow_provider_canvas_reports.canvas.turns import host_turn, release_place, start_delay

from .helpers import FixedRandom


@pytest.mark.parametrize(
    ("rank", "map_index", "expected"),
    [
        (0, None, 0),
        (0, -1, 0),
        (0, 0, 0),
        (0, 1, 1),  # the second instance of a mapped task
        (0, 7, 7),
        (3, -1, 3),  # the 4th of the DAG's start tasks released together
        (3, 0, 3),
        (2, 5, 7),  # a mapped task ranked 3rd: its instances follow the tasks before it
        (-1, -1, 0),
    ],
)
def test_release_place_is_rank_plus_map_index(rank, map_index, expected):
    assert release_place(rank, map_index) == expected


@pytest.mark.parametrize(
    ("place", "expected"),
    [(0, 0.0), (1, 0.1), (23, 2.3), (49, 4.9), (50, 0.0), (73, 2.3)],
)
def test_start_delay_spaces_tasks_by_place_in_cycles_of_50(place, expected):
    assert start_delay(place, 0.1, 0.0) == pytest.approx(expected)


def test_start_delay_adds_the_jitter_draw():
    assert start_delay(0, 0.1, 5.0, FixedRandom(0.5)) == pytest.approx(2.5)
    assert start_delay(3, 0.1, 5.0, FixedRandom(1.0)) == pytest.approx(5.3)
    assert start_delay(3, 0.0, 0.0) == 0.0
    assert start_delay(0, 0.1, 0.5, FixedRandom(0.5)) == pytest.approx(0.25)  # under a second counts too


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (None, 1000.0),  # no turn taken on this host yet: at once
        (990.0, 1000.0),  # the last one long past
        (999.9, 1000.1),  # 0.1 s ago: 0.2 s after it
        (1003.0, 1003.2),  # turns already taken ahead: the next one after them
        (1009.7, 1009.9),  # 49 turns ahead: the 50th
        (1009.85, 1000.0),  # a whole cycle (50 turns) ahead: from now again
        (1009.8, 1000.0),  # exactly a whole cycle ahead (spacing 0.2 s: 1010.0 - 1000.0 == 50 x 0.2)
        (5000.0, 1000.0),  # a clock stepped back
    ],
)
def test_host_turn_comes_a_spacing_after_the_last_one(last, expected):
    assert host_turn(last, 1000.0, 0.2) == pytest.approx(expected)


def test_host_turn_without_spacing_is_now():
    assert host_turn(1003.0, 1000.0, 0.0) == 1000.0
