"""Benchmark: peak memory of colorizing one large photo, in bytes per output pixel.

``binaries/colorize`` runs the network at ``--max_side`` (512), so the model's own memory does
not grow with the photo; what does is the input, the output and the full-resolution
recombination of the upsampled colour with the input's lightness. For each size (megapixels of a
4:3 JPEG written once by this script), a fresh child process loads the shipped colorizer,
colorizes a 512-pixel image (the model's own peak: the baseline), then colorizes the large file
with ``tfcolor.image_files.colorize_files`` (read, colorize, write the PNG); the extra peak
resident memory (``VmHWM``) divided by the pixels is the cost per pixel. The peer, in the same
run: the same program with the recombination in one piece and float outputs
(``ColorizeOptions(tile_pixels=None)`` and the float path of earlier versions), measured at the
sizes given by ``--peer_sizes`` (it needs about 200 bytes per pixel: 5 GB at 24 MP).

    python benchmarks/colorize_memory.py [--sizes 1,4,24,100 --peer_sizes 1,4]

``--signature``: the same for the SavedModel's ``colorize_bytes`` signature, on an export of the
shipped colorizer (written once by this script with the default ``max_side`` = 512: the network
runs on the photo shrunk to 512 pixels, as in the program). The baseline is the signature's peak
on a 512-pixel JPEG; the cost per pixel is the peak on the large photo beyond it. The peer, in
the same run: the same model exported with ``max_side=None`` (the network at the photo's full
size, the only way before the option), measured at ``--peer_sizes``.

    python benchmarks/colorize_memory.py --signature [--sizes 1,4,24 --peer_sizes 1,4]
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

CHILD = r"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
from tfcolor import image_files, predictors

def hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
path, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
predictor = predictors.KerasPredictor.from_pretrained()
small = os.path.join(os.path.dirname(out), "small_" + mode + ".png")
image_files.save_png(np.full((512, 384, 3), 0.5, np.float32), small)
options = predictors.ColorizeOptions(tile_pixels=None if mode == "whole" else
                                     predictors.DEFAULT_TILE_PIXELS)
if mode == "whole":  # the peer: one piece, float arrays (as before strips and 8-bit outputs)
    def colorize(p, o):
        image = image_files.read_image(p)
        rgb = predictors.colorize_image(predictor, image, options)["rgb"].numpy()
        image_files.save_png(rgb, os.path.join(o, "out.png"))
else:
    def colorize(p, o):
        result = image_files.colorize_files(predictor, [p], o, options, overwrite=True)
        assert result["written"], result
colorize(small, out)
base = hwm()
colorize(path, out)
print(base, hwm())
"""

EXPORT = r"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from tfcolor import export, pretrained
model, kind = pretrained.load()
export.export_saved_model(model, sys.argv[1], kind=kind, save_keras=False)
# the peer: the network at the photo's full size
export.export_saved_model(model, sys.argv[2], kind=kind, save_keras=False, max_side=None)
"""

CHILD_SIGNATURE = r"""
import io, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
from PIL import Image

def hwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
path, saved_model = sys.argv[1], sys.argv[2]
loaded = tf.saved_model.load(saved_model)
small = io.BytesIO()
Image.fromarray(np.full((384, 512, 3), 128, np.uint8)).save(small, format="JPEG")
def call(data):
    return loaded.signatures["colorize_bytes"](images=tf.constant([data]))
call(small.getvalue())
base = hwm()
with open(path, "rb") as f:
    data = f.read()
out = call(data)
print(base, hwm())
"""


def _write_jpeg(path, megapixels):
    import numpy as np  # pylint: disable=import-outside-toplevel
    from PIL import Image  # pylint: disable=import-outside-toplevel
    height = int(round((megapixels * 1e6 * 3 / 4) ** 0.5))
    width = int(round(megapixels * 1e6 / height))
    x = np.linspace(0, 6, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 4, height, dtype=np.float32)[:, None]
    grey = (127 + 100 * np.sin(x + y)).astype(np.uint8)  # one channel, broadcast by Pillow
    Image.fromarray(grey).convert("RGB").save(path, quality=90)
    return height * width


def _measure(path, folder, mode):
    out = os.path.join(folder, f"out_{mode}")
    os.makedirs(out, exist_ok=True)
    base, peak = map(int, common.run_isolated(
            [sys.executable, "-c", CHILD, path, out, mode], timeout=3600).split()[-2:])
    return base, peak


def _measure_signature(path, saved_model):
    base, peak = map(int, common.run_isolated(
            [sys.executable, "-c", CHILD_SIGNATURE, path, saved_model],
            timeout=3600).split()[-2:])
    return base, peak


def _signature_table(sizes, peers, folder):
    shrunk, full = os.path.join(folder, "sm_max_side"), os.path.join(folder, "sm_full")
    common.run_isolated([sys.executable, "-c", EXPORT, shrunk, full], timeout=3600)
    rows = []
    for mp in sizes:
        path = os.path.join(folder, f"photo_{mp:g}mp.jpg")
        pixels = _write_jpeg(path, mp)
        base, peak = _measure_signature(path, shrunk)
        per_pixel = (peak - base) / pixels
        row = [f"{mp:g}", pixels, round(base / 2**20), round(peak / 2**20), per_pixel]
        if mp in peers:
            pbase, ppeak = _measure_signature(path, full)
            whole = (ppeak - pbase) / pixels
            row += [round(ppeak / 2**20), whole, whole / max(per_pixel, 1e-9)]
        else:
            row += ["-", "-", "-"]
        rows.append(row)
        os.remove(path)
    common.print_table(
            ["MP", "pixels", "512-pixel image peak (MiB)", "peak (MiB)", "bytes/pixel",
             "network at full size: peak (MiB)", "bytes/pixel", "ratio"], rows,
            title="colorize_bytes signature (network at max_side = 512): peak memory beyond a "
                  "512-pixel image's, per output pixel; peer: the network at full size")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,4,24,100", help="megapixels, comma-separated")
    parser.add_argument("--peer_sizes", default="1,4", help="sizes also measured in one piece")
    parser.add_argument("--signature", action="store_true",
                        help="measure the SavedModel's colorize_bytes signature instead")
    args = parser.parse_args()
    sizes = [float(s) for s in args.sizes.split(",") if s]
    peers = {float(s) for s in args.peer_sizes.split(",") if s}
    import tensorflow  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    print(common.machine_description())
    if args.signature:
        with tempfile.TemporaryDirectory() as folder:
            _signature_table(sizes, peers, folder)
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for mp in sizes:
            path = os.path.join(folder, f"photo_{mp:g}mp.jpg")
            pixels = _write_jpeg(path, mp)
            base, peak = _measure(path, folder, "strips")
            per_pixel = (peak - base) / pixels
            row = [f"{mp:g}", pixels, round(base / 2**20), round(peak / 2**20), per_pixel]
            if mp in peers:
                pbase, ppeak = _measure(path, folder, "whole")
                whole = (ppeak - pbase) / pixels
                row += [whole, whole / max(per_pixel, 1e-9)]
            else:
                row += ["-", "-"]
            rows.append(row)
            os.remove(path)
    common.print_table(
            ["MP", "pixels", "model's own peak (MiB)", "peak (MiB)", "bytes/pixel (strips)",
             "bytes/pixel (one piece)", "ratio"], rows,
            title="colorize: peak memory beyond the model's own, per output pixel")


if __name__ == "__main__":
    main()
