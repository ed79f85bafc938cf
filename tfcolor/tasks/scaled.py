"""A task whose loss is multiplied by a constant: the "contrived" test of the uneven-gradients
problem (METHOD_CH4.md §8.3.2, eq. 4.8: ``L' = alpha L`` gives ``alpha`` times the gradients).

:class:`ScaledTask` delegates everything to the task it wraps and multiplies the loss (and its
logged terms, so that they still add up to it) by ``factor``. Under joint SGD the scaled task's
gradients dominate the trunk's update; under NormSGD the update does not change (each task's
gradient is divided by its own mean absolute value), which is what the method claims and what
``MultiTaskConfig.loss_scales`` lets a run show.
"""
from tfcolor.tasks import base

__all__ = ["ScaledTask"]


class ScaledTask(base.Task):
    """``task`` with its loss multiplied by ``factor`` (> 0); same name, inputs and model."""

    def __init__(self, task, factor):
        if not isinstance(task, base.Task):
            raise TypeError(f"ScaledTask wraps a tfcolor.tasks.base.Task, got "
                            f"{type(task).__name__}")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
            raise ValueError(f"factor must be a positive number, got {factor!r}")
        self.task = task
        self.factor = float(factor)
        self.name = task.name

    def build_model(self):
        return self.task.build_model()

    def build_model_on(self, trunk):
        return self.task.build_model_on(trunk)

    def build_inputs(self, start=0):
        return self.task.build_inputs(start)

    def check_inputs(self, element_spec):
        self.task.check_inputs(element_spec)

    def batch_size(self, element_spec):
        return self.task.batch_size(element_spec)

    def dummy_batch(self, element_spec):
        return self.task.dummy_batch(element_spec)

    def head_variables(self, model):
        return self.task.head_variables(model)

    def preview(self, model):
        return self.task.preview(model)

    def compute_loss(self, model, batch, *, training, global_batch_size):
        loss, terms = self.task.compute_loss(model, batch, training=training,
                                             global_batch_size=global_batch_size)
        return self.factor * loss, {k: self.factor * v for k, v in terms.items()}
