"""`build_trunk`, the hypercolumn tap tables and the building blocks shared by the trunks.

A *trunk* is a functional ``keras.Model`` from a grey image ``(B, H, W, 1)`` in [0, 1] (or a
colour one, ``input_channels=3``) to a dict ``{tap name: feature map}`` holding the layers a
hypercolumn reads, in hypercolumn order (shallow to deep). The trunk subtracts the input mean
itself (a ``Rescaling`` layer named ``"data"``, whose output is the ``"data"`` tap), so callers
always feed [0, 1].

Tap tables
----------
``TAP_STRIDES[arch]`` maps every tap of an architecture to its stride (input pixels per feature
map cell), in hypercolumn order; the "+FoV" taps are in ``FOV_TAP_STRIDES[arch]``.
:func:`tap_strides` returns the table of one trunk configuration (selected taps, +FoV).
Feature maps have spatial size ``ceil(H / stride)`` (every convolution and pooling uses "same"
padding), so a tap's stride is exact for every input size, not only multiples of 32.

Selecting taps (``taps=``)
--------------------------
``None`` or ``"all"``: every tap (plus ``fov1``/``fov2`` with ``fov=True``), which is the paper's
hypercolumn (12,417 channels for VGG-16). Otherwise a tap name, a range ``"first-last"``
(inclusive, in hypercolumn order, e.g. ``"conv4_1-fc7"``, ``"fc6-fc7"``, ``"conv1_1-conv5_3"``), or
a list mixing both. Ablations over hypercolumn layers (e.g. "fc6 and fc7 only", "from conv4
up") are ranges; ``TAP_PRESETS[arch]`` names a few selections (``"hypercolumn"`` = all;
for VGG-16 ``"released"`` = conv1_1-fc7, the layer list of the authors' TensorFlow code, which
leaves out the data layer the paper includes; ``"block_heads"`` = the first conv of each block
plus data and fc7). Selected taps are returned in hypercolumn order whatever order they were
given in. Layers above the deepest selected tap are not built.

Batch normalization
-------------------
``batch_norm="parameter_free"`` (the default for VGG-16 and AlexNet, as in the paper: trained
from scratch with no learned gamma/beta) is ``BatchNormalization(center=False, scale=False)``;
``"standard"`` learns gamma and beta; ``"none"`` builds no BN layer (e.g. to load ImageNet
weights or after :func:`tfcolor.surgery.absorb_batch_norm`). BN sits after the convolution and
before the ReLU, as in the released code (``selfsup/model/vgg16_bn.py``), with epsilon 1e-5.
Moving averages use Keras' fixed momentum (0.99 by default); the released code ramps its
momentum from 0 to 0.999 over the first 1000 steps, which a fixed 0.99 approximates without
leaving the statistics unusable after short runs. ``sync_batch_norm=True`` builds
``BatchNormalization(synchronized=True)``, which averages the batch statistics over the replicas
of a ``tf.distribute`` strategy (the released code trained on one GPU, so the per-replica batch
was the whole batch).

Initialization: Xavier (``glorot_uniform``) kernels and zero biases, as in the paper.
"""
import collections
import importlib
import re

import keras

BATCH_NORM_CHOICES = ("parameter_free", "standard", "none")
BN_EPSILON = 1e-5
DEFAULT_INPUT_MEAN = 0.4488
FOV_CHANNELS = 1024

_ARCH_MODULES = ("tfcolor.models.vgg", "tfcolor.models.alexnet", "tfcolor.models.resnet")
_ARCHS = {}  # arch name -> (builder, tap strides, default batch norm)
TAP_STRIDES = {}
FOV_TAP_STRIDES = {}
TAP_PRESETS = {}


def register_arch(name, builder, strides, *, default_batch_norm="parameter_free", presets=None):
    """Registers an architecture for :func:`build_trunk` (used by the trunk modules).

    Args:
        name: architecture name, e.g. ``"vgg16"``.
        builder: ``builder(x, ctx) -> dict`` building the layers on the mean-shifted input ``x``
            and returning every tap's tensor; it calls ``ctx.tap(name, tensor)`` for each tap and
            may stop early when ``ctx.done`` becomes true.
        strides: list of ``(tap name, stride)`` in hypercolumn order (without the +FoV taps).
        default_batch_norm: what ``batch_norm=None`` means for this architecture.
        presets: optional dict of named tap selections.
    """
    strides = collections.OrderedDict(strides)
    last = list(strides.values())[-1]
    _ARCHS[name] = (builder, default_batch_norm)
    TAP_STRIDES[name] = strides
    FOV_TAP_STRIDES[name] = collections.OrderedDict([("fov1", 2 * last), ("fov2", 4 * last)])
    TAP_PRESETS[name] = dict(presets or {})


