"""Distillation as a :class:`~tfcolor.tasks.base.Task`: a student learns to reproduce the
activations of one or several frozen teachers (METHOD_CH4.md §8.1).

The target (:mod:`tfcolor.distill.teachers`): each teacher's activations at ``teacher_layer``
(task-driven distillation: the task layer, e.g. ``"task"`` of a classifier; task-agnostic: the
top non-task layer, ``"top"``, pre-ReLU by default), combined into one target by ``combine``:
``"subset"`` (a random subset of the concatenated features, drawn once from ``subset_seed``),
``"concat"``, ``"average"`` (the ensemble of §8.1.1) or ``"auxiliary"`` (the student's features
go through a ReLU and a fully connected layer with as many outputs as the teachers have; the
layer is trained with the student and is not part of it: :meth:`DistillationTask.student`).

The student: the activations at ``student_layer`` (default: ``teacher_layer``) of the model the
trainer gives (:meth:`build_model_on`: a shared trunk, so distillation trains on the multi-task
trainer alone or jointly with other proxy tasks; :meth:`build_model`: ``student()``, a
:class:`~tfcolor.models.multitask.SharedTrunk` or a functional ``keras.Model``). With
``dropout`` a dropout layer follows every ReLU of the student below the target (the student's
layers and weights are shared, so the other tasks of a joint run see no dropout).
``warm_start`` (a teacher index) copies that teacher's weights into the student once, when the
model is built (a resumed run then restores its checkpoint over them).

The loss: ``loss`` is a kind of :func:`tfcolor.distill.losses.make_loss` (``"ab"``: the AB
divergence, default alpha = 1/4, beta = 0; ``"exp"``, ``"kl"``, ``"l2"``) with ``loss_options``,
or any Keras loss whose ``call(teacher, student)`` gives one value per row. The kinds that
pre-normalise by the teacher statistics (``"ab"``, ``"exp"``, ``"l2"``) get ``scale=s``:
``"auto"`` computes ``s = sqrt(E[y^2])`` of the target, per feature or one scalar
(``per_feature_scale``), over the first ``statistics_batches`` training batches before
training, and with ``statistics_path`` keeps it there (a resumed run reads it back and refuses
a file computed for another set-up); a number or sequence is used as given; None: no ``s``.
Spatial activations (B, h, w, C) give one row per position; an image's loss is the mean over its
positions. Normalisation (the contract's): the sum of the images' losses divided by the global
batch size. Losses are computed in float32 (mixed precision too). No logged terms.

The data: ``dataset_fn(start)`` (batches with ``"image"`` (B, H, W, C) in [0, 1], optionally
``"index"``), or the pretraining pipeline (:func:`tfcolor.baselines.inputs.pretraining_batches`
of ``data_config``: random crops and mirrors) read in colour (``color=True``) or grey. Every
network gets the image in its own number of channels (:func:`tfcolor.distill.teachers.
fit_channels`: grey repeated to RGB-encoded grey). ``augment`` adds a random mirror and a
random translation by up to ``augment_pad`` pixels (zero padding, then a crop; drawn from the
seed and the element's stream position, so a resumed run draws the same), before both teacher
and student see the image ([interpretation]: the thesis uses FractalNet's augmentation, which it
does not spell out).
"""
import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tfcolor import config as config_lib
from tfcolor.baselines import inputs
from tfcolor.config import ConfigError
from tfcolor.distill import losses as losses_lib
from tfcolor.distill import teachers as teachers_lib
from tfcolor.models import multitask as multitask_lib
from tfcolor.tasks import base

__all__ = ["DistillationTask", "default_data_config", "SCALED_LOSSES", "loss_options_of"]

#: Loss kinds that divide teacher and student by the teacher statistics ``s``.
SCALED_LOSSES = ("ab", "exp", "l2")


def default_data_config(**fields):
    """Distillation's default :class:`tfcolor.config.DataConfig` (one point per crop: the
    pipeline's sampled centres are not used); ``fields`` override."""
    values = dict(points=1, edge_buffer=0, validation_images=0)
    values.update(fields)
    return config_lib.DataConfig(**values)


def loss_options_of(distill):
    """The :func:`tfcolor.distill.losses.make_loss` options of a
    :class:`tfcolor.config.DistillConfig`'s loss, without ``scale``."""
    kind = distill.distill_loss
    if kind == "ab":
        return dict(alpha=distill.alpha, beta=distill.beta,
                    normalize_student=distill.normalize_student)
    if kind == "exp":
        return dict(temperature=distill.temperature,
                    normalize_student=distill.normalize_student)
    if kind == "kl":
        return dict(temperature=distill.temperature)
    return dict(normalize_student=distill.normalize_student)


