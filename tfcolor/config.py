"""Plain dataclass configurations of pretraining, validated with clear errors.

The library validates; the absl entry points (``binaries/``) only turn flags into these objects
and the programs (``tfcolor.programs``) run them.
Every field has the paper's value (or, where the paper is silent, the released Caffe code's) as
its default, and the source of every constant is given next to it.

``PretrainConfig`` groups seven parts:

* :class:`ModelConfig`: trunk architecture, hypercolumn taps, +FoV, batch normalization, head.
* :class:`DataConfig`: data source, crop size, batch size, sampled points per image.
* :class:`LossConfig`: loss kind (``hue_chroma``, ``lab_hist``, ``lab_joint``,
  ``lab_regression``), target window.
* :class:`OptimizerConfig`: SGD with momentum, step-drop learning-rate schedule, weight decay,
  bias learning-rate multiplier, gradient clipping.
* :class:`TrainConfig`: steps, strategy, checkpoints, summaries, determinism, mixed precision.
* :class:`MultiTaskConfig`: the proxy tasks trained on the trunk (colorization alone by default,
  or several on one shared trunk) and how their gradients combine.
* :class:`DistillConfig`: the teachers, target and loss of the ``distillation`` task.

Optimizer constants (paper and released code)
---------------------------------------------
The ECCV 2016 paper trains with SGD, momentum 0.9, dropping the learning rate in steps; the CVPR
2017 paper stresses that dropping the rate *during pretraining* matters downstream (49.1 vs 52.9
VOC mIU for 3 epochs without / with a drop). The released Caffe solver
(``autocolorize/train/solver_vgg16.prototxt``) uses base_lr 0.001, multistep drops by 0.1 at
1M, 1.5M and 1.75M of 2M iterations, momentum 0.9, weight_decay 5e-4; its network definition
puts ``decay_mult: 0`` and ``lr_mult: 2`` on every bias. The released TensorFlow code
(``selfsup``) instead applies ``1e-6 * l2_loss`` to the head's weights only and no decay on the
trunk: select it with ``weight_decay=0, head_weight_decay=1e-6``.

Weight decay is implemented as an L2 term in the loss, ``0.5 * wd * sum(w ** 2)`` over kernels
(Caffe's ``grad += wd * w``), not as decoupled decay; biases and batch-normalization statistics
are not decayed.

One vocabulary
--------------
Each value has one name from the program flag to the dataclass field to the library argument:
``binaries/pretrain --points=64`` is ``DataConfig.points`` is ``pretrain_dataset(...,
points)``; the only flag named otherwise is ``--loss`` for ``LossConfig.kind``. The allowed
values are defined once, by the module that owns the concept, and imported here:
:data:`tfcolor.losses.LOSS_KINDS`, :data:`tfcolor.models.trunk.BATCH_NORM_CHOICES`,
:data:`tfcolor.layers.CONVENTIONS`, :data:`tfcolor.train.strategy.STRATEGY_NAMES`.
A :class:`ConfigError` names the field at fault (``field``, or ``section.field`` from
:meth:`PretrainConfig.validate`) in its message and in its ``field`` attribute, which the
programs turn into the flag's name.
"""
import dataclasses
import glob
import math
import os
import typing

from tfcolor.layers import CONVENTIONS
from tfcolor.losses import LOSS_KINDS
from tfcolor.models.trunk import BATCH_NORM_CHOICES, DEFAULT_INPUT_MEAN, architectures

