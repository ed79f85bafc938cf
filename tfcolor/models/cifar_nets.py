"""The *Deep* and *Shallow* test networks of Table 4.1 (METHOD_CH4.md §8.4), the nets of the
chapter's controlled distillation and multi-task experiments.

:func:`deep_net` (8 conv layers) and :func:`shallow_net` (5 thin conv layers), or
:func:`cifar_net` with ``arch="deep" | "shallow"``, build a functional ``keras.Model`` from
standard Keras layers only (so ``get_config`` / ``from_config`` and ``.keras`` saving work as for
any functional model): an image ``(H, W, C)`` (default 32 x 32 x 3; 1 channel works too) ->
``{"top": (B, F), "task": (B, num_classes)}``.

Layers, as the table's rows (names in brackets):

* every conv ``[conv<i>]``: the table's size and channels, stride 1, ``'same'`` padding, then a
  ReLU ``[relu<i>]`` and, when the table gives one, dropout on the layer's output
  ``[dropout<i>]``; a 2 x 2 / 2 max pooling ``[pool<k>]`` where the table has one;
* the **top** layer ``[top]``: the ``Flatten`` of the last conv's (pooled) *pre-ReLU* output, an
  output of the model, so distillation can match pre-ReLU top activations (§8.1.2
  [interpretation]); then its ReLU ``[top_relu]``, the last conv's dropout ``[top_dropout]`` and
  the **task** layer ``[task]``, a ``Dense`` with ``num_classes`` outputs (logits).
  Max pooling commutes with a ReLU, so the network computes what conv -> ReLU -> pool would; the
  last conv's dropout acts on its output after any pooling (pooling does not commute with
  dropout; with the default three poolings the last conv has no pooling after it, and the
  dropout acts on the layer's output exactly).

Parameters that the table leaves open, with their defaults:

* ``poolings=3`` **[interpretation]**: the table lists four 2 x 2 / 2 poolings, which give a
  2 x 2 x 192 = 768 top layer at 32 x 32, but prints a 3,072-d top layer, and the text states
  every result for the "3,072-feature" top layer (Table 4.4's teacher is 4 x 3,072). The nets
  keep the *first* ``poolings`` poolings (0-4), so the default, three, drops the last one and
  gives 4 x 4 x 192 = 3,072 features at 32 x 32; ``poolings=4`` is the table's rows as listed
  (768).
* ``width_divisor=M``: every layer's channel count divided by M, rounded **up** (the 1/M-thin
  columns of split-activations, §8.2.1; the rounding is not specified [interpretation]: ceil
  keeps every column at least as wide as its share, so M = 10 gives 7 / 13 / 20 channels for
  64 / 128 / 192). The task layer keeps ``num_classes`` outputs.
* ``dropout=True``: the table's per-layer rates; ``False`` builds the same net without dropout
  layers (the student of Task-Ensemble, §8.1.6). ``dropout_scale`` multiplies every rate.
* Activation: ReLU [interpretation]; padding ``'same'`` (not specified); no batch
  normalisation (not specified); kernels ``he_normal`` (initialisation not specified), biases 0;
  no input preprocessing inside the net (the caller scales the images).
* ``num_classes=None`` leaves out the top ReLU, dropout and task layer (outputs ``{"top"}``
  only): a trunk for separately built heads (e.g. split-weights, :mod:`tfcolor.models.split`).
"""
import math

import keras

__all__ = ["ARCHS", "DEEP_ROWS", "SHALLOW_ROWS", "cifar_net", "deep_net", "shallow_net",
           "thin_channels", "top_size"]

#: Table 4.1 as rows: ``("conv", kernel size, channels, dropout rate)`` or ``("pool",)``.
DEEP_ROWS = (
    ("conv", 5, 64, 0.0), ("conv", 3, 64, 0.0), ("pool",),
    ("conv", 3, 128, 0.1), ("conv", 3, 128, 0.1), ("pool",),
    ("conv", 3, 192, 0.2), ("conv", 3, 192, 0.2), ("pool",),
    ("conv", 3, 192, 0.3), ("conv", 3, 192, 0.3), ("pool",),
)
SHALLOW_ROWS = (
    ("conv", 5, 8, 0.0), ("pool",),
    ("conv", 3, 16, 0.1), ("pool",),
    ("conv", 3, 32, 0.2), ("pool",),
    ("conv", 3, 32, 0.3), ("conv", 3, 192, 0.3), ("pool",),
)
ARCHS = {"deep": DEEP_ROWS, "shallow": SHALLOW_ROWS}
DEFAULT_POOLINGS = 3


