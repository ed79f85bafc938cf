"""Initialisations of downstream networks, and the network side of the protocol.

:func:`load_trunk` returns a trunk (functional ``keras.Model``: images -> {tap: map}) ready for
fine-tuning, from one of these ``init`` values:

=============================== =================================================================
``"random"``                    ``build_trunk(arch)``: Xavier weights, no BN (ResNet: BN kept).
                                With ``rebalance_images`` the random network is re-balanced to
                                unit second moment per layer (:func:`tfcolor.surgery.rebalance`,
                                data-dependent scaling) so that the random baseline is not
                                handicapped by badly scaled activations; without, plain Xavier.
``"imagenet"``                  VGG-16 with the ImageNet weights of a user-supplied
                                ``keras.applications.VGG16`` file (``imagenet_weights=``), via
                                ``tfcolor.models.imagenet_weights.load_vgg16_imagenet_weights``
                                (conv1 summed to grey), then **re-balanced** on
                                ``rebalance_images`` (see below). The supervised upper
                                bound of the paper's tables.
a colorization ``model_dir``    (holds ``config.json`` and checkpoints, written by pretraining):
                                the colorizer is rebuilt and restored with
                                :func:`tfcolor.run_dir.load_model`; its trunk is taken, with
                                every tap up to its deepest one exposed
                                (:func:`with_downstream_taps`: ResNet-152 is pretrained from
                                ``res5c`` alone but its downstream hypercolumn uses more).
a colorization export           (holds ``tfcolor_export.json`` and ``colorizer.keras``):
                                :func:`tfcolor.export.load_keras_model`; its trunk is taken.
a baseline ``model_dir``        (holds ``tfcolor_baseline.json``: :mod:`tfcolor.baselines`):
                                the baseline's downstream trunk (split-brain: both halves).
a multi-task ``model_dir``      (``config.json`` with several tasks, or one other than
                                colorization: :mod:`tfcolor.train.multitask`): its shared trunk
                                (:func:`tfcolor.run_dir.load_shared_trunk`), every tap; its
                                3-channel conv1 is summed over channels for grey input
                                (:func:`tfcolor.surgery.rgb_to_gray_conv1`) and kept for colour.
=============================== =================================================================

Then, following the paper's protocol:

* **Re-balancing an ImageNet VGG-16** (``rebalance_imagenet=True``, the default): the paper
  (CVPR 2017, section 3; METHOD_CH4 errata (d)) re-balances a downstream initialisation that
  was trained without BN and is poorly balanced across layers, "e.g., ImageNet-pretrained
  VGG-16", "so that each layer's activation has unit variance"; its formula
  ``m = 1 / sqrt(E[x^2])`` is the unit *second moment*, which is what
  :func:`tfcolor.surgery.rebalance` does (one scale per layer, estimated on
  ``rebalance_images``, grey or RGB: the grey trunk sees their desaturation). ``init="imagenet"``
  without ``rebalance_images`` is refused unless ``rebalance_imagenet=False`` (the un-rebalanced
  network, not the paper's protocol). Networks trained with BN have their BN absorbed instead.
* **+FoV** (``fov=True``; segmentation only): the paper's "+FoV" is a *downstream* change (CVPR
  2017, section 3.3.2; errata (c)): two fresh blocks, 2x2 max-pool stride 2 then a 3x3
  convolution with 1024 features and a ReLU (Xavier initialisation; the paper gives neither the
  initialisation nor the activation), on top of the trunk's deepest tap, each enlarging the
  receptive field; their outputs are the taps ``fov1`` and ``fov2`` and join the segmentation
  hypercolumn unless ``head_taps`` leaves them out. They are added to *any* initialisation
  (:func:`add_fov_blocks`): random and ImageNet trunks are built with them, pretrained trunks
  (colorization, baselines) get them after loading. The paper reports +FoV only for segmentation
  ("the '+FoV' only affects the segmentation results"), so other tasks refuse it. Pretraining
  with ``--fov`` is still possible, but that is not the paper's +FoV; a pretrained trunk that
  already has ``fov1``/``fov2`` keeps its own (logged).

* **BN absorption** (``absorb_bn="auto"``: yes, except ResNet, where the paper keeps BN): the
  BN statistics are folded into the convolutions (:func:`tfcolor.surgery.absorb_batch_norm`) and
  fine-tuning runs without BN.
* **Grey or colour input** (``color_input``): the pretrained trunks take grey input; the paper
  fine-tunes on grey images by default. With ``color_input=True`` conv1 is made 3-channel by
  replicating the grey kernel and dividing by 3 (:func:`tfcolor.surgery.gray_to_rgb_conv1`), so
  the initial network computes on colour images what it computed on their desaturation.
* **Fine-tuned layers** (:func:`freeze_below`): every weighted layer before ``from_layer`` (in
  the trunk's topological order) is frozen; the paper's study of fine-tuning "from layer X up".
"""
import json
import os

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfcolor import baselines
from tfcolor import export
from tfcolor import models
from tfcolor import run_dir
from tfcolor import surgery
from tfcolor.downstream import model as model_lib
from tfcolor.downstream import pipelines
from tfcolor.downstream import scoring
from tfcolor.models import imagenet_weights as imagenet_weights_lib
from tfcolor.models import trunk as trunk_lib

