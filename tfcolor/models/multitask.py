"""One trunk, one model per task: the shared-weights network of multi-task training.

The method's joint set-up (METHOD_CH4.md §8.3.1, §8.5.2) runs "separate instances of the base
network with tied weights, one per task, because inputs differ in source and size". In Keras that
is one trunk object called by several task models: every task model built on the same
:class:`SharedTrunk` uses its variables, so the gradient of each task's loss over the trunk
(the *base*) lands on the same variables, and each task model's remaining variables are its
*head* (Model Garden's ``MultiTaskBaseModel.sub_tasks``, without its registry).

* :class:`SharedTrunk`: the trunk every task receives -- the functional trunk model of
  :func:`tfcolor.models.build_trunk` (an image in [0, 1] with ``input_channels`` channels -> a
  dict of tap maps, every tap of the architecture), its architecture name and options, and the
  tap strides, so a task picks the taps it reads (the colorizer's hypercolumn, the jigsaw's
  ``fc7``).
* :class:`MultiTaskModel`: a ``keras.Model`` holding the trunk and ``sub_models``
  ``{task name: model}``; one object to checkpoint (the trunk is tracked once), with
  :meth:`~MultiTaskModel.base_variables` and :meth:`~MultiTaskModel.head_variables` for the
  gradient rules of :mod:`tfcolor.train.gradient_rules`.

A task takes part by implementing :meth:`tfcolor.tasks.base.Task.build_model_on`.

Colour: the trunk is shared, so every task feeds it the same number of channels. The method's
joint runs use 3: colour for jigsaw and video, and for colorization an *RGB-encoded grey* image
(the lightness repeated in the three channels), which the colorizer does itself with
``input_channels=3``.
"""
import dataclasses

import keras

from tfcolor.models import alexnet, resnet, vgg  # noqa: F401  (register the architectures)
from tfcolor.models import trunk as trunk_lib

__all__ = ["SharedTrunk", "MultiTaskModel", "build_shared_trunk"]


@dataclasses.dataclass(frozen=True)
class SharedTrunk:
    """The trunk several task models share.

    Attributes:
        model: the functional trunk, (B, H, W, input_channels) in [0, 1] -> {tap: map}.
        arch: its architecture name (:func:`tfcolor.models.architectures`).
        input_channels: channels of its input (3 in the method's joint runs).
        fov: whether the "+FoV" blocks (taps ``fov1``, ``fov2``) are on top.
        options: the other :func:`tfcolor.models.build_trunk` keyword arguments it was built
            with (``batch_norm``, ``sync_batch_norm``, ``input_mean``, ``groups``, ...).
    """
    model: keras.Model
    arch: str
    input_channels: int = 3
    fov: bool = False
    options: dict = dataclasses.field(default_factory=dict)

    @property
    def taps(self):
        """Every tap the trunk outputs, in hypercolumn order."""
        return list(self.model.output)

    def tap_strides(self, taps=None):
        """``{tap: stride}`` in hypercolumn order for ``taps`` (a preset name, a list, or None:
        every tap), as :func:`tfcolor.models.tap_strides` gives them."""
        names = trunk_lib.resolve_taps(self.arch, taps, self.fov)
        missing = [n for n in names if n not in self.model.output]
        if missing:
            raise ValueError(f"the shared trunk does not output taps {missing}; it outputs "
                             f"{self.taps}")
        return dict(trunk_lib.tap_strides(self.arch, names, self.fov))


def build_shared_trunk(arch, *, input_channels=3, fov=False, **options):
    """Builds a :class:`SharedTrunk` with every tap of ``arch`` (``options``: further
    :func:`tfcolor.models.build_trunk` arguments)."""
    model = trunk_lib.build_trunk(arch, taps=None, fov=fov, input_channels=input_channels,
                                  **options)
    return SharedTrunk(model=model, arch=arch, input_channels=input_channels, fov=bool(fov),
                       options=dict(options))


class MultiTaskModel(keras.Model):
    """A shared trunk and one model per task (see the module docstring).

    Args:
        trunk: the :class:`SharedTrunk` every sub-model was built on.
        sub_models: ``{task name: keras model}``, each built on ``trunk`` (its variables include
            the trunk's).

    Calling the model runs the trunk (``model(image)`` -> the tap maps); each task calls its own
    sub-model.
    """

    def __init__(self, trunk, sub_models, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(trunk, SharedTrunk):
            raise TypeError(f"trunk must be a SharedTrunk, got {type(trunk).__name__}")
        if not sub_models:
            raise ValueError("a multi-task model needs at least one sub-model")
        self.shared = trunk
        self.trunk = trunk.model
        self.sub_models = dict(sub_models)
        trunk_ids = {id(v) for v in self.trunk.trainable_variables}
        for name, model in self.sub_models.items():
            ids = {id(v) for v in model.trainable_variables}
            if not trunk_ids <= ids:
                raise ValueError(f"the sub-model of task {name!r} is not built on the shared "
                                 "trunk (it does not hold the trunk's variables)")
        # Keras 3 keeps a dict attribute for its own tracking (a TrackedDict), which is not a
        # TensorFlow checkpoint dependency: without these, tf.train.Checkpoint(model=self) would
        # save the trunk only and lose every head.
        for name, model in self.sub_models.items():
            self._track_trackable(model, name=f"sub_model_{name}", overwrite=True)
        self.built = True

    @property
    def task_names(self):
        return list(self.sub_models)

    def base_variables(self):
        """The trunk's trainable variables (the base every task's gradient reaches)."""
        return list(self.trunk.trainable_variables)

    def head_variables(self, task):
        """The trainable variables of ``task``'s sub-model that are not the trunk's."""
        trunk_ids = {id(v) for v in self.trunk.trainable_variables}
        return [v for v in self.sub_models[task].trainable_variables if id(v) not in trunk_ids]

    def call(self, image, training=None):
        return self.trunk(image, training=training)