def architectures():
    """Names of the registered architectures."""
    _ensure_registered()
    return sorted(_ARCHS)


def _ensure_registered():
    # The architecture modules register themselves on import.
    for module in _ARCH_MODULES:
        importlib.import_module(module)


def _check_arch(arch):
    _ensure_registered()
    if arch not in _ARCHS:
        raise ValueError(f"Unknown trunk architecture {arch!r}; expected one of {sorted(_ARCHS)}.")


def resolve_taps(arch, taps=None, fov=False):
    """The selected tap names of ``arch`` in hypercolumn order.

    Args:
        arch: architecture name.
        taps: ``None``/``"all"``, a preset name, a tap name, a range ``"first-last"`` or a list of
            those (see the module docstring).
        fov: whether the +FoV taps ``fov1``, ``fov2`` exist.

    Returns:
        A list of tap names, in hypercolumn order, without duplicates.

    Raises:
        ValueError: on an unknown name, a reversed range or an empty selection.
    """
    _check_arch(arch)
    order = list(TAP_STRIDES[arch]) + (list(FOV_TAP_STRIDES[arch]) if fov else [])
    if taps is None:
        return order
    items = [taps] if isinstance(taps, str) else list(taps)
    if not items:
        raise ValueError("taps must select at least one tap; got an empty list.")
    chosen = set()
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"taps entries must be strings; got {item!r}.")
        if item == "all":
            chosen.update(order)
            continue
        if item in order:
            chosen.add(item)
            continue
        if item in TAP_PRESETS[arch]:
            chosen.update(resolve_taps(arch, TAP_PRESETS[arch][item], fov))
            continue
        match = re.fullmatch(r"([A-Za-z0-9_]+)-([A-Za-z0-9_]+)", item)
        if match and match.group(1) in order and match.group(2) in order:
            i, j = order.index(match.group(1)), order.index(match.group(2))
            if i > j:
                raise ValueError(f"Tap range {item!r} is reversed: {match.group(1)} comes after "
                                 f"{match.group(2)} in the {arch} hypercolumn order {order}.")
            chosen.update(order[i:j + 1])
            continue
        hint = " (the +FoV taps need fov=True)" if item in FOV_TAP_STRIDES[arch] else ""
        raise ValueError(f"Unknown tap {item!r} for {arch}{hint}; expected 'all', a preset "
                         f"{sorted(TAP_PRESETS[arch])}, a tap name or a range 'first-last' "
                         f"over {order}.")
    return [name for name in order if name in chosen]


def tap_strides(arch, taps=None, fov=False):
    """``OrderedDict`` {tap name: stride} of the selected taps, in hypercolumn order."""
    names = resolve_taps(arch, taps, fov)
    table = collections.OrderedDict(TAP_STRIDES[arch])
    table.update(FOV_TAP_STRIDES[arch])
    return collections.OrderedDict((name, table[name]) for name in names)


class BuildContext:
    """What the architecture builders need: layer factories and the tap bookkeeping."""

    def __init__(self, batch_norm, sync_batch_norm, wanted, kernel_initializer,
                 bn_momentum):
        self.batch_norm = batch_norm
        self.sync_batch_norm = sync_batch_norm
        self.kernel_initializer = kernel_initializer
        self.bn_momentum = bn_momentum
        self.wanted = set(wanted)
        self.taps = collections.OrderedDict()

    @property
    def done(self):
        """True once every wanted tap has been produced (deeper layers are not needed)."""
        return self.wanted.issubset(self.taps)

    def tap(self, name, tensor):
        self.taps[name] = tensor

    def bn(self, x, name):
        """The configured batch normalization (identity when ``batch_norm="none"``)."""
        if self.batch_norm == "none":
            return x
        learn = self.batch_norm == "standard"
        return keras.layers.BatchNormalization(
                center=learn, scale=learn, epsilon=BN_EPSILON, momentum=self.bn_momentum,
                synchronized=self.sync_batch_norm, name=name)(x)

    def conv(self, x, filters, kernel_size, name, *, strides=1, groups=1, use_bias=True):
        return keras.layers.Conv2D(
                filters, kernel_size, strides=strides, padding="same", groups=groups,
                use_bias=use_bias, kernel_initializer=self.kernel_initializer, name=name)(x)

    def conv_bn_relu(self, x, filters, kernel_size, name, *, strides=1, groups=1,
                     use_bias=True):
        """Conv (named ``name``) -> BN (``name + "_bn"``) -> ReLU (``name + "_relu"``)."""
        x = self.conv(x, filters, kernel_size, name, strides=strides, groups=groups,
                      use_bias=use_bias)
        x = self.bn(x, name + "_bn")
        return keras.layers.ReLU(name=name + "_relu")(x)

    def max_pool(self, x, size, strides, name):
        return keras.layers.MaxPooling2D(size, strides=strides, padding="same", name=name)(x)

    def fov_blocks(self, x):
        """The two "+FoV" blocks: 2x2 max-pool stride 2, 3x3 conv 1024, BN, ReLU (each a tap)."""
        for i in (1, 2):
            x = self.max_pool(x, 2, 2, name=f"fov{i}_pool")
            x = self.conv_bn_relu(x, FOV_CHANNELS, 3, name=f"fov{i}")
            self.tap(f"fov{i}", x)
        return x


