"""The pretraining program's absl entry point (the program: ``tfcolor.programs.pretrain``).

    binaries/pretrain --flagfile=configs/quickstart.flags
    python binaries/pretrain.py --help

Every flag is named as the ``tfcolor.config.PretrainConfig`` field it sets, except ``--loss``
for ``loss.kind`` and ``--force_unlock`` (a run option).
"""
if __package__ in (None, ""):  # python binaries/pretrain.py: import as the binaries package
    import os as _os
    import sys as _sys
    _sys.path.insert(0, _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))))
    __package__ = "binaries"  # pylint: disable=redefined-builtin

from absl import flags  # noqa: E402

from tfcolor.programs import pretrain as program  # noqa: E402

from . import common  # noqa: E402

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    """Defines the program's flags on ``fv`` (the global FLAGS by default).

    Done at run time rather than import time, so that importing this module next to other
    programs (e.g. in one test process) never clashes on shared flag names.
    """
    if "train_steps" in fv:
        return fv
    d = _Definer(fv)
    common.flag_section(fv, "Run")
    d.string("model_dir", "runs/pretrain",
             "Directory of checkpoints, TensorBoard summaries, the colorization grid and "
             "the SavedModel export.")
    d.string("data", "embedded",
             "Training images: a folder, a glob, a TFRecord pattern, 'tfds:NAME[:SPLIT]' or "
             "'embedded' (the photos shipped with tfcolor).")
    d.integer("train_steps", 2_000_000, "Total optimizer steps (released Caffe: 2M).")
    d.string("strategy", "default",
             "default/one_device, mirrored, multi_worker (TF_CONFIG) or tpu.")
    d.string("tpu", "", "TPU name or address for --strategy=tpu.")
    d.boolean("mixed_precision", False, "Train in mixed_float16 with loss scaling.")
    d.boolean("deterministic", False,
              "Enable TF op determinism and a deterministic data order (same losses on "
              "every run).")
    d.integer("seed", 0, "Random seed (initialization, data order, augmentation).")
    d.boolean("export", True, "Export a SavedModel into model_dir/export at the end.")
    d.integer("steps_per_loop", 50, "Steps per tf.function call.")
    d.integer("checkpoint_every", 10_000, "Steps between checkpoints.")
    d.integer("keep_checkpoints", 5, "Recent checkpoints kept.")
    d.integer("summary_every", 100, "Steps between scalar summaries / progress lines.")
    d.integer("image_every", 5_000,
              "Steps between colorized validation grids in TensorBoard (0: off).")
    d.boolean("force_unlock", False,
              "Take over model_dir/.lock even if it names a run on another host (only when "
              "that run is known to be gone; a dead run on this host is detected by itself).")

    common.flag_section(fv, "Model")
    d.string("arch", "vgg16", "Trunk: vgg16, alexnet, resnet152, vgg_tiny, ...")
    d.string("taps", "all",
             "Hypercolumn taps: 'all', a tap, a range 'conv4_1-fc7' or a comma list.")
    d.boolean("fov", False, "Pretrain with two extra blocks on top (fov1, fov2). Not the paper's "
              "+FoV, which is added at fine-tuning time: binaries/finetune --fov.")
    d.string("batch_norm", "",
             "parameter_free (paper), standard or none; empty: the architecture default.")
    d.boolean("sync_batch_norm", True,
              "Batch statistics over the global batch (all replicas).")
    d.integer("hidden", 1024, "Width of the head's hidden layer h_fc1.")
    d.float("dropout", 0.5, "Dropout after h_fc1 (released Caffe: 0.5).")
    d.string("convention", "released",
             "Sparse hypercolumn sampling convention: released or half_pixel.")
    d.boolean("prior_bias", False,
              "Start the head's output bias at the log marginal colour histogram of the "
              "training data, so the untrained model predicts the prior (paper: off).")

    common.flag_section(fv, "Data")
    d.integer("batch_size", 8, "Global batch size (paper: 8).")
    d.integer("crop_size", 352, "Square training crop (paper: 352).")
    d.integer("min_side", 0, "Short side scaled into [min_side, max_side] before "
              "cropping; 0: crop_size (paper: 352).")
    d.integer("max_side", 0, "0: crop_size * 600 / 352 (paper: 600).")
    d.integer("points", 128, "Sampled pixels per image (paper: 128).")
    d.integer("edge_buffer", -1,
              "Centres stay this far from the border; -1: released Caffe's 96/352 of "
              "the crop.")
    d.enum("targets_on_device", "auto", ["auto", "true", "false"],
           "Build targets in the training step (auto: when a GPU/TPU is visible).")
    d.string("heldout_data", "",
             "Photos never trained on, for the held-out loss curve (same forms as --data, e.g. "
             "embedded:validation or a holdout folder); empty: none.")
    d.integer("heldout_images", 64, "Held-out images (fixed crops and centres) per evaluation.")
    d.integer("eval_every", 1000, "Steps between held-out loss evaluations (--heldout_data).")
    d.boolean("keep_best", False,
              "Keep the model of the lowest held-out loss in model_dir/best and make it the "
              "run's model (preview, export, colorize, evaluate); needs --heldout_data.")
    d.integer("validation_images", 4, "Images in the colorization grids.")

    common.flag_section(fv, "Loss")
    d.string("loss", "hue_chroma", "hue_chroma, lab_hist, lab_joint or lab_regression.")
    d.integer("window", 7, "Target histogram window R (paper: 7).")
    d.float("hue_weight", 5.0, "lambda_H of the hue/chroma loss (paper: 5).")
    d.boolean("lightness_weight", False,
              "Weight the chroma term by min(3L, 1, 3(1-L)) (released Caffe).")

    common.flag_section(fv, "Optimizer")
    d.float("learning_rate", 0.001, "Initial SGD learning rate (released Caffe: 0.001).")
    d.string("lr_drops", "0.5,0.75,0.875",
             "Steps where the rate drops, comma-separated; values < 1 are fractions of "
             "--train_steps (released Caffe: 1M,1.5M,1.75M of 2M).")
    d.float("lr_drop_factor", 0.1, "Rate multiplier at each drop.")
    d.float("momentum", 0.9, "SGD momentum.")
    d.float("weight_decay", 5e-4, "L2 on kernels (released Caffe: 5e-4).")
    d.float("head_weight_decay", -1.0,
            "L2 on the head's kernels; -1: same as --weight_decay (released TF: 1e-6 "
            "on the head and --weight_decay=0).")
    d.float("bias_lr_multiplier", 2.0, "Bias learning-rate multiplier (Caffe lr_mult 2).")
    d.float("clip_norm", 0.0, "Clip the global gradient norm; 0: off.")
    d.integer("warmup_steps", 0,
              "Linear learning-rate warm-up over this many steps; 0: none (NormSGD wants a "
              "brief one).")

    common.flag_section(fv, "Several tasks on one trunk")
    d.string("tasks", "colorization",
             "Proxy tasks trained on one shared trunk, comma-separated: colorization, jigsaw, "
             "video, denoising, distillation (e.g. colorization,jigsaw: C+J). colorization "
             "alone: the papers' run.")
    d.enum("gradient_rule", "normsgd", ["sum", "normsgd", "separate", "split_weights"],
           "How the tasks' gradients combine: sum (joint SGD), normsgd (each task's gradient "
           "divided by its mean absolute value), separate (one Adam per task) or "
           "split_weights (task m updates only the trunk weights that feed column m).")
    d.enum("schedule", "joint", ["joint", "round_robin"],
           "joint: every task every step; round_robin: one task per --quantum steps.")
    d.integer("quantum", 1000, "Steps per task turn under --schedule=round_robin.")
    d.string("task_weights", "",
             "TASK:WEIGHT,... (default 1 each); under NormSGD they weight the normalised "
             "gradients.")
    d.string("loss_scales", "",
             "TASK:FACTOR,...: multiply a task's loss by a constant (the contrived "
             "uneven-gradients test).")
    d.string("task_data", "",
             "Each task's input section: TASK.FIELD=VALUE,... with data fields (data, "
             "batch_size, crop_size, min_side, max_side, ...), e.g. "
             "jigsaw.batch_size=4,video.data=~/.cache/tfcolor-video/train.")
    d.string("task_options", "",
             "Further task arguments: TASK.NAME=VALUE,... (jigsaw.piece_size=227, ...).")
    d.enum("round_robin_state", "per_task", ["per_task", "shared"],
           "Round-robin momentum: one per task, swapped with it, or one shared.")
    d.enum("separate_optimizer", "adam", ["adam", "sgd"],
           "The per-task optimizer of --gradient_rule=separate.")
    d.integer("freeze_step", -1,
              "NormSGD freezes its gradient statistics at this step; -1: after the warm-up, "
              "before the first drop.")
    d.float("ema_decay", 0.99, "Decay of NormSGD's running statistic; 0: per step.")
    d.float("normsgd_epsilon", 1e-12, "Added to NormSGD's statistic in the denominator.")
    d.boolean("normalize_heads", True,
              "NormSGD divides each head's gradient by its task's statistic too.")
    d.boolean("decay_after_normalisation", True,
              "NormSGD adds weight decay after normalising (else to each task's gradient "
              "before).")
    d.enum("reduction", "mean", ["mean", "sum"],
           "--gradient_rule=sum: mean (eq. 4.9) or sum of the task gradients.")
    d.boolean("average_heads", True,
              "A head moves by its task's share (weight / tasks) of the step, like the trunk.")
    d.integer("input_channels", 3,
              "Channels of the shared trunk's input: 3 (colour; RGB-encoded grey for "
              "colorization) or 1.")
    d.string("init", "",
             "Start the shared trunk from another run's trunk (a colorization or multi-task "
             "model_dir, an export, a baseline model_dir), e.g. the jigsaw task from a "
             "colorizer: --tasks=jigsaw --init=runs/C. Read when the run starts from scratch.")
    d.boolean("train_trunk", True,
              "Train end to end; false: the task layers only, on the fixed --init trunk.")

    common.flag_section(fv, "Distillation (--tasks=distillation or with other tasks)")
    d.string("teachers", "",
             "The frozen teachers, comma-separated: colorization or multi-task model_dirs, "
             "exports, baseline model_dirs or SavedModels.")
    d.string("teacher_layer", "top",
             "The matched activations: top (the top non-task layer: task-agnostic), a layer "
             "name or a trunk tap (the task layer: task-driven).")
    d.boolean("pre_relu", True, "Match a layer followed by a ReLU before the ReLU.")
    d.string("student_layer", "", "The student's matched layer; empty: --teacher_layer.")
    d.enum("combine", "subset", ["subset", "concat", "average", "auxiliary"],
           "Several teachers: a random feature subset, the concatenation, the average "
           "(ensemble) or an auxiliary layer (ReLU, then fully connected) on the student.")
    d.enum("subset_spread", "uniform", ["uniform", "per_teacher"],
           "The subset: uniform over all teachers' features, or F/M from each teacher.")
    d.integer("subset_seed", 0, "Seed of the feature subset (drawn once).")
    d.enum("distill_loss", "ab", ["ab", "exp", "kl", "l2"],
           "ab: AB divergence on exponentials; exp: eq. 4.2; kl: temperature KL on softmax "
           "(task layer); l2.")
    d.float("alpha", 0.25, "alpha of the AB divergence (Table 4.3: 1/4).")
    d.float("beta", 0.0, "beta of the AB divergence.")
    d.float("temperature", 4.0, "T of the exp and kl losses.")
    d.boolean("normalize_student", True, "Divide the student by the teacher statistics too.")
    d.boolean("teacher_scale", True,
              "Pre-normalise by the teacher statistics s = sqrt(E[y^2]) (ab, exp, l2).")
    d.boolean("per_feature_scale", True, "One s per feature (else one scalar).")
    d.integer("statistics_batches", 20,
              "Training batches s is computed over, once, before training.")
    d.float("student_dropout", 0.0, "Dropout after each ReLU of the student; 0: none.")
    d.boolean("augment", False, "Random mirror and translation of the distillation images.")
    d.integer("augment_pad", 4, "Range of the random translation, in pixels.")
    d.integer("warm_start", -1,
              "Start the student from this teacher (same architecture; index in --teachers); "
              "-1: from scratch.")
    d.boolean("color_images", False,
              "Distil on colour images (else grey, RGB-encoded for 3-channel networks).")
    return fv