def _is_resnet(arch):
    return surgery.is_resnet(arch)


def trunk_tap_strides(trunk, arch=None, probe_size=128):
    """Ordered {tap: stride} of a trunk's outputs.

    From ``TAP_STRIDES[arch]`` when the architecture is known (the +FoV taps ``fov1``/``fov2``
    at 2x / 4x the deepest other tap, where :func:`add_fov_blocks` puts them); otherwise measured
    by running the trunk on a ``probe_size`` square (which must be a multiple of the largest
    stride).
    """
    names = list(trunk.output)
    if arch in models.TAP_STRIDES:
        table = dict(models.TAP_STRIDES[arch])
        base = [n for n in names if n not in FOV_TAPS]
        if base and all(n in table for n in base):
            deepest = max(int(table[n]) for n in base)
            table.update({"fov1": 2 * deepest, "fov2": 4 * deepest})
            return {n: int(table[n]) for n in names}
    channels = int(trunk.inputs[0].shape[-1])
    out = trunk(tf.zeros([1, probe_size, probe_size, channels]), training=False)
    return {n: int(round(probe_size / int(out[n].shape[1]))) for n in names}


def describe_init(init):
    """What ``init`` is: ``"random"``, ``"imagenet"``, ``"export"``, ``"colorization"`` or
    ``"baseline"``; raises ValueError with the expected forms otherwise."""
    if init in ("random", "imagenet"):
        return init
    kind = run_dir.describe(str(init))
    if kind is not None:
        return kind
    raise ValueError(f"init={init!r} is neither 'random', 'imagenet', a colorization model_dir "
                     f"(with {run_dir.CONFIG_FILE} and checkpoints), a colorization export (with "
                     f"{run_dir.EXPORT_METADATA_FILE}) nor a baseline model_dir (with "
                     f"{run_dir.BASELINE_FILE}).")


FOV_TAPS = ("fov1", "fov2")


def add_fov_blocks(trunk, arch=None, *, channels=None, kernel_initializer="glorot_uniform"):
    """The trunk with the two fresh "+FoV" blocks on top of its deepest tap (a new model).

    Each block is a 2x2 max-pool with stride 2, then a 3x3 convolution (``channels``, default
    1024, "same" padding, ``kernel_initializer``) and a ReLU; the outputs ``fov1`` and ``fov2``
    (strides 2x and 4x the deepest tap's) are added to the trunk's taps. The graph stays flat
    (one functional model), so surgery and :func:`freeze_below` see the new layers.

    Raises:
        ValueError: if the trunk already has ``fov1`` / ``fov2`` taps.
    """
    present = [t for t in FOV_TAPS if t in trunk.output]
    if present:
        raise ValueError(f"the trunk already has the +FoV taps {present}")
    channels = trunk_lib.FOV_CHANNELS if channels is None else int(channels)
    strides = trunk_tap_strides(trunk, arch)
    deepest = max(strides, key=lambda name: (strides[name], list(strides).index(name)))
    outputs = dict(trunk.output)
    x = outputs[deepest]
    for name in FOV_TAPS:
        x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"{name}_pool")(x)
        x = keras.layers.Conv2D(channels, 3, padding="same", name=name,
                                kernel_initializer=kernel_initializer)(x)
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
        outputs[name] = x
    return keras.Model(trunk.inputs, outputs, name=trunk.name)


