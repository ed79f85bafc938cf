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
"""
import dataclasses
import typing

from tfcolor.config import ConfigError

__all__ = ["Arm", "ARMS", "PROTOCOLS", "ReproduceConfig"]


@dataclasses.dataclass(frozen=True)
class Arm:
    """A pretraining recipe.

    Attributes:
        objective: a colorization loss kind (``hue_chroma``, ``lab_hist``, ``lab_regression``)
            or a baseline (``denoising``, ``split_brain``).
        lr_drop: drop the learning rate (x0.1 at ``ReproduceConfig.lr_drops``) or keep it.
        lr_scale: multiplier of ``ReproduceConfig.learning_rate``.
        description: one line for the report.
    """
    objective: str
    lr_drop: bool = True
    lr_scale: float = 1.0
    description: str = ""

    @property
    def is_colorizer(self):
        return self.objective not in ("denoising", "split_brain")


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
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive; got {self.learning_rate!r}",
                              "learning_rate")
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
        self.taps = tuple(self.taps)
        if not self.taps:
            raise ConfigError("taps must not be empty", "taps")
        self.probe_learning_rates = _rates("probe_learning_rates", self.probe_learning_rates)
        self.finetune_learning_rates = _rates("finetune_learning_rates",
                                              self.finetune_learning_rates)
        from tfcolor.config import known_architectures  # pylint: disable=import-outside-toplevel
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

    def learning_rates(self, protocol):
        return (self.probe_learning_rates if protocol == "linear_probe"
                else self.finetune_learning_rates)

    def inits(self):
        """The downstream initialisations: ``random`` then ``ARM_sSEED`` per arm and seed."""
        return ["random"] + [init_name(a, s) for a in self.arms for s in self.pretrain_seeds]


def init_name(arm, seed):
    """The name of the trunk of ``arm`` pretrained with ``seed``: ``ARM_sSEED``."""
    return f"{arm}_s{seed}"
