"""The configuration of a reproduction run: pretraining arms, seeds, the downstream grid.

Every default is the recipe the project chose from held-out evidence, not from test scores:

* the pretraining recipe is run E of ``results/colorizer_heldout.json`` (vgg_tiny, taps
  conv1_1..conv3_3, 64 hidden units, dropout 0.5, 128-pixel crops, batch 8, 64 points, learning
  rate 0.001), chosen on the 14 validation photos' held-out loss; its best held-out loss came
  near step 625-1000, hence 1000 steps;
* the downstream set is ``debphoto15`` (15 classes, 103 train / 62 val / 336 test photos, split
  by scene group; its photos never enter pretraining), with the set's own val split for early
  stopping and for the learning rate, which is chosen per initialisation from a grid;
* the linear-probe grid is one step above the last session's (0.03 was its largest rate and
  every initialisation chose it).

An *arm* is a named pretraining recipe (:data:`ARMS`); each arm is pretrained once per
pretraining seed, and every pretrained trunk plus ``random`` is a downstream initialisation.

Multi-proxy arms (the thesis' Table 4.7, METHOD_CH4.md §8.5) train one or more proxy tasks on one
shared trunk through :func:`tfcolor.train.pretrain` (its ``multitask`` section): ``jigsaw`` (J),
``video`` (V), ``cj`` (C+J), ``cjv`` (C+J+V) under NormSGD and ``cj_sgd`` (C+J under plain summed
SGD, the thesis' uneven-gradients case). At CPU scale:

* **batch**: a task alone gets ``batch_size`` images per step; each task of a joint arm gets
  ``batch_size // 2`` (thesis: 8 alone, 4 per task jointly, so C+J sees as many images as one
  task; C+J+V was not reduced further and sees 1.5 times as many);
* **trunk**: the shared trunk takes 3 channels (:class:`tfcolor.config.MultiTaskConfig`
  ``input_channels=3``): colour for J and V, RGB-encoded grey for C (§8.5.1). The ``colorization``
  arm is the reproduction's grey single-task recipe (1-channel conv1), so its conv1 input differs
  from every multi-proxy arm's; the downstream protocol is grey, and a 3-channel conv1 is summed
  over its channels there (:func:`tfcolor.surgery.rgb_to_gray_conv1`);
* **jigsaw**: the source image is ``crop_size`` (the short side scaled to it, a square crop of
  that side: the jigsaw default's 500 at this scale) and a piece is the thesis' 227/500 of it,
  rounded down to a multiple of 8 (:func:`jigsaw_piece_size`: 56 for 128); its head pools the
  deepest of ``taps``, so that, as in the thesis (where J trains every layer up to fc7), every
  task trains exactly the layers the downstream network uses;
* **video**: ``crop_size`` crops of the corpus' 160-pixel frames (``video_corpus``), 128 pairs
  per frame, sparse hypercolumns at ``taps`` with a ``hidden``-wide layer (the colorizer's);
* **NormSGD** (eq. 4.11): momentum SGD on per-task gradients divided by their mean absolute value,
  so its rate is on another scale than SGD's (a normalised gradient has mean ``|g| = 1`` per
  parameter): ``normsgd_learning_rate``, with a linear warm-up of ``normsgd_warmup_steps`` (the
  thesis asks for "a brief warm-up", length not given) and the statistics frozen at the library's
  default (:func:`tfcolor.train.gradient_rules.default_freeze_step`). J and V alone train under
  NormSGD too (§8.5.2: the base network is trained with NormSGD), so J, V, C+J and C+J+V differ
  only in their tasks; ``cj_sgd`` uses ``learning_rate``.

The ``untrained`` arm is a control, not a recipe: the ``colorization`` arm's network at step 0
(the same pretraining config and seed, so bit for bit the weights that arm starts from), with
the batch-normalization statistics of its training photos (the mean batch statistics of the
first ``statistics_steps`` batches of the same pipeline, run in training mode without any update;
:mod:`tfcolor.train.bn_statistics`) and no learning. Downstream it is processed as every
pretrained colorizer (loaded from its model_dir, BN folded into the convolutions, the same
taps), so ``colorization - untrained`` measures what the colorizer learned, apart from how a
folded, unlearned network's activations are scaled (random trunks are re-balanced instead).
It may be listed in ``evaluate_arms`` (the untrained colorizer on the holdout photos: a sanity
baseline); its held-out curve is the one loss at step 0.
"""
import dataclasses
import typing