class _Definer:
    """``d.string(name, default, help)`` -> ``flags.DEFINE_string(..., flag_values=fv)``."""

    def __init__(self, fv):
        self._fv = fv

    def __getattr__(self, kind):
        define = getattr(flags, "DEFINE_" + kind)
        return lambda *args, **kwargs: define(*args, flag_values=self._fv, **kwargs)


def config_from_flags(fv=FLAGS, *, prog=program, define=None):
    """A ``tfcolor.config.PretrainConfig`` from the parsed flags (no validation here).

    ``prog`` and ``define``: the program module and flag definer of a program built on these
    flags (``binaries/distill``); default this one's."""
    names = common.own_flag_names(define or define_flags)
    return prog.config_from_values(common.flag_values(fv, names),
                                   common.flag_defaults(fv, names))


def build_config(fv=FLAGS, *, prog=program, define=None):
    """The validated ``PretrainConfig`` of the parsed flags ``fv``; raises
    ``tfcolor.programs.pretrain.FlagError`` naming the flag (``prog``, ``define``: as
    :func:`config_from_flags`)."""
    names = common.own_flag_names(define or define_flags)
    return prog.build_config(common.flag_values(fv, names), common.flag_defaults(fv, names))


FlagError = program.FlagError


def main(argv, *, prog=program, define=None):
    """Runs the program ``prog`` (default: pretraining) on the parsed flags."""
    if len(argv) > 1:
        common.die(f"unexpected arguments {argv[1:]}: every option is a --flag (see --help)")
    try:
        cfg = build_config(FLAGS, prog=prog, define=define)
    except prog.FlagError as e:
        common.die(str(e))
    return prog.main(cfg, force_unlock=FLAGS.force_unlock,
                     names=set(common.own_flag_names(define or define_flags)))


def run():
    """Console-script entry point (``tfcolor-pretrain``)."""
    common.run_program(define_flags, main, program.__doc__)


if __name__ == "__main__":
    run()