#: Released Caffe: centres uniform in [96, 256) on a 352 crop (``DataConfig.edge_buffer=None``).
CAFFE_EDGE_BUFFER_FRACTION = 96.0 / 352.0
#: The paper scales the short side into [352, 600] for 352 crops (``DataConfig.max_side=None``).
PAPER_MAX_SIDE_FRACTION = 600.0 / 352.0


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the allowed values.

    Args:
        message: the message; when ``field`` is given it starts with the field's name (``field``
            itself or its last dotted part, e.g. ``"batch_size must be ..."``).
        field: the field at fault, ``"field"`` or ``"section.field"`` (``"data.batch_size"``);
            None when the error is not about one field.

    Attributes:
        field: as given; the message then starts with it.
    """

    def __init__(self, message, field=None):
        self.field = field
        self._rest = None
        if field is not None:
            for prefix in (field, field.rsplit(".", 1)[-1]):
                if message.startswith(prefix):
                    self._rest = message[len(prefix):]
                    message = field + self._rest
                    break
        super().__init__(message)

    def naming(self, name):
        """The message with the field called ``name`` instead (e.g. its flag, ``"--points"``)."""
        return str(self) if self._rest is None else name + self._rest

    def in_section(self, section):
        """The same error with the field qualified by its section: ``data.batch_size``."""
        if self.field is None or self._rest is None:
            return self
        field = f"{section}.{self.field}"
        return ConfigError(field + self._rest, field)


def known_architectures():
    """Names accepted by ``ModelConfig.arch``: the trunks registered in :mod:`tfcolor.models`."""
    return tuple(architectures())


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}", name)


def _non_negative_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}", name)


def _non_negative_float(name, value):
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)
            or value < 0):
        raise ConfigError(f"{name} must be a non-negative number, got {value!r}", name)


def _positive_float(name, value):
    _non_negative_float(name, value)
    if value == 0:
        raise ConfigError(f"{name} must be positive, got {value!r}", name)


def _choice(name, value, choices):
    if value not in choices:
        raise ConfigError(
            f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}", name)


@dataclasses.dataclass
class ModelConfig:
    """The colorizer network.

    Attributes:
        arch: trunk name (``vgg16``, ``alexnet``, ``resnet152``, ``vgg_tiny``, ...).
        taps: hypercolumn taps: ``None``/"all" (paper), a tap name, a range ``"first-last"``, or a
            list of those (see :func:`tfcolor.models.resolve_taps`).
        fov: pretrain with the two "+FoV" blocks on top, in the hypercolumn. The paper's +FoV is
            a downstream (segmentation) addition, ``tfcolor.downstream.initialization.add_fov_blocks`` /
            ``binaries/finetune --fov``; pretraining with it is possible but is not the paper's.
        batch_norm: ``"parameter_free"`` (paper), ``"standard"`` or ``"none"``; ``None`` uses the
            architecture's default.
        sync_batch_norm: synchronize BN batch statistics across replicas (no effect on one
            replica). On by default so that multi-replica training normalizes over the global
            batch like the paper's single GPU did.
        hidden: width of the head's hidden layer (h_fc1: 1024 in the paper).
        dropout: dropout after h_fc1 (the released Caffe net: 0.5).
        input_mean: grey input mean subtracted by the trunk (0.4488).
        convention: sparse sampling convention, ``"released"`` or ``"half_pixel"``.
        prior_bias: start the head's output bias at the log marginal histogram of the training
            targets (:class:`tfcolor.prior.MarginalPrior` of the training data, at most
            ``tfcolor.train.pretraining.PRIOR_BIAS_IMAGES`` images): the untrained colorizer
            then predicts the prior instead of uniform histograms, and the first steps learn
            what the image adds to it. Off in the paper (Xavier output layers, zero biases).
            Only the initialization: a resumed run keeps its checkpoint's weights, and the
            field may change between restarts.
    """
    arch: str = "vgg16"
    taps: typing.Any = None
    fov: bool = False
    batch_norm: typing.Optional[str] = None
    sync_batch_norm: bool = True
    hidden: int = 1024
    dropout: float = 0.5
    input_mean: float = DEFAULT_INPUT_MEAN
    convention: str = "released"
    prior_bias: bool = False

    def validate(self):
        archs = known_architectures()
        if self.arch not in archs:
            raise ConfigError(f"arch={self.arch!r} is not a known architecture; known: "
                              f"{', '.join(archs)}", "arch")
        if self.batch_norm is not None:
            _choice("batch_norm", self.batch_norm, BATCH_NORM_CHOICES)
        _positive_int("hidden", self.hidden)
        _fraction("dropout", self.dropout, "[0, 1)", upper_open=True)
        _fraction("input_mean", self.input_mean, "[0, 1]", upper_open=False)
        _choice("convention", self.convention, CONVENTIONS)
        if not isinstance(self.prior_bias, bool):
            raise ConfigError(f"prior_bias must be true or false, got {self.prior_bias!r}",
                              "prior_bias")
        return self


def _fraction(name, value, shown, *, upper_open):
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and (
        0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0)
    if not ok:
        raise ConfigError(f"{name} must be in {shown}, got {value!r}", name)


@dataclasses.dataclass
class DataConfig:
    """The pretraining data: what :func:`tfcolor.data.pretrain_dataset` computes per image.

    How the pipeline runs (seed, order determinism, caching, resuming, decoding limits) is given
    to :func:`~tfcolor.data.pretrain_dataset` as keyword options
    (:class:`tfcolor.data.pretrain.PipelineOptions`); the targets' kind and window are the
    :class:`LossConfig`'s ``kind`` and ``window``.

    Attributes:
        data: ``"embedded"`` (the photos shipped with tfcolor), a folder, a glob, a TFRecord
            pattern (``*.tfrecord*``), or ``"tfds:NAME[/CONFIG][:SPLIT]"``.
        batch_size: global batch size (paper: 8 on one GPU); split evenly across replicas.
        crop_size: square crop side (paper: 352).
        min_side, max_side: the shortest image side is scaled uniformly into this range before
            cropping (paper: 352 to 600). ``None``: ``crop_size`` to ``crop_size * 600 / 352``.
        points: sampled pixel centres per image (paper: 128; the CVPR 2017 study used up to 256).
        edge_buffer: centres are kept this many pixels from the crop border (released Caffe:
            96 at 352, i.e. centres in [96, 256)); ``None``: the same fraction of the crop.
        targets_on_device: build targets inside the training step instead of in tf.data:
            True, False or ``"auto"`` (on when a GPU/TPU is visible).
        shuffle_buffer: tf.data shuffle buffer (records) of TFRecord/TFDS sources and of a
            cache.
        validation_images: images kept aside for the summary/preview colorization grid.
        heldout_data: a source of photos never trained on (same forms as ``data``, e.g.
            ``"embedded:validation"`` or a holdout folder) for the held-out loss curve
            (:mod:`tfcolor.train.heldout`); ``None``: no held-out loss.
        heldout_images: how many held-out images (fixed crops and centres) each evaluation uses.
    """
    data: str = "embedded"
    batch_size: int = 8
    crop_size: int = 352
    min_side: typing.Optional[int] = None
    max_side: typing.Optional[int] = None
    points: int = 128
    edge_buffer: typing.Optional[int] = None
    targets_on_device: typing.Union[bool, str] = "auto"
    shuffle_buffer: int = 1024
    validation_images: int = 4
    heldout_data: typing.Optional[str] = None
    heldout_images: int = 64

    @property
    def side_range(self):
        """``(min_side, max_side)`` after defaults: ``crop_size`` and
        ``round(crop_size * 600 / 352)`` for None."""
        lo = self.crop_size if self.min_side is None else self.min_side
        hi = (int(round(self.crop_size * PAPER_MAX_SIDE_FRACTION)) if self.max_side is None
              else self.max_side)
        return lo, hi

    @property
    def resolved_edge_buffer(self):
        """``edge_buffer`` after its default, ``round(crop_size * 96 / 352)`` (released Caffe)."""
        if self.edge_buffer is None:
            return int(round(self.crop_size * CAFFE_EDGE_BUFFER_FRACTION))
        return self.edge_buffer

    def validate(self, *, sources=True):
        """Raises :class:`ConfigError` naming the first bad field; returns self.

        ``sources=False`` skips the checks that ``data`` and ``heldout_data`` exist (for a
        pipeline reading another source; opening a missing one fails with its own error).
        """
        if not isinstance(self.data, str) or not self.data.strip():
            raise ConfigError("data must name a data source (path, glob, TFRecord pattern, "
                              "'tfds:NAME' or 'embedded'), got an empty value", "data")
        if sources:
            _check_data_source("data", self.data)
        _positive_int("batch_size", self.batch_size)
        _positive_int("crop_size", self.crop_size)
        _positive_int("points", self.points)
        _positive_int("shuffle_buffer", self.shuffle_buffer)
        _positive_int("heldout_images", self.heldout_images)
        if self.heldout_data is not None:
            if not isinstance(self.heldout_data, str) or not self.heldout_data.strip():
                raise ConfigError("heldout_data must name a data source or be None, got "
                                  f"{self.heldout_data!r}", "heldout_data")
            if sources:
                _check_data_source("heldout_data", self.heldout_data)
        if self.targets_on_device not in (True, False, "auto"):
            raise ConfigError(f"targets_on_device must be True, False or 'auto', got "
                              f"{self.targets_on_device!r}", "targets_on_device")
        _non_negative_int("validation_images", self.validation_images)
        for name in ("min_side", "max_side"):
            value = getattr(self, name)
            if value is not None:
                _positive_int(name, value)
                if value < self.crop_size:
                    raise ConfigError(f"{name}={value} is smaller than crop_size="
                                      f"{self.crop_size}: the crop would not fit", name)
        lo, hi = self.side_range
        if hi < lo:
            shown = "" if self.max_side is not None else " (the default for this crop_size)"
            raise ConfigError(f"max_side={hi}{shown} is smaller than min_side={lo}", "max_side")
        if self.edge_buffer is not None:
            _non_negative_int("edge_buffer", self.edge_buffer)
        buffer = self.resolved_edge_buffer
        if 2 * buffer >= self.crop_size:
            raise ConfigError(f"edge_buffer={buffer} leaves no room for centres in a "
                              f"crop_size={self.crop_size} crop (need 2 * edge_buffer < crop)",
                              "edge_buffer")
        return self


def _check_data_source(name, data):
    """Raises ConfigError naming ``name`` when a local data source obviously does not exist."""
    if data == "embedded" or data.startswith("embedded:") or data.startswith("tfds:"):
        if data.startswith("tfds:") and len(data) <= len("tfds:"):
            raise ConfigError(f"{name}='tfds:' needs a dataset name, e.g. 'tfds:imagenet2012'",
                              name)
        return
    if "://" in data:  # gs://, s3://: checked when opened
        return
    if any(c in data for c in "*?["):
        if not glob.glob(os.path.expanduser(data)):
            raise ConfigError(f"{name}={data!r}: the pattern matches no file", name)
        return
    if not os.path.exists(os.path.expanduser(data)):
        raise ConfigError(f"{name}={data!r}: no such file or directory", name)


@dataclasses.dataclass
class LossConfig:
    """The colorization loss.

    Attributes:
        kind: ``hue_chroma`` (paper's best), ``lab_hist``, ``lab_joint`` or ``lab_regression``.
        window: side R of the window whose colour histogram is the target (paper: 7; 1 is a
            plain log loss).
        hue_weight: lambda_H of the hue/chroma loss (paper: 5).
        lightness_weight: weight the chroma term by ``min(3L, 1, 3(1 - L))`` (released Caffe
            prototxt); off in the paper.
    """
    kind: str = "hue_chroma"
    window: int = 7
    hue_weight: float = 5.0
    lightness_weight: bool = False

    def validate(self):
        _choice("kind", self.kind, LOSS_KINDS)
        _positive_int("window", self.window)
        if self.window % 2 == 0:
            raise ConfigError(f"window must be odd (centred on the pixel), got {self.window}",
                              "window")
        _non_negative_float("hue_weight", self.hue_weight)
        return self


@dataclasses.dataclass
class OptimizerConfig:
    """SGD with momentum and a step-drop ("multistep") learning-rate schedule.

    Attributes:
        learning_rate: initial rate (released Caffe: 0.001).
        lr_drops: steps at which the rate is multiplied by ``lr_drop_factor`` (released Caffe:
            1M, 1.5M, 1.75M of 2M). Fractions in (0, 1) are read as fractions of
            ``train_steps`` (so ``[0.5, 0.75, 0.875]`` reproduces the Caffe shape at any length).
        lr_drop_factor: multiplier at each drop (0.1).
        momentum: 0.9.
        weight_decay: L2 on trunk kernels (Caffe: 5e-4).
        head_weight_decay: L2 on head kernels; ``None``: same as ``weight_decay``. The released
            TF code used 1e-6 on the head and nothing on the trunk.
        bias_lr_multiplier: biases learn this much faster (released Caffe ``lr_mult: 2``).
        clip_norm: clip the global gradient norm (after the cross-replica sum); ``None``: off.
        warmup_steps: a linear learning-rate warm-up: the update with 0-based index ``d <
            warmup_steps`` uses ``learning_rate * (d + 1) / warmup_steps``; 0: none (the
            papers' single-task runs). NormSGD needs "a brief warm-up" (METHOD_CH4.md §8.3.4;
            its length is not specified). Drops falling inside the warm-up are refused.
    """
    learning_rate: float = 0.001
    lr_drops: typing.Sequence[float] = (0.5, 0.75, 0.875)
    lr_drop_factor: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    head_weight_decay: typing.Optional[float] = None
    bias_lr_multiplier: float = 2.0
    clip_norm: typing.Optional[float] = None
    warmup_steps: int = 0

    def validate(self):
        _positive_float("learning_rate", self.learning_rate)
        _positive_float("lr_drop_factor", self.lr_drop_factor)
        _fraction("momentum", self.momentum, "[0, 1)", upper_open=True)
        _non_negative_float("weight_decay", self.weight_decay)
        if self.head_weight_decay is not None:
            _non_negative_float("head_weight_decay", self.head_weight_decay)
        _positive_float("bias_lr_multiplier", self.bias_lr_multiplier)
        if self.clip_norm is not None:
            _positive_float("clip_norm", self.clip_norm)
        for d in self.lr_drops:
            if isinstance(d, bool) or not isinstance(d, (int, float)) or d <= 0:
                raise ConfigError(f"lr_drops must be positive numbers (steps, or fractions of "
                                  f"train_steps in (0, 1)); got {list(self.lr_drops)!r}",
                                  "lr_drops")
        _non_negative_int("warmup_steps", self.warmup_steps)
        return self

    def drop_steps(self, train_steps):
        """The drops as sorted, distinct, absolute step numbers for a run of ``train_steps``."""
        steps = set()
        for d in self.lr_drops:
            steps.add(int(round(d * train_steps)) if d < 1 else int(d))
        return sorted(s for s in steps if s > 0)

    def learning_rates(self, train_steps):
        """(boundaries, values) of the piecewise-constant schedule."""
        boundaries = self.drop_steps(train_steps)
        values = [self.learning_rate * self.lr_drop_factor ** i
                  for i in range(len(boundaries) + 1)]
        return boundaries, values


@dataclasses.dataclass
class TrainConfig:
    """The training run.

    Attributes:
        model_dir: checkpoints, TensorBoard summaries, the colorization grid and the export.
        train_steps: total optimizer steps (a resumed run continues up to this number).
        steps_per_loop: steps per ``tf.function`` call (one host round trip).
        checkpoint_every: steps between checkpoints (rounded to whole loops).
        keep_checkpoints: how many recent checkpoints to keep.
        summary_every: steps between scalar summaries and progress lines.
        image_every: steps between colorized validation grids in TensorBoard (0: off).
        strategy: ``default``/``one_device``, ``mirrored``, ``multi_worker`` or ``tpu``.
        tpu: TPU name or address for ``strategy="tpu"`` ("" = local / from the environment).
        mixed_precision: train in ``mixed_float16`` with dynamic loss scaling.
        deterministic: seed everything and enable TF op determinism (same losses run to run).
        seed: random seed.
        export: write a SavedModel into ``model_dir/export`` at the end.
        eval_every: steps between held-out loss evaluations (with ``DataConfig.heldout_data``).
        keep_best: keep the model of the evaluation with the lowest held-out loss as
            ``model_dir/best/`` (needs ``DataConfig.heldout_data``; :mod:`tfcolor.train.heldout`)
            and make it the run's model: the end-of-run preview and export, ``binaries/export``
            and every loader of the run directory (:func:`tfcolor.run_dir.load_model`) use it
            instead of the last checkpoint. The record survives resuming. Off: the last step's
            model is the run's model.
    """
    model_dir: str = "runs/pretrain"
    train_steps: int = 2_000_000
    steps_per_loop: int = 50
    checkpoint_every: int = 10_000
    keep_checkpoints: int = 5
    summary_every: int = 100
    image_every: int = 5_000
    strategy: str = "default"
    tpu: str = ""
    mixed_precision: bool = False
    deterministic: bool = False
    seed: int = 0
    export: bool = True
    eval_every: int = 1000
    keep_best: bool = False

    def validate(self):
        # cycle: tfcolor.config <- tfcolor.train (the package imports trainer, which imports config)
        from tfcolor.train.strategy import STRATEGY_NAMES  # pylint: disable=import-outside-toplevel
        if not isinstance(self.model_dir, str) or not self.model_dir.strip():
            raise ConfigError("model_dir must be a directory path, got an empty value",
                              "model_dir")
        for name in ("train_steps", "steps_per_loop", "checkpoint_every", "keep_checkpoints",
                     "summary_every", "eval_every"):
            _positive_int(name, getattr(self, name))
        _non_negative_int("image_every", self.image_every)
        _choice("strategy", self.strategy, STRATEGY_NAMES)
        _non_negative_int("seed", self.seed)
        if not isinstance(self.keep_best, bool):
            raise ConfigError(f"keep_best must be true or false, got {self.keep_best!r}",
                              "keep_best")
        return self


#: The proxy tasks a pretraining run can combine on one trunk (``MultiTaskConfig.tasks``).
PROXY_TASKS = ("colorization", "jigsaw", "video", "denoising", "split_brain", "distillation")
#: NormSGD options of ``MultiTaskConfig`` (the rule's keyword arguments).
NORMSGD_OPTIONS = ("freeze_step", "ema_decay", "normsgd_epsilon", "normalize_heads",
                   "decay_after_normalisation")


@dataclasses.dataclass
class MultiTaskConfig:
    """Several proxy tasks on one shared trunk (METHOD_CH4.md §8.3, §8.5; docs/multitask.md).

    The default, ``tasks=("colorization",)``, is single-task colorization pretraining, the
    papers' run; with other or more tasks the run trains a
    :class:`tfcolor.train.multitask_step.MultiTaskStep`.

    Attributes:
        tasks: task names from :data:`PROXY_TASKS`, in order (e.g. ``("colorization",
            "jigsaw")``: C+J).
        gradient_rule: ``"sum"`` (joint SGD, eq. 4.9), ``"normsgd"`` (eq. 4.11, the thesis'
            multi-proxy runs), ``"separate"`` (one adaptive optimizer per task, eq. 4.10) or
            ``"split_weights"`` (§8.2.2: a trunk weight gets only the gradient of the task
            whose column holds its destination unit; task m owns column m).
        schedule: ``"joint"`` (every task every step) or ``"round_robin"`` (one task per
            ``quantum`` steps, §8.3.5).
        quantum: steps per round-robin turn.
        task_weights: ``{task: weight}`` (default 1 each); under NormSGD they weight the
            normalised gradients.
        round_robin_state: ``"per_task"`` (each task keeps its own momentum, [interpretation])
            or ``"shared"``.
        separate_optimizer: ``"adam"`` (multi-Adam) or ``"sgd"``, for ``gradient_rule=
            "separate"``.
        reduction: ``"mean"`` (eq. 4.9) or ``"sum"`` of the task gradients under ``sum``.
        average_heads: a head gets its task's share ``w_m/M`` of the step (else ``w_m``).
        freeze_step: NormSGD freezes its statistics here; None: after the warm-up, before the
            first drop (:func:`tfcolor.train.gradient_rules.default_freeze_step`).
        ema_decay, normsgd_epsilon, normalize_heads, decay_after_normalisation: NormSGD's
            options (:class:`tfcolor.train.gradient_rules.NormSGDRule`; ``normsgd_epsilon`` is
            its ``epsilon``).
        task_data: ``{task: {DataConfig field: value}}``: each task's input section. Fields not
            given come from the task's own defaults (jigsaw: 500 x 500 sources; video: its
            corpus) and, for ``data`` (the photos) and ``batch_size``, from the run's ``data``
            section. Colorization's section is the run's ``data`` section with these overrides.
        loss_scales: ``{task: factor}``: multiply a task's loss by a constant
            (:class:`tfcolor.tasks.scaled.ScaledTask`; the "contrived" test of §8.3.2: joint
            SGD follows the scaled task, NormSGD does not change). Default 1 each.
        task_options: ``{task: {option: value}}``: further task arguments (jigsaw:
            ``piece_size``, ``color``; video: see :class:`tfcolor.tasks.video.VideoTask`).
        input_channels: channels of the shared trunk's input: 3 (colour for jigsaw and video,
            RGB-encoded grey for colorization, §8.5.1) or 1 (grey for every task).
        init: "" (a fresh trunk) or a run whose trunk starts this run's shared trunk (a
            colorization or multi-task ``model_dir``, a colorization export or a baseline
            ``model_dir``; the inter-proxy runs of Fig. 4.7: "C -> J"). Read once, when the run
            starts from scratch; the first layer is converted between grey and colour input
            (:func:`tfcolor.train.trunk_init.initialize_trunk`).
        train_trunk: False trains the task layers only, on a fixed trunk (Fig. 4.7's runs
            without "(ft)"; without ``init``, a fixed random trunk: the untrained control);
            True (default) trains end to end.
    """
    tasks: typing.Sequence[str] = ("colorization",)
    gradient_rule: str = "normsgd"
    schedule: str = "joint"
    quantum: int = 1000
    task_weights: dict = dataclasses.field(default_factory=dict)
    loss_scales: dict = dataclasses.field(default_factory=dict)
    round_robin_state: str = "per_task"
    separate_optimizer: str = "adam"
    reduction: str = "mean"
    average_heads: bool = True
    freeze_step: typing.Optional[int] = None
    ema_decay: float = 0.99
    normsgd_epsilon: float = 1e-12
    normalize_heads: bool = True
    decay_after_normalisation: bool = True
    task_data: dict = dataclasses.field(default_factory=dict)
    task_options: dict = dataclasses.field(default_factory=dict)
    input_channels: int = 3
    init: str = ""
    train_trunk: bool = True

    @property
    def single_colorization(self):
        """True for the papers' single-task colorization run: colorization alone, from scratch,
        end to end, with the optimizer section's momentum SGD (the gradient rules ``sum`` and
        ``normsgd`` combine several tasks and are not used for colorization alone;
        ``separate`` asks for one Adam per task, which the shared-trunk path gives)."""
        return (list(self.tasks) == ["colorization"] and not self.init and self.train_trunk
                and self.gradient_rule != "separate")

    def validate(self):
        tasks = list(self.tasks)
        if not tasks:
            raise ConfigError("tasks must name at least one task", "tasks")
        unknown = [t for t in tasks if t not in PROXY_TASKS]
        if unknown:
            raise ConfigError(f"tasks: unknown {unknown}; known: {', '.join(PROXY_TASKS)}",
                              "tasks")
        if len(set(tasks)) != len(tasks):
            raise ConfigError(f"tasks must be distinct, got {tasks}", "tasks")
        _choice("gradient_rule", self.gradient_rule,
                ("sum", "normsgd", "separate", "split_weights"))
        _choice("schedule", self.schedule, ("joint", "round_robin"))
        _positive_int("quantum", self.quantum)
        _choice("round_robin_state", self.round_robin_state, ("per_task", "shared"))
        _choice("separate_optimizer", self.separate_optimizer, ("adam", "sgd"))
        _choice("reduction", self.reduction, ("mean", "sum"))
        for name in ("task_weights", "loss_scales", "task_data", "task_options"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a mapping task -> value, got {value!r}", name)
            stray = sorted(set(value) - set(tasks))
            if stray:
                raise ConfigError(f"{name} names tasks that are not trained: {stray} (tasks: "
                                  f"{', '.join(tasks)})", name)
        for name in ("task_weights", "loss_scales"):
            for task, weight in getattr(self, name).items():
                if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (
                        weight > 0):
                    raise ConfigError(f"{name} of {task} must be a positive number, got "
                                      f"{weight!r}", name)
        known = {f.name for f in dataclasses.fields(DataConfig)}
        for task, fields in self.task_data.items():
            if not isinstance(fields, dict):
                raise ConfigError(f"task_data of {task} must be a mapping of data fields",
                                  "task_data")
            bad = sorted(set(fields) - known)
            if bad:
                raise ConfigError(f"task_data of {task}: unknown data fields {bad}",
                                  "task_data")
        if self.freeze_step is not None:
            _non_negative_int("freeze_step", self.freeze_step)
        _fraction("ema_decay", self.ema_decay, "[0, 1)", upper_open=True)
        _non_negative_float("normsgd_epsilon", self.normsgd_epsilon)
        for name in ("average_heads", "normalize_heads", "decay_after_normalisation"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false", name)
        _choice("input_channels", self.input_channels, (1, 3))
        if not isinstance(self.init, str):
            raise ConfigError(f"init must be a path or empty, got {self.init!r}", "init")
        if not isinstance(self.train_trunk, bool):
            raise ConfigError("train_trunk must be true or false", "train_trunk")
        if not self.train_trunk:
            if self.gradient_rule == "normsgd":
                raise ConfigError("gradient_rule normsgd normalises gradients over the shared "
                                  "trunk, which train_trunk=false fixes: use sum",
                                  "gradient_rule")
        return self

    def rule_options(self):
        """The gradient rule's keyword arguments."""
        if self.gradient_rule == "normsgd":
            options = {k: getattr(self, k) for k in NORMSGD_OPTIONS}
            options["epsilon"] = options.pop("normsgd_epsilon")
            if options["freeze_step"] is None:
                del options["freeze_step"]
        elif self.gradient_rule == "sum":
            options = {"reduction": self.reduction}
        else:
            options = {}
        options["average_heads"] = self.average_heads
        return options


