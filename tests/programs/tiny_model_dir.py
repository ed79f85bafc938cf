"""A tiny trained-looking model_dir (config.json + checkpoint) for the program tests."""
import os

import numpy as np
import tensorflow as tf
from PIL import Image

TAPS = ["data", "conv1_1", "conv2_2", "conv3_3", "fc7"]


def make_model_dir(path, seed=0):
    """Writes config.json (PretrainConfig, vgg_tiny) and one checkpoint; returns the model."""
    from tfcolor import config, run_dir
    from tfcolor.models import build_colorizer
    cfg = config.PretrainConfig()
    cfg.model.arch = "vgg_tiny"
    cfg.model.hidden = 8
    cfg.model.taps = list(TAPS)
    cfg.model.sync_batch_norm = False
    cfg.train.model_dir = str(path)
    tf.keras.utils.set_random_seed(seed)
    model = build_colorizer(cfg)
    run_dir.write_config(str(path), cfg)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(path), 2).save()
    return model


def write_images(folder, shapes, seed=0, grey=False):
    """Random smooth colour (or grey) images as PNG/JPEG files; returns their paths."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, (h, w) in enumerate(shapes):
        small = rng.uniform(size=(3, 3, 3))
        img = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((w, h)))
        if grey:
            img = np.repeat(img.mean(-1, keepdims=True), 3, -1).astype(np.uint8)
        ext = "png" if i % 2 == 0 else "jpg"
        path = os.path.join(folder, f"img{i}.{ext}")
        Image.fromarray(img).save(path, quality=95)
        paths.append(path)
    return paths
