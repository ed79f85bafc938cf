"""Which tasks train at a step of a multi-task run (Model Garden's ``multitask/task_sampler.py``,
made deterministic and resumable: the active tasks are a function of the global step alone).

* :class:`JointSchedule`: every task at every step (the method's joint training, §8.3.1, and its
  multi-proxy runs, §8.5.2).
* :class:`RoundRobinSchedule`: one task at a time, switching to the next in circular order after
  a *quantum* of ``Q`` steps (§8.3.5): steps ``[kQ, (k+1)Q)`` train task ``k mod M``.

A schedule also names the next step at which the active set changes, so the host loop never runs
a ``tf.function`` call across a switch (:meth:`tfcolor.train.task_step.TrainStep.next_boundary`).
"""

__all__ = ["JointSchedule", "RoundRobinSchedule", "make_schedule", "SCHEDULES"]


class JointSchedule:
    """Every task at every step."""

    name = "joint"

    def __init__(self, tasks):
        self.tasks = tuple(tasks)
        if not self.tasks:
            raise ValueError("a schedule needs at least one task")

    def active(self, step):  # pylint: disable=unused-argument
        """The tasks trained at ``step`` (in the run's task order)."""
        return self.tasks

    def next_boundary(self, step):  # pylint: disable=unused-argument
        """The next step at which :meth:`active` changes, or None (never)."""
        return None

    def steps_of(self, task, start, stop):
        """How many steps in ``[start, stop)`` train ``task``."""
        return max(0, stop - start) if task in self.tasks else 0


class RoundRobinSchedule(JointSchedule):
    """One task per quantum of ``quantum`` steps, in circular order.

    Args:
        tasks: task names, in order.
        quantum: steps between switches (Q >= 1; the thesis tested 1,000 and 10,000 of 200,000).
    """

    name = "round_robin"

    def __init__(self, tasks, quantum):
        super().__init__(tasks)
        if isinstance(quantum, bool) or not isinstance(quantum, int) or quantum < 1:
            raise ValueError(f"quantum must be a positive number of steps, got {quantum!r}")
        self.quantum = quantum

    def active(self, step):
        return (self.tasks[(int(step) // self.quantum) % len(self.tasks)],)

    def next_boundary(self, step):
        return (int(step) // self.quantum + 1) * self.quantum

    def steps_of(self, task, start, stop):
        if task not in self.tasks:
            return 0
        count, step = 0, int(start)
        while step < stop:
            end = min(self.next_boundary(step), stop)
            if self.active(step)[0] == task:
                count += end - step
            step = end
        return count


SCHEDULES = ("joint", "round_robin")


def make_schedule(name, tasks, quantum=None):
    """The schedule called ``name`` (``joint`` or ``round_robin``, which needs ``quantum``)."""
    if name == "joint":
        return JointSchedule(tasks)
    if name == "round_robin":
        if quantum is None:
            raise ValueError("the round_robin schedule needs a quantum (steps per task turn)")
        return RoundRobinSchedule(tasks, quantum)
    raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
