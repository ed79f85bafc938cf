"""Starting a pretraining run's shared trunk from another run's trunk.

The inter-proxy curves of the method (METHOD_CH4.md §8.5.4, Fig. 4.7: "C -> J" trains the jigsaw
task from a network the colorization task trained, "(ft)" end to end, otherwise the task layers
only) need a proxy task that starts from the trunk of another run. :func:`initialize_trunk`
copies that trunk into a :class:`tfcolor.models.multitask.SharedTrunk`, layer by layer:

* the source is anything ``binaries/finetune --init`` takes
  (:func:`tfcolor.downstream.initialization.load_trunk`): a colorization or multi-task
  ``model_dir``, a colorization export, a baseline ``model_dir``;
* its batch normalization is kept (not absorbed): the shared trunk is built as the run's model
  section says, and every layer the two have in common must have the same shapes;
* a trunk pretrained up to a shallower tap (a colorizer whose hypercolumn ends at ``conv3_3``)
  holds only the layers up to it; the shared trunk's deeper layers keep their fresh
  initialisation (logged);
* the first convolution is converted to the shared trunk's input channels: a grey trunk's
  kernel is replicated over three channels and divided by 3 for an RGB input
  (:func:`tfcolor.surgery.gray_to_rgb_conv1`, exact on RGB-encoded grey), a colour trunk's is
  summed over its channels for a grey input (:func:`tfcolor.surgery.rgb_to_gray_conv1`).

:func:`freeze_trunk` makes the trunk fixed (``multitask.train_trunk=False``): its variables are
no longer trainable, so only the task layers are updated, and its batch normalization runs in
inference mode.
"""
import numpy as np
from absl import logging

from tfcolor import config as config_lib
from tfcolor.downstream import initialization

__all__ = ["initialize_trunk", "freeze_trunk"]


def initialize_trunk(shared, init):
    """Copies the trunk of the run ``init`` into ``shared`` (in place); returns ``shared``.

    Args:
        shared: a :class:`tfcolor.models.multitask.SharedTrunk`.
        init: a run directory or export (see the module docstring).

    Raises:
        tfcolor.config.ConfigError: ``init`` is not a run, or its trunk has another
            architecture, misses one of the shared trunk's layers or has other shapes.
    """
    try:
        source, arch = initialization.load_trunk(
            init, arch=shared.arch, absorb_bn=False, color_input=shared.input_channels == 3)
    except (FileNotFoundError, ValueError) as e:
        raise config_lib.ConfigError(f"init {init}: {e}", "init") from e
    if arch != shared.arch:
        raise config_lib.ConfigError(f"init {init} holds a {arch} trunk; this run trains a "
                                     f"{shared.arch} trunk", "init")
    missing, shapes, pairs = [], [], []
    for layer in shared.model.layers:
        if not layer.weights:
            continue
        try:
            other = source.get_layer(layer.name)
        except ValueError:
            missing.append(layer.name)
            continue
        values = other.get_weights()
        want = [tuple(w.shape) for w in layer.weights]
        got = [tuple(np.shape(v)) for v in values]
        if want != got:
            shapes.append(f"{layer.name} {got} (needs {want})")
            continue
        pairs.append((layer, values))
    if shapes or not pairs:
        raise config_lib.ConfigError(
            f"init {init}: its trunk does not fit this run's {shared.arch} trunk ("
            + (f"other shapes: {'; '.join(shapes)}" if shapes else "no layer in common")
            + "); the model sections (batch_norm, fov) must agree", "init")
    for layer, values in pairs:
        layer.set_weights(values)
    unused = sorted({l.name for l in source.layers if l.weights}
                    - {l.name for l in shared.model.layers})
    logging.info("the shared trunk starts from %s (%d layers copied%s%s)", init, len(pairs),
                 f"; fresh, above the source's deepest tap: {', '.join(missing)}"
                 if missing else "", f"; not used: {', '.join(unused)}" if unused else "")
    return shared


def freeze_trunk(shared):
    """Makes ``shared``'s trunk fixed (not trainable, BN in inference mode); returns it."""
    shared.model.trainable = False
    return shared
