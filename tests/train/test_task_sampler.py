"""Tests of tfcolor.train.task_sampler (joint and round-robin task schedules, METHOD_CH4.md §8.3.5).

References: the definition written out step by step (steps [kQ, (k+1)Q) train task k mod M) and
brute-force counting.
"""
import pytest

from tfcolor.train import task_sampler

TASKS = ("colorization", "jigsaw", "video")


def _brute_active(step, tasks, quantum):
    """The task of ``step``, by walking the turns one by one."""
    turn, start = 0, 0
    while start + quantum <= step:
        start += quantum
        turn += 1
    return tasks[turn % len(tasks)]


@pytest.mark.parametrize("quantum", [1, 2, 3, 7])
@pytest.mark.parametrize("tasks", [TASKS[:1], TASKS[:2], TASKS])
def test_round_robin_active_set_boundaries_and_counts_by_brute_force(tasks, quantum):
    schedule = task_sampler.make_schedule("round_robin", tasks, quantum)
    assert schedule.name == "round_robin" and schedule.quantum == quantum
    horizon = 4 * quantum * len(tasks) + 3
    actives = [schedule.active(s) for s in range(horizon)]
    assert actives == [(_brute_active(s, tasks, quantum),) for s in range(horizon)]
    for s in range(horizon):
        # The next boundary is the first later step that starts a turn.
        boundary = schedule.next_boundary(s)
        assert boundary > s and boundary % quantum == 0 and boundary - s <= quantum
        assert all(actives[t] == actives[s] for t in range(s, min(boundary, horizon)))
    # Task counts over every window, against counting the per-step list.
    for start in range(0, horizon, 2):
        for stop in range(start, horizon + 1, 3):
            for task in tasks:
                assert schedule.steps_of(task, start, stop) == sum(
                    a == (task,) for a in actives[start:stop]), (task, start, stop)
    assert schedule.steps_of("segmentation", 0, horizon) == 0
    assert schedule.steps_of(tasks[0], 5, 2) == 0


def test_round_robin_starts_with_the_first_task_and_is_circular():
    schedule = task_sampler.RoundRobinSchedule(TASKS[:2], 1000)
    assert schedule.active(0) == ("colorization",)
    assert schedule.active(999) == ("colorization",)
    assert schedule.active(1000) == ("jigsaw",)
    assert schedule.active(2000) == ("colorization",)
    assert schedule.next_boundary(0) == 1000 and schedule.next_boundary(1000) == 2000


def test_joint_schedule_trains_every_task_every_step_and_never_switches():
    schedule = task_sampler.make_schedule("joint", TASKS)
    assert schedule.name == "joint"
    for s in (0, 1, 17, 10 ** 6):
        assert schedule.active(s) == TASKS
        assert schedule.next_boundary(s) is None
    assert schedule.steps_of("jigsaw", 3, 10) == 7
    assert schedule.steps_of("jigsaw", 10, 3) == 0
    assert schedule.steps_of("segmentation", 0, 10) == 0


@pytest.mark.parametrize("quantum", [0, -3, 2.5, "4", True, None])
def test_bad_quantum_is_a_value_error(quantum):
    with pytest.raises(ValueError, match="quantum"):
        task_sampler.make_schedule("round_robin", TASKS, quantum)


def test_bad_schedule_and_empty_task_list_are_value_errors():
    with pytest.raises(ValueError, match="unknown schedule 'random'"):
        task_sampler.make_schedule("random", TASKS)
    with pytest.raises(ValueError, match="at least one task"):
        task_sampler.make_schedule("joint", ())
    with pytest.raises(ValueError, match="at least one task"):
        task_sampler.make_schedule("round_robin", (), 3)