def thin_channels(channels, width_divisor):
    """A layer's channels in a 1/M-thin net: ``ceil(channels / M)``."""
    return int(math.ceil(int(channels) / int(width_divisor)))


def _check(arch, input_shape, num_classes, poolings, width_divisor, dropout_scale):
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    shape = tuple(input_shape)
    if len(shape) != 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1
                              for d in shape):
        raise ValueError(f"input_shape must be (height, width, channels) of positive ints, got "
                         f"{input_shape!r}")
    if num_classes is not None and (isinstance(num_classes, bool)
                                    or not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"num_classes must be a positive int or None, got {num_classes!r}")
    if isinstance(poolings, bool) or not isinstance(poolings, int) or not 0 <= poolings <= 4:
        raise ValueError(f"poolings must be 0..4 (the table's four, kept from the first), got "
                         f"{poolings!r}")
    if isinstance(width_divisor, bool) or not isinstance(width_divisor, int) or width_divisor < 1:
        raise ValueError(f"width_divisor must be a positive int, got {width_divisor!r}")
    if not float(dropout_scale) >= 0.0:
        raise ValueError(f"dropout_scale must be >= 0, got {dropout_scale!r}")
    size = 2 ** poolings
    if shape[0] % size or shape[1] % size:
        raise ValueError(f"input height and width must be multiples of {size} for {poolings} "
                         f"poolings, got {shape[:2]}")
    return shape


def top_size(arch="deep", input_shape=(32, 32, 3), *, poolings=DEFAULT_POOLINGS,
             width_divisor=1):
    """The number of top-layer features, e.g. 3,072 for *Deep* at 32 x 32 with three poolings."""
    shape = _check(arch, input_shape, None, poolings, width_divisor, 1.0)
    last = [r for r in ARCHS[arch] if r[0] == "conv"][-1][2]
    side = 2 ** poolings
    return (shape[0] // side) * (shape[1] // side) * thin_channels(last, width_divisor)


def cifar_net(arch="deep", *, input_shape=(32, 32, 3), num_classes=100,
              poolings=DEFAULT_POOLINGS, width_divisor=1, dropout=True, dropout_scale=1.0,
              kernel_initializer="he_normal", name=None):
    """*Deep* or *Shallow* of Table 4.1 (see the module docstring).

    Returns:
        a functional ``keras.Model``: image ``(B, H, W, C)`` -> ``{"top": (B, F)}`` pre-ReLU top
        features, plus ``"task"`` (B, num_classes) logits unless ``num_classes`` is None.

    Raises:
        ValueError: a bad argument (one line, naming it).
    """
    shape = _check(arch, input_shape, num_classes, poolings, width_divisor, dropout_scale)
    rows = ARCHS[arch]
    convs = [r for r in rows if r[0] == "conv"]
    image = keras.Input(shape, name="image")
    x = image
    conv_index = pool_index = 0
    last_rate = 0.0
    for row in rows:
        if row[0] == "pool":
            pool_index += 1
            if pool_index <= poolings:
                x = keras.layers.MaxPooling2D(2, 2, name=f"pool{pool_index}")(x)
            continue
        _, size, channels, rate = row
        conv_index += 1
        rate = float(rate) * float(dropout_scale) if dropout else 0.0
        x = keras.layers.Conv2D(thin_channels(channels, width_divisor), size, padding="same",
                                kernel_initializer=kernel_initializer,
                                name=f"conv{conv_index}")(x)
        if conv_index == len(convs):
            last_rate = rate   # the last conv: ReLU and dropout after the (pooled) top
            continue
        x = keras.layers.ReLU(name=f"relu{conv_index}")(x)
        if rate > 0.0:
            x = keras.layers.Dropout(rate, name=f"dropout{conv_index}")(x)
    top = keras.layers.Flatten(name="top")(x)
    outputs = {"top": top}
    if num_classes is not None:
        h = keras.layers.ReLU(name="top_relu")(top)
        if last_rate > 0.0:
            h = keras.layers.Dropout(last_rate, name="top_dropout")(h)
        outputs["task"] = keras.layers.Dense(num_classes, kernel_initializer=kernel_initializer,
                                             name="task")(h)
    return keras.Model(image, outputs, name=name or f"{arch}_net")


def deep_net(**kwargs):
    """``cifar_net("deep", **kwargs)``: 8 conv layers, 64-192 channels."""
    return cifar_net("deep", **kwargs)


def shallow_net(**kwargs):
    """``cifar_net("shallow", **kwargs)``: 5 thin conv layers, 8-192 channels."""
    return cifar_net("shallow", **kwargs)