def build_trunk(arch, *, batch_norm=None, sync_batch_norm=False, fov=False, taps=None,
                input_mean=DEFAULT_INPUT_MEAN, name=None, kernel_initializer="glorot_uniform",
                bn_momentum=0.99, input_channels=1, **arch_kwargs):
    """Builds a trunk: grey image in [0, 1] -> {tap name: feature map}.

    Args:
        arch: ``"vgg16"``, ``"vgg_tiny"``, ``"alexnet"``, ``"resnet152"`` or ``"resnet_tiny"``
            (see :func:`architectures`).
        batch_norm: ``"parameter_free"``, ``"standard"`` or ``"none"``; ``None`` picks the
            architecture's default (parameter-free for VGG/AlexNet, standard for ResNet).
        sync_batch_norm: synchronise BN statistics across replicas (MirroredStrategy).
        fov: add the two "+FoV" blocks on top, exposed as taps ``fov1`` and ``fov2``.
        taps: which taps the model outputs (see the module docstring); ``None`` = all.
        input_mean: subtracted from the [0, 1] input by the ``"data"`` layer.
        name: model name (defaults to ``arch``).
        kernel_initializer: initializer of every convolution kernel (Xavier by default).
        bn_momentum: momentum of the BN moving averages.
        input_channels: channels of the input image (1: grey, the colorizer's input; 3: colour,
            e.g. the jigsaw task's pieces or an RGB-encoded grey image). The input mean is
            subtracted from every channel.
        **arch_kwargs: architecture-specific options (e.g. ``groups`` for AlexNet).

    Returns:
        A functional ``keras.Model`` with input ``(None, None, None, input_channels)`` and a dict
        output {tap: (B, ceil(H/stride), ceil(W/stride), C)} in hypercolumn order.

    Raises:
        ValueError: on an unknown architecture, batch norm choice or tap.
    """
    _check_arch(arch)
    builder, default_bn = _ARCHS[arch]
    if batch_norm is None:
        batch_norm = default_bn
    if batch_norm not in BATCH_NORM_CHOICES:
        raise ValueError(f"batch_norm must be one of {BATCH_NORM_CHOICES}; got {batch_norm!r}.")
    if sync_batch_norm and batch_norm == "none":
        raise ValueError("sync_batch_norm=True needs batch normalization; got batch_norm='none'.")
    try:
        input_mean = float(input_mean)
    except (TypeError, ValueError):
        raise ValueError(f"input_mean must be a number; got {input_mean!r}.") from None
    if (isinstance(input_channels, bool) or not isinstance(input_channels, int)
            or input_channels <= 0):
        raise ValueError(f"input_channels must be a positive integer; got {input_channels!r}.")
    wanted = resolve_taps(arch, taps, fov)
    ctx = BuildContext(batch_norm, bool(sync_batch_norm), wanted, kernel_initializer,
                       bn_momentum)
    gray = keras.Input(shape=(None, None, input_channels),
                       name="gray" if input_channels == 1 else "image")
    x = keras.layers.Rescaling(1.0, offset=-input_mean, name="data")(gray)
    ctx.tap("data", x)
    x = builder(x, ctx, **arch_kwargs)
    if fov and not ctx.done:
        ctx.fov_blocks(x)
    outputs = {tap: ctx.taps[tap] for tap in wanted}
    return keras.Model(gray, outputs, name=name or arch)


def merge_options(trunk_options=None, *, batch_norm=None, sync_batch_norm=False,
                  input_mean=None, fov=False):
    """The :func:`build_trunk` keyword arguments of a model that takes the common trunk options
    as its own arguments and the rest as ``trunk_options``: the named ones win when given
    (``None``/``False`` leave ``trunk_options`` as they are)."""
    options = dict(trunk_options or {})
    for key, value in (("batch_norm", batch_norm), ("input_mean", input_mean)):
        if value is not None:
            options[key] = value
    if sync_batch_norm:
        options["sync_batch_norm"] = True
    if fov:
        options["fov"] = True
    return options


def tap_channels(trunk):
    """{tap name: channels} of a built trunk, in its output order."""
    return {key: int(t.shape[-1]) for key, t in trunk.output.items()}
