"""Training throughput of the VGG-16 hypercolumn colorizer: tfcolor vs a PyTorch reference.

The setting of the paper's training step, at 224 x 224: VGG-16 trunk on the grey input
(parameter-free batch norm, fc6 as a 7x7 convolution, fc7 1x1), the full sparse hypercolumn
(data, conv1_1..conv5_3, fc6, fc7: 12,417 channels) bilinearly sampled at 128 points per image,
head h_fc1 (1024, ReLU, dropout 0.5) -> hue and chroma logits (32 + 32), hue/chroma KL loss
(lambda_H = 5), SGD with momentum 0.9 and weight decay 5e-4; batch 8.

* tfcolor: ``tfcolor.models.Colorizer`` + ``tfcolor.losses.HueChromaLoss`` trained by
  ``tfcolor.train.Trainer`` (the loop of ``binaries/pretrain``), one step per call, targets
  precomputed (as on CPU, where tf.data builds them in parallel with the step).
* PyTorch: the same network and loss written here (``TorchColorizer``), ``torch.optim.SGD``.

Each framework runs in its own process (their thread pools would otherwise compete for the
cores), alternating tfcolor, PyTorch, tfcolor, PyTorch (``--rounds``) so that load from other
jobs affects both alike; the table gives the median step time over all rounds. FLOPs are counted
analytically (convolutions and dense layers, 2 per multiply-add; training = 3 x forward;
batch norm, ReLU, pooling and sampling are not counted), and compared with this machine's
float32 matmul peak measured with a large ``tf.matmul``.

    python benchmarks/train_bench.py [--size 224 --batch 8 --points 128 --steps 4]

``--loss_terms``: the tfcolor step also logs the hue and chroma terms, with the loss of
``binaries/pretrain`` (``tfcolor.tasks.colorization.build_loss``).
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import common  # noqa: E402

INPUT_MEAN = 0.4488
VGG_CONVS = [  # name, in, out, kernel; "pool" entries are 2x2/2 max-pools
    ("conv1_1", 1, 64, 3), ("conv1_2", 64, 64, 3), "pool",
    ("conv2_1", 64, 128, 3), ("conv2_2", 128, 128, 3), "pool",
    ("conv3_1", 128, 256, 3), ("conv3_2", 256, 256, 3), ("conv3_3", 256, 256, 3), "pool",
    ("conv4_1", 256, 512, 3), ("conv4_2", 512, 512, 3), ("conv4_3", 512, 512, 3), "pool",
    ("conv5_1", 512, 512, 3), ("conv5_2", 512, 512, 3), ("conv5_3", 512, 512, 3), "pool",
    ("fc6", 512, 4096, 7), ("fc7", 4096, 4096, 1)]


def count_train_flops(size, batch, points, hidden=1024, outputs=64):
    """Analytic training FLOPs per step (see the module docstring)."""
    forward, side, channels = 0, size, 1
    for layer in VGG_CONVS:
        if layer == "pool":
            side = (side + 1) // 2
            continue
        _, cin, cout, k = layer
        forward += 2 * side * side * cout * k * k * cin
        channels += cout
    forward *= batch
    forward += 2 * batch * points * (channels * hidden + hidden * outputs)
    return 3 * forward, channels


def matmul_peak(n=4096, repeats=5):
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])

    @tf.function
    def run():
        c = a
        for _ in range(repeats):
            c = tf.matmul(c, b) * 1e-3
        return tf.reduce_sum(c)

    seconds = common.measure(lambda: run().numpy(), warmup=1, min_time=3.0, min_repeats=3)
    return 2.0 * n ** 3 * repeats / seconds


# ------------------------------------------------------------------------------------------------
# Inputs shared by both frameworks.

def make_batch(size, batch, points, seed=0):
    from tfcolor import data as data_lib  # noqa: F401  (embedded photos)
    from tfcolor.targets import TargetBuilder
    rng = np.random.default_rng(seed)
    try:
        rgb = data_lib.load_images(None, count=batch, size=size)
    except Exception:  # noqa: BLE001 -- fall back to noise if the photos are unavailable
        rgb = rng.uniform(0, 1, size=(batch, size, size, 3)).astype(np.float32)
    if len(rgb) < batch:
        rgb = np.concatenate([rgb] * (batch // len(rgb) + 1))[:batch]
    buffer = int(round(size * 96 / 352))
    centers = rng.integers(buffer, size - buffer, size=(batch, points, 2)).astype(np.int32)
    gray = rgb.mean(-1, keepdims=True).astype(np.float32)
    targets = TargetBuilder("hue_chroma")(tf.constant(rgb), tf.constant(centers)).numpy()
    return {"gray": gray, "centers": centers, "targets": targets}


# ------------------------------------------------------------------------------------------------
# tfcolor.

def make_tf_trainer(batch, model_dir, loss_terms=False):
    from tfcolor import config, losses, train
    from tfcolor.models import Colorizer
    from tfcolor.tasks import colorization
    dataset = tf.data.Dataset.from_tensors({k: tf.constant(v) for k, v in batch.items()})
    dataset = dataset.repeat()
    if loss_terms:  # the loss of binaries/pretrain, logging its hue and chroma terms
        loss = {"loss_fn": colorization.build_loss(config.LossConfig(kind="hue_chroma"))}
    else:
        loss = {"loss_fn": losses.HueChromaLoss()}
    task = colorization.ColorizationTask(
        model_fn=lambda: Colorizer("vgg16", kind="hue_chroma", dropout=0.5), dataset=dataset,
        **loss)
    trainer = train.Trainer(
        task, strategy=train.make_strategy("default"), model_dir=model_dir,
        train_steps=10 ** 9, steps_per_loop=1, checkpoint_iterator=False,
        optimizer_config=config.OptimizerConfig(learning_rate=1e-3, lr_drops=[],
                                                weight_decay=5e-4, bias_lr_multiplier=1.0))
    return lambda: trainer.run_steps(1)["colorization"]


# ------------------------------------------------------------------------------------------------
# PyTorch reference.

def make_torch_step(batch, threads):
    import torch
    from torch import nn
    import torch.nn.functional as F

    torch.set_num_threads(threads)

    class TorchColorizer(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList()
            self.plan = []  # ("conv", index, stride) or ("pool",)
            stride = 1
            for layer in VGG_CONVS:
                if layer == "pool":
                    self.plan.append(("pool",))
                    stride *= 2
                    continue
                _, cin, cout, k = layer
                self.layers.append(nn.Sequential(
                    nn.Conv2d(cin, cout, k, padding=k // 2),
                    nn.BatchNorm2d(cout, eps=1e-5, momentum=0.01, affine=False),
                    nn.ReLU(inplace=True)))
                self.plan.append(("conv", len(self.layers) - 1, stride))
            channels = 1 + sum(layer[2] for layer in VGG_CONVS if layer != "pool")
            self.h_fc1 = nn.Linear(channels, 1024)
            self.out = nn.Linear(1024, 64)
            self.drop = nn.Dropout(0.5)

        @staticmethod
        def sample(fmap, centers, stride):
            # Released convention: coordinate = pixel / stride, clamped to [0, size - 1 - eps].
            b, c, h, w = fmap.shape
            pos = centers.float() / stride
            y = pos[..., 0].clamp(0, h - 1 - 1e-4)
            x = pos[..., 1].clamp(0, w - 1 - 1e-4)
            y0, x0 = y.floor().long(), x.floor().long()
            y1, x1 = (y0 + 1).clamp(max=h - 1), (x0 + 1).clamp(max=w - 1)
            fy, fx = (y - y0).unsqueeze(1), (x - x0).unsqueeze(1)
            flat = fmap.reshape(b, c, h * w)

            def at(yy, xx):
                idx = (yy * w + xx).unsqueeze(1).expand(b, c, yy.shape[1])
                return flat.gather(2, idx)

            top = at(y0, x0) * (1 - fx) + at(y0, x1) * fx
            bottom = at(y1, x0) * (1 - fx) + at(y1, x1) * fx
            return (top * (1 - fy) + bottom * fy).transpose(1, 2)  # (B, P, C)

        def forward(self, gray, centers):
            x = gray - INPUT_MEAN
            columns = [self.sample(x, centers, 1)]
            for step in self.plan:
                if step[0] == "pool":
                    x = F.max_pool2d(x, 2, 2, ceil_mode=True)
                else:
                    x = self.layers[step[1]](x)
                    columns.append(self.sample(x, centers, step[2]))
            h = self.drop(F.relu(self.h_fc1(torch.cat(columns, dim=-1))))
            return self.out(h)

    def kl(y, logits):
        logq = F.log_softmax(logits, dim=-1)
        return (torch.special.xlogy(y, y) - y * logq).sum(-1)

    def hue_chroma_loss(y, logits):
        return kl(y[..., 32:64], logits[..., 32:]) + 5.0 * y[..., 64] * kl(y[..., :32],
                                                                          logits[..., :32])

    torch.manual_seed(0)
    model = TorchColorizer()
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    gray = torch.from_numpy(batch["gray"]).permute(0, 3, 1, 2).contiguous()
    centers = torch.from_numpy(batch["centers"]).long()
    targets = torch.from_numpy(batch["targets"])

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = hue_chroma_loss(targets, model(gray, centers)).mean()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step, torch.__version__


def worker(args):
    """One framework in this process: prints a JSON line with the timed steps."""
    import json
    batch = make_batch(args.size, args.batch, args.points)
    if args.worker == "tfcolor":
        step, version = make_tf_trainer(batch, args.model_dir, args.loss_terms), tf.__version__
    else:
        step, version = make_torch_step(batch, args.threads)
    for _ in range(2):  # warm-up: tracing / first-call allocations
        step()
    times, loss = [], None
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    print("RESULT " + json.dumps({"times": times, "loss": loss, "version": version}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--points", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per framework and round")
    parser.add_argument("--rounds", type=int, default=2,
                        help="tfcolor, pytorch, tfcolor, pytorch, ... (evens out load drift)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--model_dir", default="/tmp/tfcolor_train_bench")
    parser.add_argument("--loss_terms", action="store_true",
                        help="tfcolor computes and logs the hue and chroma terms as "
                        "binaries/pretrain does (tasks.colorization.build_loss)")
    parser.add_argument("--worker", choices=["tfcolor", "pytorch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    import json
    flops, channels = count_train_flops(args.size, args.batch, args.points)
    peak = matmul_peak()
    times = {"tfcolor": [], "pytorch": []}
    info = {}
    loads = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        # Each framework in its own process: their thread pools would otherwise spin against
        # each other on the shared cores.
        for name in ("tfcolor", "pytorch"):
            argv = [sys.executable, os.path.abspath(__file__), "--worker", name] + [
                f"--{k}={getattr(args, k)}" for k in ("size", "batch", "points", "steps",
                                                     "threads", "model_dir")] + (
                ["--loss_terms"] if args.loss_terms else [])
            out = common.run_isolated(argv, timeout=3600)
            result = json.loads([l for l in out.splitlines() if l.startswith("RESULT ")][-1][7:])
            times[name] += result["times"]
            info[name] = result
            loads.append(os.getloadavg()[0])
    import torch  # noqa: F401  (version in the machine line)
    print(common.machine_description())
    print(f"load average (1 min) during the run: {min(loads):.1f} to {max(loads):.1f} on "
          f"{os.cpu_count()} cores: the machine was shared with other jobs")
    print(f"setting: VGG-16 hypercolumn ({channels} channels), {args.size}x{args.size}, batch "
          f"{args.batch}, {args.points} points, hue/chroma KL, SGD momentum 0.9, weight decay; "
          f"{flops / 1e9:.0f} GFLOP per training step (analytic); "
          f"float32 matmul peak {peak / 1e9:.0f} GFLOP/s (tf.matmul 4096^2)")
    rows = []
    base = None
    for name in ("tfcolor", "pytorch"):
        seconds = float(np.median(times[name]))
        rate = args.batch / seconds
        base = base or rate
        label = "tfcolor (TF " + info[name]["version"] + ")" if name == "tfcolor" else (
            "PyTorch " + info[name]["version"])
        rows.append([label, f"{seconds:.2f}", f"{rate:.2f}", f"{flops / seconds / 1e9:.0f}",
                     f"{100 * flops / seconds / peak:.0f}%", f"{rate / base:.2f}",
                     len(times[name])])
    common.print_table(["framework", "s/step (median)", "images/s", "GFLOP/s", "of matmul peak",
                        "speed vs tfcolor", "timed steps"], rows,
                       title="Training throughput, VGG-16 hypercolumn colorizer")


if __name__ == "__main__":
    main()