from tfcolor.config import ConfigError, known_architectures

__all__ = ["Arm", "ARMS", "PROTOCOLS", "ReproduceConfig", "jigsaw_piece_size",
           "DEFAULT_VIDEO_CORPUS"]

#: Where ``tools/build_video_corpus.py`` writes the video corpus by default.
DEFAULT_VIDEO_CORPUS = "~/.cache/tfcolor-video"


@dataclasses.dataclass(frozen=True)
class Arm:
    """A pretraining recipe.

    Attributes:
        objective: a colorization loss kind (``hue_chroma``, ``lab_hist``, ``lab_regression``)
            or a baseline (``denoising``, ``split_brain``).
        lr_drop: drop the learning rate (x0.1 at ``ReproduceConfig.lr_drops``) or keep it.
        lr_scale: multiplier of ``ReproduceConfig.learning_rate`` (or, under NormSGD, of
            ``ReproduceConfig.normsgd_learning_rate``).
        description: one line for the report.
        tasks: proxy tasks trained on one shared trunk (:class:`tfcolor.config.MultiTaskConfig`
            ``tasks``); empty: a single-task recipe of ``objective`` (the reproduction's
            grey-input colorizer or a baseline). With tasks, ``objective`` is the colorization
            loss kind (used when ``colorization`` is one of them).
        gradient_rule: how the task gradients are combined (``MultiTaskConfig.gradient_rule``:
            ``normsgd`` or ``sum``, plain SGD on the mean of the task gradients).
        untrained: a control, not a recipe: the network the single-task colorizer of this arm's
            other fields starts from (same config and seed), with the batch-normalization
            statistics of ``statistics_steps`` batches of its training pipeline and no learning
            (:func:`tfcolor.train.bn_statistics.estimate`).
        statistics_steps: batches the untrained control's BN statistics are averaged over.
    """
    objective: str
    lr_drop: bool = True
    lr_scale: float = 1.0
    description: str = ""
    tasks: typing.Tuple[str, ...] = ()
    gradient_rule: str = "sum"
    untrained: bool = False
    statistics_steps: int = 0

    @property
    def is_multitask(self):
        """Trained through the multi-task path (a shared 3-channel trunk)."""
        return bool(self.tasks)

    @property
    def is_colorizer(self):
        """Trains a colorizer (its held-out curve and holdout evaluation exist)."""
        if self.tasks:
            return "colorization" in self.tasks
        return self.objective not in ("denoising", "split_brain")

    @property
    def label(self):
        """The thesis' name of a multi-proxy arm (``C+J``, ``C+J (SGD)``), else ``objective``."""
        if not self.tasks:
            return self.objective
        text = "+".join(_TASK_LETTERS[t] for t in self.tasks)
        return text + (" (SGD)" if self.gradient_rule == "sum" and len(self.tasks) > 1 else "")

    def task_batch_size(self, batch_size):
        """Images per step of each task: ``batch_size`` alone, half of it jointly (thesis: 8
        alone, 4 per task in C+J and C+J+V)."""
        return batch_size if len(self.tasks) <= 1 else max(1, batch_size // 2)


_TASK_LETTERS = {"colorization": "C", "jigsaw": "J", "video": "V", "denoising": "D"}


def jigsaw_piece_size(crop_size):
    """The side of a jigsaw piece cut from a ``crop_size`` source: the thesis' 227/500 of the
    source, rounded down to a multiple of 8 (vgg_tiny's three poolings before conv4); at least
    8. ``jigsaw_piece_size(128) == 56`` (16 pixels of wiggle room, the thesis' 46 of 500)."""
    return max(8, crop_size * 227 // 500 // 8 * 8)


#: The named arms. ``colorization`` is the paper's method; ``no_lr_drop`` and ``l2_regression``
#: are the two ablations (the CVPR 2017 paper's Fig. 3.4: a learning-rate drop
#: during pretraining matters downstream; Table 3.2: histogram losses beat L2 regression);
#: ``denoising`` and ``split_brain`` are the other self-supervised baselines.
ARMS = {
        "colorization": Arm("hue_chroma", description="hue/chroma histograms (KL), LR drops"),
        "no_lr_drop": Arm("hue_chroma", lr_drop=False,
                          description="as colorization, constant learning rate"),
        "l2_regression": Arm("lab_regression",
                             description="L2 regression of Lab a, b, LR drops (same LR: of "
                                         "0.001, 1e-4, 1e-5 it had the lowest late held-out "
                                         "loss)"),
        "lab_hist": Arm("lab_hist", description="Lab ab histograms (KL), LR drops"),
        "denoising": Arm("denoising", description="denoising autoencoder (salt-and-pepper 5%)"),
        "split_brain": Arm("split_brain", description="split-brain autoencoder (Lab)"),
        # Multi-proxy arms (METHOD_CH4.md §8.5, Table 4.7; module docstring for their sizes).
        "jigsaw": Arm("hue_chroma", tasks=("jigsaw",), gradient_rule="normsgd",
                      description="J: jigsaw 2x2 (24 permutations), colour pieces, NormSGD at "
                                  "normsgd_learning_rate, LR drops"),
        "video": Arm("hue_chroma", tasks=("video",), gradient_rule="normsgd",
                     description="V: relative optical-flow amplitude (32 bins) from one colour "
                                 "frame, NormSGD at normsgd_learning_rate, LR drops"),
        "cj": Arm("hue_chroma", tasks=("colorization", "jigsaw"), gradient_rule="normsgd",
                  description="C+J: colorization (RGB-encoded grey) and jigsaw on one trunk, "
                              "half the batch each, NormSGD at normsgd_learning_rate (1e-5, "
                              "chosen on the colorizer's val held-out loss of a 300-step grid), "
                              "LR drops"),
        "cjv": Arm("hue_chroma", tasks=("colorization", "jigsaw", "video"),
                   gradient_rule="normsgd",
                   description="C+J+V: the three proxies on one trunk, half the batch each, "
                               "NormSGD at normsgd_learning_rate, LR drops"),
        "cj_sgd": Arm("hue_chroma", tasks=("colorization", "jigsaw"), gradient_rule="sum",
                      description="C+J with plain SGD on the mean of the task gradients at "
                                  "learning_rate (the thesis' uneven-gradients case), LR drops"),
        # The control of "learned colour" against "initialisation statistics" (module docstring).
        "untrained": Arm("hue_chroma", untrained=True, statistics_steps=300,
                         description="control: the colorization arm's network at step 0 (same "
                                     "seed), BN statistics of the train photos (mean over 300 "
                                     "batches of its pipeline), no learning"),
}

#: Downstream protocols: ``linear_probe`` freezes the trunk (trains the classifier only);
#: ``finetune`` trains everything.
PROTOCOLS = ("linear_probe", "finetune")


def _ints(name, values, positive=False):
    values = tuple(values)
    if not values:
        raise ConfigError(f"{name} must not be empty", name)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if positive else 0):
            raise ConfigError(f"{name} must hold {'positive' if positive else 'non-negative'} "
                              f"integers; got {v!r}", name)
    if len(set(values)) != len(values):
        raise ConfigError(f"{name} has duplicates: {list(values)}", name)
    return values


def _rates(name, values):
    values = tuple(float(v) for v in values)
    if not values or any(not v > 0 for v in values):
        raise ConfigError(f"{name} must be a non-empty list of positive learning rates; got "
                          f"{list(values)}", name)
    if len(set(values)) != len(values):
        raise ConfigError(f"{name} has duplicates: {list(values)}", name)
    return values


@dataclasses.dataclass
class ReproduceConfig:
    """Everything :func:`tfcolor.reproduce.run` does (module docstring for the defaults).

    Attributes:
        corpus: the folder written by ``tfcolor-build-corpus`` (``manifest.csv`` with
            ``train`` / ``val`` / ``holdout`` splits, ``photos/``, ``labeled/SET.npz``).
        output_dir: where everything goes; rerunning with the same config resumes.
        labeled_set: the ``labeled/SET.npz`` of the corpus used downstream (``x_train`` /
            ``x_val`` / ``x_test`` and their labels).
        arms: pretraining recipes, names of :data:`ARMS`.
        pretrain_seeds: one pretraining run per arm and seed.
        finetune_seeds: one downstream run per initialisation, protocol, rate and seed.
        protocols: subset of :data:`PROTOCOLS`.
        evaluate_arms: colorizer arms evaluated on the holdout photos against grey and the
            marginal prior (every pretraining seed).
        arch, taps, hidden, dropout: the pretraining network.
        crop_size, batch_size, points: the pretraining pipeline.
        pretrain_steps, learning_rate, lr_drops, weight_decay: pretraining optimisation
            (``lr_drops``: fractions of ``pretrain_steps``; arms without a drop ignore them).
        heldout_images, eval_every: held-out loss on the ``val`` photos every ``eval_every``
            steps (the learning curves in the report).
        probe_learning_rates, finetune_learning_rates: the grids, per protocol.
        ft_batch_size, ft_eval_every, ft_max_steps, ft_weight_decay, ft_dropout: the downstream
            protocol (:class:`tfcolor.downstream.protocol.FinetuneConfig`; plateau patience 1,
            two drops, best validation weights restored).
        normsgd_learning_rate: the NormSGD arms' rate (module docstring): 1e-5, chosen from
            1e-6, 3e-6, 1e-5, 3e-5, 1e-4 by the C+J colorizer's val held-out loss after 300
            steps of this recipe (3.842, 3.516, **3.450**, 3.467, 3.520;
            ``results/reproduce_multitask.json``, ``normsgd_grid``). The jigsaw's final training loss
            was above chance level (ln 24 = 3.18) at every rate, from 3.60 at 1e-6 to 177 at
            1e-4: no rate of the grid trains the jigsaw at this scale.
        normsgd_warmup_steps: linear warm-up of the NormSGD arms (5% of 1000 steps; the
            statistics freeze one warm-up later).
        video_corpus: the video corpus (``tools/build_video_corpus.py``; ``train/*.tfrecord``)
            of the arms with video; read only when such an arm is asked for.
    """
    corpus: str = ""
    output_dir: str = ""
    labeled_set: str = "debphoto15"
    arms: typing.Tuple[str, ...] = ("colorization", "no_lr_drop", "l2_regression")
    pretrain_seeds: typing.Tuple[int, ...] = (0, 1)
    finetune_seeds: typing.Tuple[int, ...] = (0, 1, 2, 3, 4)
    protocols: typing.Tuple[str, ...] = PROTOCOLS
    evaluate_arms: typing.Tuple[str, ...] = ("colorization",)
    arch: str = "vgg_tiny"
    taps: typing.Tuple[str, ...] = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1",
                                    "conv3_2", "conv3_3")
    hidden: int = 64
    dropout: float = 0.5
    crop_size: int = 128
    batch_size: int = 8
    points: int = 64
    pretrain_steps: int = 1000
    learning_rate: float = 0.001
    lr_drops: typing.Tuple[float, ...] = (0.5, 0.8)
    weight_decay: float = 5e-4
    heldout_images: int = 14
    eval_every: int = 125
    probe_learning_rates: typing.Tuple[float, ...] = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
    finetune_learning_rates: typing.Tuple[float, ...] = (0.01, 0.03, 0.1)
    ft_batch_size: int = 32
    ft_eval_every: int = 50
    ft_max_steps: int = 1500
    ft_weight_decay: float = 5e-4
    ft_dropout: float = 0.5
    normsgd_learning_rate: float = 1e-5
    normsgd_warmup_steps: int = 50
    video_corpus: str = DEFAULT_VIDEO_CORPUS

    def validate(self):
        """Raises :class:`tfcolor.config.ConfigError` naming the first bad field; returns
        self (with tuples normalised)."""
        for name in ("corpus", "output_dir", "labeled_set"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{name} must be given (a path / name); got {value!r}", name)
        self.arms = tuple(self.arms)
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise ConfigError(f"arms has unknown names {unknown}; known: {sorted(ARMS)}",
                              "arms")
        if len(set(self.arms)) != len(self.arms):
            raise ConfigError(f"arms has duplicates: {list(self.arms)}", "arms")
        self.evaluate_arms = tuple(self.evaluate_arms)
        bad = [a for a in self.evaluate_arms if a not in self.arms or not ARMS[a].is_colorizer]
        if bad:
            raise ConfigError(f"evaluate_arms {bad} must be colorizer arms listed in arms "
                              f"{list(self.arms)}", "evaluate_arms")
        self.protocols = tuple(self.protocols)
        if not self.protocols or any(p not in PROTOCOLS for p in self.protocols):
            raise ConfigError(f"protocols must be a non-empty subset of {PROTOCOLS}; got "
                              f"{list(self.protocols)}", "protocols")
        self.pretrain_seeds = _ints("pretrain_seeds", self.pretrain_seeds)
        self.finetune_seeds = _ints("finetune_seeds", self.finetune_seeds)
        for name in ("hidden", "crop_size", "batch_size", "points", "pretrain_steps",
                     "heldout_images", "eval_every", "ft_batch_size", "ft_eval_every",
                     "ft_max_steps"):
            _ints(name, (getattr(self, name),), positive=True)
        for name in ("dropout", "ft_dropout"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1); got {getattr(self, name)!r}", name)
        for name in ("weight_decay", "ft_weight_decay"):
            if not float(getattr(self, name)) >= 0:
                raise ConfigError(f"{name} must be >= 0; got {getattr(self, name)!r}", name)
        for name in ("learning_rate", "normsgd_learning_rate"):
            if not float(getattr(self, name)) > 0:
                raise ConfigError(f"{name} must be positive; got {getattr(self, name)!r}", name)
        if not isinstance(self.video_corpus, str) or not self.video_corpus.strip():
            raise ConfigError(f"video_corpus must be a folder path; got {self.video_corpus!r}",
                              "video_corpus")
        self.lr_drops = tuple(float(d) for d in self.lr_drops)
        if any(not 0 < d < 1 for d in self.lr_drops) or list(self.lr_drops) != sorted(
                self.lr_drops):
            raise ConfigError(f"lr_drops must be increasing fractions in (0, 1); got "
                              f"{list(self.lr_drops)}", "lr_drops")
        drops = [round(d * self.pretrain_steps) for d in self.lr_drops]
        if any(not 0 < d < self.pretrain_steps for d in drops):
            raise ConfigError(f"lr_drops {list(self.lr_drops)} of pretrain_steps="
                              f"{self.pretrain_steps} fall on steps {drops}: each must be after "
                              "step 0 and before the last step", "lr_drops")
        _ints("normsgd_warmup_steps", (self.normsgd_warmup_steps,))
        normsgd = any(ARMS[a].is_multitask and ARMS[a].gradient_rule == "normsgd"
                      for a in self.arms)
        if normsgd and drops and self.normsgd_warmup_steps >= drops[0]:
            raise ConfigError(f"normsgd_warmup_steps={self.normsgd_warmup_steps} must end before "
                              f"the first learning-rate drop (step {drops[0]})",
                              "normsgd_warmup_steps")
        self.taps = tuple(self.taps)
        if not self.taps:
            raise ConfigError("taps must not be empty", "taps")
        self.probe_learning_rates = _rates("probe_learning_rates", self.probe_learning_rates)
        self.finetune_learning_rates = _rates("finetune_learning_rates",
                                              self.finetune_learning_rates)
        if self.arch not in known_architectures():
            raise ConfigError(f"arch must be one of {known_architectures()}; got {self.arch!r}",
                              "arch")
        return self

    def to_dict(self):
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown reproduce config keys: {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @property
    def uses_video(self):
        """Some arm trains the video task (the video corpus is read)."""
        return any("video" in ARMS[a].tasks for a in self.arms)

    def learning_rates(self, protocol):
        return (self.probe_learning_rates if protocol == "linear_probe"
                else self.finetune_learning_rates)

    def inits(self):
        """The downstream initialisations: ``random`` then ``ARM_sSEED`` per arm and seed."""
        return ["random"] + [init_name(a, s) for a in self.arms for s in self.pretrain_seeds]


def init_name(arm, seed):
    """The name of the trunk of ``arm`` pretrained with ``seed``: ``ARM_sSEED``."""
    return f"{arm}_s{seed}"