def with_downstream_taps(colorizer, arch):
    """The pretrained trunk of ``colorizer`` exposing every tap of ``arch`` up to its deepest one.

    A colorizer may be pretrained with fewer taps than the downstream hypercolumn uses: the
    paper pretrains ResNet-152 *without* a hypercolumn ("hypercolumn training may disrupt
    residual training"; ``configs/resnet152_224.flags`` predicts from ``res5c`` only), while its
    segmentation hypercolumn reads ``conv1``, ``res2a-c``, ``res3b1/4/7``,
    ``res4b5/10/.../35`` and ``res5c``. Those layers are all in the pretrained trunk, which only
    does not output them; the trunk is rebuilt with the taps and the pretrained weights (BN
    statistics included) copied by layer name. A trunk that already outputs them (or that has
    +FoV taps) is returned as is.
    """
    trunk = colorizer.trunk
    if arch not in trunk_lib.TAP_STRIDES or any(t in trunk.output for t in FOV_TAPS):
        return trunk
    order = list(trunk_lib.TAP_STRIDES[arch])
    have = [t for t in trunk.output if t in order]
    if not have:
        return trunk
    wanted = order[:max(order.index(t) for t in have) + 1]
    if set(wanted) <= set(trunk.output):
        return trunk
    options = {k: v for k, v in getattr(colorizer, "trunk_options", {}).items()
               if k in ("batch_norm", "input_mean")}
    full = trunk_lib.build_trunk(arch, taps=wanted, **options)
    source = {layer.name: layer for layer in trunk.layers}
    for layer in full.layers:
        if not layer.weights:
            continue
        if layer.name not in source:
            raise ValueError(f"cannot expose the downstream taps of the pretrained {arch} trunk: "
                             f"it has no layer {layer.name!r}")
        layer.set_weights(source[layer.name].get_weights())
    logging.info("pretrained %s trunk (taps %s) exposes the downstream taps %s", arch, have,
                 wanted)
    return full


def _with_fov(trunk, arch):
    if any(t in trunk.output for t in FOV_TAPS):
        logging.warning("the pretrained trunk already has +FoV blocks (pretrained with --fov); "
                        "fine-tuning those instead of adding fresh ones")
        return trunk
    return add_fov_blocks(trunk, arch)


# BN absorption + grey -> RGB conv1 for downstream training lives in tfcolor.surgery (the
# baselines use it too); re-exported here as part of the initialisation API.
prepare_trunk = surgery.prepare_trunk


def _grey_sample(images):
    sample = tf.convert_to_tensor(images, tf.float32)
    if sample.shape[-1] == 3:  # the grey trunk (made RGB later) sees the desaturation
        sample = tf.reduce_mean(sample, axis=-1, keepdims=True)
    return sample


def load_trunk(init="random", *, arch="vgg16", taps=None, fov=False, absorb_bn="auto",
               color_input=False, imagenet_weights=None, rebalance_images=None,
               rebalance_imagenet=True):
    """A trunk ready for fine-tuning (see the module docstring).

    ``rebalance_images`` (grey or RGB batch) re-balance a random init (when given) and an
    ImageNet init (required unless ``rebalance_imagenet=False``). ``fov`` adds the +FoV blocks.

    Returns:
        ``(trunk, arch)`` (``arch`` as found in the checkpoint, or the argument).
    """
    # pylint: disable-next=import-outside-toplevel
    kind = describe_init(init)
    if kind == "random":
        trunk = models.build_trunk(arch, taps=taps, fov=fov,
                                   batch_norm=None if _is_resnet(arch) else "none")
        if rebalance_images is not None and not _is_resnet(arch):
            surgery.rebalance(trunk, _grey_sample(rebalance_images))
        return prepare_trunk(trunk, arch=arch, absorb_bn=absorb_bn,
                             color_input=color_input), arch
    if kind == "imagenet":
        if arch != "vgg16":
            raise ValueError(f"init='imagenet' loads keras.applications.VGG16 weights: arch must "
                             f"be 'vgg16', got {arch!r}.")
        if not imagenet_weights:
            raise ValueError("init='imagenet' needs imagenet_weights=PATH (a keras.applications "
                             "VGG16 weights file, e.g. vgg16_weights_tf_dim_ordering_tf_kernels"
                             ".h5; tfcolor downloads nothing).")
        if rebalance_imagenet and rebalance_images is None:
            raise ValueError("init='imagenet' is re-balanced to unit second moment per layer "
                             "before fine-tuning, as in the paper: pass rebalance_images=BATCH "
                             "(training images), or rebalance_imagenet=False to fine-tune the "
                             "un-rebalanced network.")
        trunk = models.build_trunk("vgg16", taps=taps, fov=fov, batch_norm="none")
        imagenet_weights_lib.load_vgg16_imagenet_weights(trunk, imagenet_weights)
        if rebalance_imagenet:
            surgery.rebalance(trunk, _grey_sample(rebalance_images))
        return prepare_trunk(trunk, arch=arch, absorb_bn=False, color_input=color_input), arch
    if kind == "baseline":
        model = baselines.load(init)
        trunk = model.downstream_trunk(absorb_bn=absorb_bn, color_input=color_input)
        return (_with_fov(trunk, model.arch) if fov else trunk), model.arch
    if kind == "colorization" and not run_dir.read_config(init).multitask.single_colorization:
        shared, config = run_dir.load_shared_trunk(init)
        found = config.model.arch
        trunk = prepare_trunk(shared.model, arch=found, absorb_bn=absorb_bn,
                              color_input=color_input)
        return (_with_fov(trunk, found) if fov else trunk), found
    if kind == "export":
        path = (init if tf.io.gfile.exists(os.path.join(init, run_dir.EXPORT_METADATA_FILE))
                else run_dir.export_path(init))
        colorizer = export.load_keras_model(path)
    else:
        colorizer, _ = run_dir.load_model(init)
    found = getattr(colorizer, "arch", None) or arch
    trunk = prepare_trunk(with_downstream_taps(colorizer, found), arch=found,
                          absorb_bn=absorb_bn, color_input=color_input)
    return (_with_fov(trunk, found) if fov else trunk), found