def parse_task_weights(items, field="task_weights"):
    """``["colorization:1", "jigsaw:2"]`` (or one comma-separated string) -> ``{task: weight}``.

    Raises:
        ConfigError: an item that is not ``TASK:NUMBER``.
    """
    out = {}
    for item in _items(items):
        task, sep, value = item.partition(":")
        try:
            if not sep or not task.strip():
                raise ValueError
            out[task.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"{field}: {item!r} is not TASK:WEIGHT (e.g. jigsaw:0.5)",
                              field) from None
    return out


def parse_task_fields(items, field="task_data"):
    """``["jigsaw.crop_size=128", "video.data=~/v"]`` (or one comma-separated string) ->
    ``{task: {name: value}}``; values are read as int, float, true/false/none or kept as text.

    Raises:
        ConfigError: an item that is not ``TASK.NAME=VALUE``.
    """
    out = {}
    for item in _items(items):
        key, sep, value = item.partition("=")
        task, dot, name = key.strip().partition(".")
        if not sep or not dot or not task or not name:
            raise ConfigError(f"{field}: {item!r} is not TASK.NAME=VALUE (e.g. "
                              "jigsaw.crop_size=128)", field)
        out.setdefault(task, {})[name] = _literal(value.strip())
    return out


def _items(items):
    if isinstance(items, str):
        items = items.split(",")
    return [i.strip() for i in items or () if i and i.strip()]