class DistillationTask(base.Task):
    """Match a student's activations to frozen teachers' (see the module docstring).

    Args:
        teachers: :class:`tfcolor.distill.teachers.Teacher` objects, or paths
            (:func:`tfcolor.distill.teachers.load_teacher`, loaded when the model is built), or
            a mix.
        student: ``student()`` -> a ``SharedTrunk`` or a functional ``keras.Model``, for
            :meth:`build_model` (not needed on the multi-task trainer).
        teacher_layer, pre_relu: the teachers' activations
            (:func:`tfcolor.distill.teachers.resolve_layer`).
        student_layer: the student's activations (default: ``teacher_layer``).
        combine, subset_spread, subset_seed: how several teachers become one target.
        loss, loss_options: the loss (module docstring).
        scale: ``"auto"``, None, a number or a per-feature sequence (module docstring).
        per_feature_scale, statistics_batches, statistics_path: the computed statistics.
        dropout: student dropout after its ReLUs (0: none).
        augment, augment_pad: augmentation.
        warm_start: index of the teacher the student starts from, or None.
        color: read colour images (else grey) from the pretraining pipeline; teachers given as
            paths are loaded for colour input too.
        arch: architecture of a teacher export that does not record it.
        data_config, source, pipeline_options, seed: the pretraining pipeline (as
            :class:`tfcolor.tasks.jigsaw.JigsawTask`'s); ``seed`` also seeds augmentation.
        dataset_fn: ``dataset_fn(start)`` -> batches with ``"image"``, instead of the pipeline.
        name: the task's name (``"distillation"``).

    Raises:
        tfcolor.config.ConfigError: a bad option, named.
    """

    name = "distillation"

    def __init__(self, teachers, *, student=None, teacher_layer="top", pre_relu=True,
                 student_layer=None, combine="subset", subset_spread="uniform", subset_seed=0,
                 loss="ab", loss_options=None, scale="auto", per_feature_scale=True,
                 statistics_batches=20, statistics_path=None, dropout=0.0, augment=False,
                 augment_pad=4, warm_start=None, color=False, arch="vgg16", data_config=None,
                 source=None, pipeline_options=None, seed=0, dataset_fn=None,
                 name="distillation"):
        teachers = list(teachers) if isinstance(teachers, (list, tuple)) else [teachers]
        if not teachers:
            raise ConfigError("teachers: name at least one teacher", "teachers")
        for t in teachers:
            if not isinstance(t, (teachers_lib.Teacher, str)):
                raise ConfigError(f"teachers must be Teacher objects or paths, got "
                                  f"{type(t).__name__}", "teachers")
            if isinstance(t, str):
                teachers_lib.describe_teacher(t)  # a bad path: a one-line error now
        if combine not in teachers_lib.COMBINATIONS:
            raise ConfigError(f"combine must be one of {', '.join(teachers_lib.COMBINATIONS)}, "
                              f"got {combine!r}", "combine")
        if subset_spread not in teachers_lib.SPREADS:
            raise ConfigError(f"subset_spread must be one of {', '.join(teachers_lib.SPREADS)}"
                              f", got {subset_spread!r}", "subset_spread")
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ConfigError(f"student_dropout must be in [0, 1), got {dropout!r}",
                              "student_dropout")
        if warm_start is not None and not (isinstance(warm_start, int)
                                           and 0 <= warm_start < len(teachers)):
            raise ConfigError(f"warm_start must be the index of a teacher (0..{len(teachers) - 1})"
                              f", got {warm_start!r}", "warm_start")
        if isinstance(loss, str) and loss not in ("ab", "exp", "kl", "l2"):
            raise ConfigError(f"distill_loss must be ab, exp, kl or l2, got {loss!r}",
                              "distill_loss")
        if isinstance(statistics_batches, bool) or not isinstance(statistics_batches, int) or \
                statistics_batches <= 0:
            raise ConfigError(f"statistics_batches must be a positive integer, got "
                              f"{statistics_batches!r}", "statistics_batches")
        self.name = name
        self.teachers = teachers
        self.student_fn = student
        self.teacher_layer = teacher_layer
        self.pre_relu = bool(pre_relu)
        self.student_layer = student_layer or teacher_layer
        self.combine = combine
        self.subset_spread = subset_spread
        self.subset_seed = int(subset_seed)
        self.loss = loss
        self.loss_options = dict(loss_options or {})
        self.scale = scale
        self.per_feature_scale = bool(per_feature_scale)
        self.statistics_batches = statistics_batches
        self.statistics_path = statistics_path
        self.dropout = float(dropout)
        self.augment = bool(augment)
        self.augment_pad = int(augment_pad)
        self.warm_start_index = warm_start
        self.color = bool(color)
        self.arch = arch
        self.seed = int(seed)
        self.dataset_fn = dataset_fn
        self.source = source
        if dataset_fn is None:
            self.data_config = inputs.check_data_config(
                    default_data_config() if data_config is None else data_config)
            self.pipeline_options = inputs.check_pipeline_options(pipeline_options, seed)
        self.indices = None        # the feature subset, once drawn
        self.target_scale = None   # s, once known
        self.loss_fn = None
        self._loaded = None
        self._dataset0 = None

    # -- teachers and target --------------------------------------------------------------

    def loaded_teachers(self):
        """The :class:`~tfcolor.distill.teachers.Teacher` objects (paths loaded once)."""
        if self._loaded is None:
            self._loaded = [
                t if isinstance(t, teachers_lib.Teacher) else teachers_lib.load_teacher(
                    t, self.teacher_layer, pre_relu=self.pre_relu, color_input=self.color,
                    arch=self.arch)
                for t in self.teachers]
        return self._loaded

    def target(self, images):
        """The combined teacher target on ``images`` (float32, no gradient)."""
        features = [t(images) for t in self.loaded_teachers()]
        return teachers_lib.combine(features, self.combine, self.indices)

    def identity(self):
        """What the teacher statistics depend on (kept with them in the ``model_dir``)."""
        names = [t if isinstance(t, str) else t.name for t in self.teachers]
        return {"teachers": names, "teacher_layer": self.teacher_layer,
                "pre_relu": self.pre_relu, "combine": self.combine,
                "subset": teachers_lib.indices_digest(self.indices),
                "per_feature": self.per_feature_scale, "batches": self.statistics_batches,
                "color": self.color, "augment": self.augment}

    # -- the contract ---------------------------------------------------------------------

    def build_model(self):
        if self.student_fn is None:
            raise ConfigError("DistillationTask.build_model needs student=callable (or train "
                              "it on a shared trunk: build_model_on)", "student")
        return self.build_model_on(self.student_fn())

    def build_model_on(self, trunk):
        """The student on ``trunk`` (a ``SharedTrunk`` or a functional ``keras.Model``):
        ``image -> {"features"}`` (and ``"prediction"``, the auxiliary layer's output, with
        ``combine="auxiliary"``). Loads the teachers, draws the subset, computes (or reads) the
        statistics and builds the loss."""
        base_model = trunk.model if isinstance(trunk, multitask_lib.SharedTrunk) else trunk
        teachers = self.loaded_teachers()
        if self.warm_start_index is not None:
            teacher = teachers[self.warm_start_index]
            if not isinstance(teacher.model, keras.Model):
                raise ConfigError("warm_start needs a Keras teacher (not a bare SavedModel)",
                                  "warm_start")
            teachers_lib.warm_start(base_model, teacher.model)
        graph, features = self._student_features(base_model)
        inputs = graph.inputs[0] if len(graph.inputs) == 1 else graph.inputs
        self.input_channels = graph.inputs[0].shape[-1]
        sample = self._first_images()
        widths = [int(t(sample).shape[-1]) for t in teachers]
        width = int(features.shape[-1])
        self._draw_subset(widths, width)
        outputs = {"features": features}
        if self.combine == "auxiliary":
            aux = teachers_lib.auxiliary_layer(sum(widths))
            outputs["prediction"] = aux(features)
        model = keras.Model(inputs, outputs, name=f"{self.name}_student")
        missing = {id(v) for v in base_model.trainable_variables} - {
            id(v) for v in model.trainable_variables}
        if missing:  # a layer below the top: keep the trunk's variables in the model
            outputs.update({f"unused_{k}": v for k, v in _as_dict(graph.output).items()})
            model = keras.Model(inputs, outputs, name=f"{self.name}_student")
        target = self.target(sample)
        got = model(fit(sample, self.input_channels), training=False)
        got = got.get("prediction", got["features"])
        if tuple(target.shape[1:]) != tuple(got.shape[1:]):
            raise ConfigError(f"the target has shape {tuple(target.shape[1:])} per image, the "
                              f"student gives {tuple(got.shape[1:])} (teacher_layer "
                              f"{self.teacher_layer!r}, student_layer {self.student_layer!r}, "
                              f"combine {self.combine!r})", "teacher_layer")
        self.loss_fn = self._make_loss(self._statistics())
        return model

    def student(self, model):
        """The distilled student of ``model`` (from :meth:`build_model_on`) without the
        auxiliary layer: ``image -> features``."""
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        return keras.Model(inputs, model.output["features"], name=f"{self.name}_distilled")

    def head_variables(self, model):
        """The auxiliary layer's variables (the part of the model that is not the student)."""
        return [v for layer in model.layers if layer.name.startswith(
                teachers_lib.AUXILIARY_NAME) for v in layer.trainable_variables]

    def build_inputs(self, start=0):
        # The stream from the start is built once: the trainer, the subset's widths and the
        # statistics all read it (each iteration starts afresh).
        if start == 0 and self._dataset0 is not None:
            return self._dataset0
        dataset = self._build_inputs(start)
        if start == 0:
            self._dataset0 = dataset
        return dataset

    def _build_inputs(self, start):
        if self.dataset_fn is not None:
            dataset = self.dataset_fn(start)
            if "index" not in dataset.element_spec:
                dataset = dataset.enumerate().map(
                        lambda i, b: dict(b, _counter=tf.cast(i, tf.int64)))
        else:
            key = "rgb" if self.color else "gray"
            dataset = inputs.pretraining_batches(self.data_config, self.source,
                                                 self.pipeline_options, start).map(
                    lambda b: {"image": b[key], "index": b["index"]})
        if not self.augment:
            return dataset.map(lambda b: {k: v for k, v in b.items() if k != "_counter"})
        seed, pad = self.seed, self.augment_pad

        def augment(batch):
            batch = dict(batch)
            if "index" in batch:
                keys = tf.cast(batch["index"], tf.int64)
            else:
                rows = tf.shape(batch["image"], out_type=tf.int64)[0]
                keys = batch.pop("_counter") * rows + tf.range(rows)
            batch["image"] = augment_images(batch["image"], keys, seed, pad)
            return batch
        return dataset.map(augment)

    def check_inputs(self, element_spec):
        super().check_inputs(element_spec)
        if "image" not in element_spec:
            raise ValueError(f"distillation batches lack 'image'; got {sorted(element_spec)}")
        if element_spec["image"].shape.rank != 4 or element_spec["image"].shape[0] is None:
            raise ValueError("the dataset must yield images (B, H, W, C) with a static batch "
                             f"size; got {element_spec['image'].shape}")

    def batch_size(self, element_spec):
        return element_spec["image"].shape[0]

    def compute_loss(self, model, batch, *, training, global_batch_size):
        images = tf.cast(batch["image"], tf.float32)
        target = self.target(images)
        out = model(fit(images, self.input_channels), training=training)
        prediction = tf.cast(out.get("prediction", out["features"]), tf.float32)
        per_image = self.per_image(target, prediction)
        return tf.reduce_sum(per_image) / float(global_batch_size), {}

    def per_image(self, target, prediction):
        """The loss of each image (B,): the mean over positions of the per-row loss."""
        channels = target.shape[-1]
        rows = self.loss_fn(tf.reshape(target, [-1, channels]),
                            tf.reshape(prediction, [-1, channels]))
        rows = tf.cast(rows, tf.float32)
        return tf.reduce_mean(tf.reshape(rows, [tf.shape(target)[0], -1]), axis=1)

    # -- helpers --------------------------------------------------------------------------

    def _student_features(self, base_model):
        location = teachers_lib.locate(base_model, self.student_layer, self.pre_relu)
        if not self.dropout:
            return base_model, teachers_lib.resolve_layer(base_model, self.student_layer,
                                                          self.pre_relu)
        captured = {}
        rate = self.dropout

        def call(layer, *args, **kwargs):
            out = layer(*args, **kwargs)
            captured[layer.name] = (args[0] if args else None, out)
            if isinstance(layer, keras.layers.ReLU) or layer.name.endswith("_relu"):
                out = keras.layers.Dropout(rate, name=f"{layer.name}_dropout")(out)
            return out

        clone = keras.models.clone_model(base_model, clone_function=lambda layer: layer,
                                         call_function=call)
        kind, name = location
        if kind == "input":
            return clone, captured[name][0]
        if kind == "output":
            return clone, captured[name][1]
        return clone, (_as_dict(clone.output)[name] if kind == "key" else clone.output)

    def _first_images(self):
        batch = next(iter(self.build_inputs(0).take(1)))
        return tf.cast(batch["image"], tf.float32)

    def _draw_subset(self, widths, width):
        if self.combine == "subset":
            if sum(widths) < width:
                raise ConfigError(f"the teachers have {sum(widths)} features in all, fewer "
                                  f"than the student's {width}", "combine")
            self.indices = teachers_lib.subset_indices(widths, width, self.subset_seed,
                                                       self.subset_spread)
        elif self.combine == "average" and len(set(widths)) > 1:
            raise ConfigError(f"combine=average needs teachers of one width, got {widths}",
                              "combine")

    def _statistics(self):
        kind_scaled = not isinstance(self.loss, str) or self.loss in SCALED_LOSSES
        if self.scale is None or not kind_scaled:
            self.target_scale = None
            return None
        if not (isinstance(self.scale, str) and self.scale == "auto"):
            self.target_scale = self.scale
            return self.scale
        identity = self.identity()
        scale = None
        if self.statistics_path:
            scale = teachers_lib.load_statistics(self.statistics_path, identity)
        if scale is None:
            batches = (tf.cast(b["image"], tf.float32) for b in
                       self.build_inputs(0).take(self.statistics_batches))
            scale, count = teachers_lib.target_statistics(batches, self.target,
                                                          self.per_feature_scale)
            if self.statistics_path:
                teachers_lib.save_statistics(self.statistics_path, scale, identity, count)
        if np.ndim(scale) == 0:
            scale = float(scale)
        else:
            scale = np.asarray(scale, np.float32)
        self.target_scale = scale
        return scale

    def _make_loss(self, scale):
        if not isinstance(self.loss, str):
            loss = self.loss
        else:
            options = dict(self.loss_options)
            if self.loss in SCALED_LOSSES and scale is not None:
                options["scale"] = scale.tolist() if isinstance(scale, np.ndarray) else scale
            try:
                loss = losses_lib.make_loss(self.loss, **options)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"distill_loss {self.loss}: {e}", "distill_loss") from e
        return loss.call if isinstance(loss, keras.losses.Loss) else loss

    # -- configuration --------------------------------------------------------------------

    @classmethod
    def from_config(cls, config, data_config=None, *, pipeline_options=None, seed=None,
                    statistics_path=None):
        """The task of a :class:`tfcolor.config.PretrainConfig`'s ``distill`` section (its
        ``data`` section unless ``data_config`` is given; ``model.arch`` for teacher exports
        without one)."""
        d = config.distill
        if not d.teachers:
            raise ConfigError("teachers: a distillation run needs at least one teacher "
                              "(--teachers=DIR,...)", "teachers")
        return cls(list(d.teachers), teacher_layer=d.teacher_layer, pre_relu=d.pre_relu,
                   student_layer=d.student_layer or None, combine=d.combine,
                   subset_spread=d.subset_spread, subset_seed=d.subset_seed,
                   loss=d.distill_loss, loss_options=loss_options_of(d),
                   scale="auto" if d.teacher_scale else None,
                   per_feature_scale=d.per_feature_scale,
                   statistics_batches=d.statistics_batches, statistics_path=statistics_path,
                   dropout=d.student_dropout, augment=d.augment, augment_pad=d.augment_pad,
                   warm_start=None if d.warm_start < 0 else d.warm_start,
                   color=d.color_images, arch=config.model.arch,
                   data_config=data_config or dataclasses.replace(config.data),
                   pipeline_options=pipeline_options,
                   seed=config.train.seed if seed is None else seed)


def fit(images, channels):
    """``images`` in the student's number of channels."""
    return teachers_lib.fit_channels(images, channels)


def _as_dict(output):
    if isinstance(output, dict):
        return output
    outputs = output if isinstance(output, (list, tuple)) else [output]
    return {str(i): o for i, o in enumerate(outputs)}


def augment_images(images, keys, seed, pad):
    """A random mirror and translation (zero padding of ``pad``, then a crop back to the size)
    of each image, drawn from ``(seed, key)``: the same key always gives the same result."""
    shape = tf.shape(images)
    height, width = shape[1], shape[2]

    def one(args):
        image, key = args
        s = tf.stack([tf.constant(seed, tf.int64), key])
        image = tf.image.stateless_random_flip_left_right(image, seed=s)
        if pad:
            padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
            image = tf.image.stateless_random_crop(
                    padded, tf.stack([height, width, tf.shape(image)[-1]]), seed=s + 1)
        return image

    return tf.map_fn(one, (images, keys), fn_output_signature=tf.TensorSpec(
            images.shape[1:], images.dtype))
