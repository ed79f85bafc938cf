"""Benchmark: trunk forward passes against the keras.applications peers.

For VGG-16 and ResNet-152, times an inference forward pass (``tf.function``, batch of grey
images) of the tfcolor trunk and of ``keras.applications`` (``include_top=False``, the same
convolutions on 3 channels) on the same machine. The VGG-16 trunk is timed without BN (the same
computation as Keras') and with parameter-free BN (the pretraining configuration), and with all
taps as outputs (what the hypercolumn reads). The "conv5_3 output only" row returns one map like
the peer; the rows with every tap also return (and copy to NumPy) the 12 earlier maps, which the
hypercolumn needs. The tfcolor trunks also build fc6/fc7 (VGG) which Keras' notop model lacks,
so the "conv" rows stop at conv5_3.

    python benchmarks/bench_trunks.py [--batch 2 --size 224 --min-time 3]
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from tfcolor import models  # noqa: E402


def _timer(model, x, min_time):
    fn = tf.function(lambda t: model(t, training=False))
    return common.measure(lambda: tf.nest.map_structure(lambda o: o.numpy(), fn(x)),
                          warmup=2, min_time=min_time)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--min-time", type=float, default=3.0)
    parser.add_argument("--archs", default="vgg16,resnet152")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    gray = tf.constant(rng.uniform(0, 1, (args.batch, args.size, args.size, 1)), tf.float32)
    rgb = tf.repeat(gray, 3, axis=-1)
    rows = []
    archs = args.archs.split(",")
    if "vgg16" in archs:
        peer = keras.applications.VGG16(weights=None, include_top=False)
        t_peer = _timer(peer, rgb, args.min_time)
        rows.append(["keras.applications.VGG16 (notop)", t_peer * 1e3, 1.0])
        del peer
        for label, kwargs in [
                ("tfcolor vgg16, conv5_3 output only, no BN (like the peer)",
                 dict(batch_norm="none", taps=["conv5_3"])),
                ("tfcolor vgg16, conv only, no BN", dict(batch_norm="none",
                                                         taps="conv1_1-conv5_3")),
                ("tfcolor vgg16, conv only, parameter-free BN", dict(taps="conv1_1-conv5_3")),
                ("tfcolor vgg16, all 16 taps (+fc6/fc7), parameter-free BN", {}),
        ]:
            trunk = models.build_trunk("vgg16", **kwargs)
            t = _timer(trunk, gray, args.min_time)
            rows.append([label, t * 1e3, t / t_peer])
            del trunk
    if "resnet152" in archs:
        peer = keras.applications.ResNet152(weights=None, include_top=False)
        t_peer = _timer(peer, rgb, args.min_time)
        rows.append(["keras.applications.ResNet152 (notop)", t_peer * 1e3, 1.0])
        del peer
        trunk = models.build_trunk("resnet152")
        t = _timer(trunk, gray, args.min_time)
        rows.append(["tfcolor resnet152, 15 taps, standard BN", t * 1e3, t / t_peer])
    print(common.machine_description())
    common.print_table(["model", "ms / batch", "ratio to peer"], rows,
                       title=f"Trunk inference, batch {args.batch} x {args.size}^2 "
                             f"(tf.function, float32), peak RSS {common.peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