def _literal(text):
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return os.path.expanduser(text) if text.startswith("~") else text


#: Loss kinds of distillation (:func:`tfcolor.distill.losses.make_loss`).
DISTILL_LOSSES = ("ab", "exp", "kl", "l2")


@dataclasses.dataclass
class DistillConfig:
    """Distillation from frozen teachers (METHOD_CH4.md §8.1; the task
    :class:`tfcolor.tasks.distillation.DistillationTask`, trained when ``multitask.tasks`` names
    ``"distillation"``; docs/distillation.md).

    Attributes:
        teachers: the teachers: colorization or multi-task ``model_dir`` s, exports, baseline
            ``model_dir`` s or SavedModels.
        teacher_layer: the matched activations: ``"top"`` (the top non-task layer, task-agnostic
            distillation), a layer name or a trunk tap (e.g. the task layer: task-driven).
        pre_relu: read a layer followed by a ReLU before it ([interpretation] of §8.1.2).
        student_layer: the student's matched layer ("": ``teacher_layer``).
        combine: several teachers: ``"subset"`` (random feature subset), ``"concat"``,
            ``"average"`` (ensemble) or ``"auxiliary"`` (auxiliary layer on the student).
        subset_spread: ``"uniform"`` over all M F features or ``"per_teacher"`` (F / M each).
        subset_seed: the subset's seed (drawn once).
        distill_loss: ``"ab"`` (AB divergence), ``"exp"`` (eq. 4.2), ``"kl"`` (eq. 4.1) or
            ``"l2"``.
        alpha, beta: the AB divergence's parameters (1/4, 0: Table 4.3).
        temperature: T of ``"exp"`` and ``"kl"``.
        normalize_student: divide the student by the teacher statistics too.
        teacher_scale: pre-normalise by the teacher statistics s (eq. 4.4; ``ab``, ``exp``,
            ``l2``).
        per_feature_scale: one s per feature (else one scalar).
        statistics_batches: training batches s is computed over, once, before training.
        student_dropout: dropout after each ReLU of the student (0: none).
        augment: random mirror and translation of the distillation images.
        augment_pad: the translation's range in pixels.
        warm_start: index of the teacher the student starts from (same architecture); -1: none.
        color_images: distil on colour images (else grey; RGB-encoded for 3-channel nets).
    """
    teachers: typing.Sequence[str] = ()
    teacher_layer: str = "top"
    pre_relu: bool = True
    student_layer: str = ""
    combine: str = "subset"
    subset_spread: str = "uniform"
    subset_seed: int = 0
    distill_loss: str = "ab"
    alpha: float = 0.25
    beta: float = 0.0
    temperature: float = 4.0
    normalize_student: bool = True
    teacher_scale: bool = True
    per_feature_scale: bool = True
    statistics_batches: int = 20
    student_dropout: float = 0.0
    augment: bool = False
    augment_pad: int = 4
    warm_start: int = -1
    color_images: bool = False

    def validate(self):
        if isinstance(self.teachers, str) or not all(
                isinstance(t, str) and t for t in self.teachers):
            raise ConfigError(f"teachers must be a list of paths, got {self.teachers!r}",
                              "teachers")
        _choice("combine", self.combine, ("subset", "concat", "average", "auxiliary"))
        _choice("subset_spread", self.subset_spread, ("uniform", "per_teacher"))
        _choice("distill_loss", self.distill_loss, DISTILL_LOSSES)
        _non_negative_int("subset_seed", self.subset_seed)
        _positive_int("statistics_batches", self.statistics_batches)
        _non_negative_int("augment_pad", self.augment_pad)
        _positive_float("temperature", self.temperature)
        for name in ("alpha", "beta"):
            if not isinstance(getattr(self, name), (int, float)) or isinstance(
                    getattr(self, name), bool) or not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be a finite number", name)
        if not isinstance(self.student_dropout, (int, float)) or not (
                0.0 <= self.student_dropout < 1.0):
            raise ConfigError(f"student_dropout must be in [0, 1), got {self.student_dropout!r}",
                              "student_dropout")
        if isinstance(self.warm_start, bool) or not isinstance(self.warm_start, int) or not (
                -1 <= self.warm_start < max(len(self.teachers), 1)):
            raise ConfigError(f"warm_start must be -1 or the index of a teacher, got "
                              f"{self.warm_start!r}", "warm_start")
        for name in ("pre_relu", "normalize_student", "teacher_scale", "per_feature_scale",
                     "augment", "color_images"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false", name)
        return self


@dataclasses.dataclass
class PretrainConfig:
    """Everything a pretraining run needs (see the module docstring)."""
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    multitask: MultiTaskConfig = dataclasses.field(default_factory=MultiTaskConfig)
    distill: DistillConfig = dataclasses.field(default_factory=DistillConfig)

    def validate(self):
        """Checks every part and their combinations; returns self or raises a ConfigError whose
        field is ``section.field`` (``"data.batch_size"``)."""
        for f in dataclasses.fields(self):
            try:
                getattr(self, f.name).validate()
            except ConfigError as e:
                raise e.in_section(f.name) from None
        drops = self.optimizer.drop_steps(self.train.train_steps)
        late = [d for d in drops if d >= self.train.train_steps]
        if late:
            raise ConfigError(f"lr_drops {late} are at or after train_steps="
                              f"{self.train.train_steps}: the rate would never drop",
                              "optimizer.lr_drops")
        if self.train.keep_best and not self.multitask.single_colorization:
            raise ConfigError("keep_best keeps the colorizer of the lowest held-out loss; a "
                              "multi-task run has several objectives and keeps its last step",
                              "train.keep_best")
        if self.train.keep_best and not self.data.heldout_data:
            raise ConfigError("keep_best needs heldout_data: the best model is the one with the "
                              "lowest held-out loss", "train.keep_best")
        return self

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict`; unknown keys raise ConfigError naming them."""
        parts = {}
        for f in dataclasses.fields(cls):
            sub = dict(d.get(f.name, {}))
            known = {g.name for g in dataclasses.fields(f.default_factory)}
            unknown = sorted(set(sub) - known)
            if unknown:
                raise ConfigError(f"unknown {f.name} config keys: {unknown}")
            parts[f.name] = f.default_factory(**sub)
        extra = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if extra:
            raise ConfigError(f"unknown config sections: {extra}")
        return cls(**parts)