def freeze_below(model, from_layer):
    """Freezes every weighted layer before ``from_layer`` in the trunk (in place).

    ``from_layer`` names a trunk layer (e.g. ``"conv3_1"``: conv1_x and conv2_x are frozen, the
    paper's "fine-tune from conv3 up"); nested sub-models (the two halves of a split-brain
    trunk) are handled, each frozen below its own layer of that name. ``"head"`` freezes the
    whole trunk (a linear / MLP probe).

    Returns:
        The names of the frozen layers.

    Raises:
        ValueError: if no (sub-)model of the trunk has a layer called ``from_layer``.
    """
    trunk = getattr(model, "trunk", model)
    frozen = []

    def visit(m):
        names = [layer.name for layer in m.layers]
        if from_layer == "head":
            stop = len(names)
        elif from_layer in names:
            stop = names.index(from_layer)
        else:
            return any([visit(layer) for layer in m.layers if isinstance(layer, keras.Model)])
        for layer in m.layers[:stop]:
            if layer.weights:
                layer.trainable = False
                frozen.append(layer.name)
        return True

    if not visit(trunk):
        names = [layer.name for layer in trunk.layers if layer.weights]
        raise ValueError(f"freeze_below: the trunk has no layer {from_layer!r}; weighted layers: "
                         f"{names[:40]}.")
    return frozen


def model_fn(init, task, num_classes, *, arch="vgg16", taps=None, fov=False, head_taps=None,
             color_input=False, absorb_bn="auto", from_layer=None, imagenet_weights=None,
             rebalance_images=None, rebalance_imagenet=True, seed=None, **head_kwargs):
    """``() -> DownstreamModel`` for :func:`tfcolor.downstream.protocol.finetune`.

    Args:
        init: see :func:`load_trunk`.
        task, num_classes: the downstream task.
        arch, taps: trunk for ``init="random"``/``"imagenet"``.
        fov: add the +FoV blocks (any init; segmentation only, see the module docstring).
        head_taps: segmentation hypercolumn taps (default: all), or the classification tap.
        color_input, absorb_bn, imagenet_weights, rebalance_images, rebalance_imagenet: see
            :func:`load_trunk`.
        from_layer: :func:`freeze_below` (None: fine-tune everything).
        seed: seeds Keras before building (the head's and a random trunk's weights).
        **head_kwargs: :class:`tfcolor.downstream.model.DownstreamModel` options (``hidden``,
            ``dropout``, ``pool``, ``grid_factor``, ``convention``).
    """
    scoring.check_task(task)
    describe_init(init)
    if fov and task != "segmentation":
        raise ValueError(f"+FoV (fov=True) is a segmentation addition (the paper: it 'only "
                         f"affects the segmentation results'); task is {task!r}.")

    def build():
        if seed is not None:
            keras.utils.set_random_seed(int(seed))
        trunk, found = load_trunk(init, arch=arch, taps=taps, fov=fov, absorb_bn=absorb_bn,
                                  color_input=color_input, imagenet_weights=imagenet_weights,
                                  rebalance_images=rebalance_images,
                                  rebalance_imagenet=rebalance_imagenet)
        strides = trunk_tap_strides(trunk, found)
        kwargs = dict(head_kwargs)
        if task == "segmentation":
            kwargs["taps"] = head_taps
        elif head_taps is not None:
            kwargs["feature_tap"] = head_taps
        model = model_lib.DownstreamModel(trunk, task, num_classes, tap_strides=strides, **kwargs)
        if from_layer:
            freeze_below(model, from_layer)
        return model

    return build


def rebalance_sample(data, *, color=False, count=32, crop_size=None):
    """A batch of the first ``count`` images of ``data`` (a labelled set) as the model sees them
    at evaluation (grey, or RGB with ``color``; centre-cropped to ``crop_size``): the
    ``rebalance_images`` of a random or ImageNet initialisation."""
    ds = pipelines.eval_dataset(data.subset(np.arange(min(count, len(data)))),
                                batch_size=count, crop_size=crop_size, color=color)
    return next(iter(ds))["image"].numpy()


def write_json(path, payload):
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
