"""The pretraining pipeline: the DESIGN.md contract, the paper's augmentation, determinism,
bad input, caching and distribution, and its one vocabulary (DataConfig + LossConfig + keyword
options, or a whole PretrainConfig)."""
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfcolor import config as config_lib
from tfcolor.data import SkipCounter, SourceError
from tfcolor.data import pretrain
from tfcolor.targets import TargetBuilder

sys.path.insert(0, os.path.dirname(__file__))
from data_testlib import BAD_FOLDER_EXPECTED, smooth_rgb  # noqa: E402
from tfcolor.train.strategy import make_strategy  # one strategy per device set

SMALL = dict(batch_size=2, crop_size=48, min_side=48, max_side=64, points=8)


def _data(**kwargs):
    return config_lib.DataConfig(**dict(SMALL, **kwargs))


def _dataset(source, data=None, loss=None, **options):
    """``pretrain_dataset`` of ``_data()`` (or ``data``) without skip reports by default."""
    options.setdefault("skip_counter", False)
    return pretrain.pretrain_dataset(data or _data(), loss, source=source, **options)


def _take(ds, n):
    return [{k: v.numpy() for k, v in b.items()} for b in ds.take(n)]


def test_contract_with_targets_in_the_pipeline():
    ds = _dataset(None, _data(targets_on_device=False))
    spec = ds.element_spec
    assert set(spec) == {"gray", "centers", "targets"}
    assert spec["gray"].shape == (2, 48, 48, 1) and spec["gray"].dtype == tf.float32
    assert spec["centers"].shape == (2, 8, 2) and spec["centers"].dtype == tf.int32
    assert spec["targets"].shape == (2, 8, TargetBuilder("hue_chroma").target_dim)
    assert spec["targets"].dtype == tf.float32
    (batch,) = _take(ds, 1)
    assert 0.0 <= batch["gray"].min() and batch["gray"].max() <= 1.0


def test_on_device_variant_yields_rgb_with_the_same_crops_and_centres():
    loss = config_lib.LossConfig(kind="lab_hist", window=3)
    on_host = _take(_dataset(None, _data(targets_on_device=False), loss, seed=11), 2)
    on_device = _take(_dataset(None, _data(targets_on_device=True), loss, seed=11), 2)
    builder = TargetBuilder("lab_hist", window=3)
    for host, dev in zip(on_host, on_device):
        assert set(dev) == {"gray", "centers", "rgb"}
        np.testing.assert_array_equal(host["gray"], dev["gray"])
        np.testing.assert_array_equal(host["centers"], dev["centers"])
        np.testing.assert_allclose(host["targets"], builder(dev["rgb"], dev["centers"]).numpy(),
                                   atol=1e-6)
        np.testing.assert_allclose(dev["gray"][..., 0], dev["rgb"].mean(-1), atol=1e-6)


def test_centres_keep_the_edge_buffer():
    cfg = _data(points=256, crop_size=64, min_side=64, max_side=64)
    assert cfg.resolved_edge_buffer == round(64 * 96 / 352) == 17
    (batch,) = _take(_dataset(None, cfg), 1)
    centers = batch["centers"]
    assert centers.min() == 17 and centers.max() == 64 - 17 - 1   # 256 draws reach both ends
    cfg = _data(points=64, edge_buffer=5)
    (batch,) = _take(_dataset(None, cfg), 1)
    assert batch["centers"].min() >= 5 and batch["centers"].max() < 48 - 5


def test_paper_defaults():
    cfg = config_lib.DataConfig()
    assert cfg.side_range == (352, 600)
    assert cfg.crop_size == 352 and cfg.points == 128 and cfg.batch_size == 8
    options = pretrain.PipelineOptions()
    assert cfg.resolved_edge_buffer == 96 and options.random_mirror and options.drop_remainder
    assert options.seed == 0 and options.start == 0 and options.repeat


def test_same_seed_same_batches_whatever_the_parallelism():
    a = _take(_dataset(None, seed=5, num_parallel_calls=1, deterministic=True), 3)
    b = _take(_dataset(None, seed=5, deterministic=True), 3)
    c = _take(_dataset(None, seed=6), 3)
    for x, y in zip(a, b):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert not np.array_equal(a[0]["gray"], c[0]["gray"])


def _windows(image, size):
    """All size x size windows of image, and of its mirror image."""
    out = []
    for flipped in (image, image[:, ::-1]):
        for y in range(image.shape[0] - size + 1):
            for x in range(image.shape[1] - size + 1):
                out.append((flipped is not image, flipped[y:y + size, x:x + size]))
    return out


def test_crop_at_scale_one_is_a_window_mirrored_or_not():
    image = smooth_rgb(48, 56, seed=3)
    reference = image / 255.0
    cfg = _data(batch_size=1, crop_size=40, min_side=48, max_side=48, targets_on_device=True)
    batches = _take(_dataset(image[None], cfg), 12)
    windows = _windows(reference, 40)
    seen = set()
    for batch in batches:
        errors = [np.abs(batch["rgb"][0] - w).max() for _, w in windows]
        best = int(np.argmin(errors))
        assert errors[best] < 1e-5
        seen.add(windows[best][0])
    assert seen == {False, True}   # both mirrored and unmirrored crops occur
    for batch in _take(_dataset(image[None], cfg, random_mirror=False), 4):
        errors = [np.abs(batch["rgb"][0] - w).max() for m, w in windows if not m]
        assert min(errors) < 1e-5


def test_short_side_is_scaled_into_the_range():
    """An image with short side 24 scaled to exactly 48: the crop is a window of the 2x resize."""
    image = smooth_rgb(24, 32, seed=4)
    resized = tf.image.resize(image / 255.0, (48, 64), antialias=True).numpy()
    cfg = _data(batch_size=1, crop_size=48, min_side=48, max_side=48, targets_on_device=True)
    for batch in _take(_dataset(image[None], cfg, random_mirror=False), 3):
        errors = [np.abs(batch["rgb"][0] - resized[:, x:x + 48]).max() for x in range(17)]
        assert min(errors) < 1e-4


def test_bad_folder_survives_and_reports_skips(bad_image_folder):
    folder, _ = bad_image_folder
    counter = SkipCounter()
    ds = _dataset(str(folder), _data(batch_size=1, targets_on_device=False), repeat=False,
                  shuffle=False, drop_remainder=False, include_names=True, skip_counter=counter)
    batches = _take(ds, 100)
    good = sorted(n for n, r in BAD_FOLDER_EXPECTED.items() if r == "ok")
    assert sorted(b["name"][0].decode().rsplit("/", 1)[1] for b in batches) == good
    bad = {n: r for n, r in BAD_FOLDER_EXPECTED.items() if r != "ok"}
    assert counter.total == counter.distinct == len(bad)
    assert {name.rsplit("/", 1)[1]: reason for name, reason in counter.skipped} == bad
    assert "3 image(s) skipped" in counter.summary()
    for batch in batches:
        assert np.isfinite(batch["targets"]).all()
        assert batch["gray"].shape == (1, 48, 48, 1)


def test_cache_decodes_once(bad_image_folder):
    folder, _ = bad_image_folder
    counter = SkipCounter()
    cfg = _data(batch_size=4, targets_on_device=True, max_side=48)
    good = sum(r == "ok" for r in BAD_FOLDER_EXPECTED.values())
    batches = _take(_dataset(str(folder), cfg, cache=True, skip_counter=counter), 6)
    assert len(batches) == 6   # 24 images: three passes over the 8 good ones
    assert counter.total == len(BAD_FOLDER_EXPECTED) - good   # skipped once, not every epoch


def test_finite_epoch_and_remainder():
    images = np.stack([smooth_rgb(50, 50, seed=i) for i in range(5)])
    ds = _dataset(images, repeat=False)
    assert len(_take(ds, 10)) == 2   # 5 images, batch 2, remainder dropped
    ds = _dataset(images, repeat=False, drop_remainder=False)
    assert [b["gray"].shape[0] for b in _take(ds, 10)] == [2, 2, 1]


def test_missing_and_empty_sources_fail_fast(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        _dataset(str(tmp_path / "missing"))
    with pytest.raises(SourceError, match="no image file"):
        _dataset(str(tmp_path))


@pytest.mark.parametrize("field,value,message", [
    ("batch_size", 0, "^batch_size must be a positive integer"),
    ("min_side", 40, "^min_side=40 is smaller than crop_size=48"),
    ("max_side", 47, "^max_side=47 is smaller than crop_size=48"),
    ("edge_buffer", 24, "^edge_buffer=24 leaves no room"),
    ("targets_on_device", "gpu", "^targets_on_device must be True, False or 'auto'"),
])
def test_data_config_errors_name_the_field(field, value, message):
    with pytest.raises(config_lib.ConfigError, match=message) as raised:
        _dataset(None, _data(**{field: value}))
    assert raised.value.field == field


@pytest.mark.parametrize("option,value,message", [
    ("shard_policy", "files", "^shard_policy must be one of"),
    ("resize_kernel", "nearest", "^resize_kernel must be one of"),
    ("cache", 3, "^cache must be True, False or a file path prefix"),
    ("alpha_background", 2.0, "^alpha_background must be in \\[0, 1\\]"),
    ("num_parallel_calls", 0, "^num_parallel_calls must be a positive integer"),
    ("seed", 1.5, "^seed must be an int or None"),
    ("start", -1, "^start must be a non-negative integer"),
    ("max_pixels", 0, "^max_pixels must be a positive integer or None"),
])
def test_option_errors_name_the_option(option, value, message):
    with pytest.raises(config_lib.ConfigError, match=message) as raised:
        _dataset(None, **{option: value})
    assert raised.value.field == option


def test_loss_config_and_unknown_options_are_checked():
    with pytest.raises(config_lib.ConfigError, match="^window must be odd") as raised:
        _dataset(None, loss=config_lib.LossConfig(window=4))
    assert raised.value.field == "window"
    with pytest.raises(TypeError, match="unknown option.*'num_centers'.*seed, deterministic"):
        _dataset(None, num_centers=8)
    with pytest.raises(TypeError, match="the loss is the PretrainConfig's"):
        pretrain.pretrain_dataset(config_lib.PretrainConfig(), config_lib.LossConfig())
    with pytest.raises(TypeError, match="PretrainConfig or DataConfig first"):
        pretrain.pretrain_dataset(config_lib.LossConfig())


def test_a_missing_data_source_is_not_checked_when_another_source_is_read():
    # A run's config.json may name data that is gone; reading another source still works.
    gone = _data(data="/no/such/training/set", targets_on_device=True)
    (batch,) = _take(_dataset(np.stack([smooth_rgb(50, 50, seed=1)] * 2), gone), 1)
    assert batch["rgb"].shape == (2, 48, 48, 3)


def _run_config(**train):
    return config_lib.PretrainConfig(
        # The 8 embedded validation photos: cached, as the embedded photos are by default.
        data=_data(data="embedded:validation", targets_on_device=False),
        loss=config_lib.LossConfig(kind="lab_joint", window=5),
        train=config_lib.TrainConfig(**train))


def _same(a, b):
    return len(a) == len(b) and all(
        set(x) == set(y) and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b))


def test_a_pretrain_config_gives_its_data_loss_and_run_defaults():
    """A PretrainConfig is its data + loss with the run's seed, determinism and (for the
    embedded photos) the decoded-image cache: the batches are those of the explicit call."""
    run = _run_config(seed=7, deterministic=True)
    got = _take(pretrain.pretrain_dataset(run, skip_counter=False, start=3, include_index=True),
                1)
    want = _take(_dataset("embedded:validation", run.data, run.loss, seed=7, deterministic=True,
                          cache=True, start=3, include_index=True), 1)
    assert _same(got, want)
    assert got[0]["targets"].shape[-1] == TargetBuilder("lab_joint", window=5).target_dim
    assert list(got[0]["index"]) == [3, 4]


def test_run_defaults_of_the_options_and_explicit_options_win():
    # The option resolution itself (private), without building datasets.
    def resolved(run, source=None, **options):
        _, _, _, opts = pretrain._resolve(run, None, source, options)  # pylint: disable=protected-access
        return opts.seed, opts.deterministic, opts.cache

    assert resolved(_run_config(seed=7, deterministic=True)) == (7, True, True)
    assert resolved(_run_config(seed=7)) == (7, None, True)   # tf.data's default order
    assert resolved(_run_config(seed=7), source="/other/photos") == (7, None, False)
    assert resolved(_run_config(seed=7), seed=1, deterministic=False, cache="/tmp/c") == (
        1, False, "/tmp/c")
    files = config_lib.PretrainConfig(data=_data(data=".", targets_on_device=False))
    assert resolved(files) == (0, None, False)   # a folder is not cached by default
    data, loss, source, opts = pretrain._resolve(  # pylint: disable=protected-access
        _data(), None, None, {})
    assert (data, loss, source) == (_data(), config_lib.LossConfig(), None)
    assert opts == pretrain.PipelineOptions()


def test_a_pretrain_config_read_from_another_source_is_not_cached():
    images = np.stack([smooth_rgb(50, 50, seed=i) for i in range(6)])
    run = _run_config(seed=2)
    got = _take(pretrain.pretrain_dataset(run, source=images, skip_counter=False), 2)
    assert _same(got, _take(_dataset(images, run.data, run.loss, seed=2), 2))


def test_auto_targets_on_device_follows_the_accelerators():
    expected = bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
    assert pretrain.resolve_targets_on_device("auto") is expected
    assert pretrain.resolve_targets_on_device(True) is True


def test_input_context_shards_by_file_and_batches_per_replica():
    names = []
    for index in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=index,
                                             num_replicas_in_sync=2)
        ds = _dataset(None, _data(batch_size=4, targets_on_device=True), repeat=False,
                      include_names=True, input_context=context)
        assert ds.element_spec["gray"].shape[0] == 2   # global 4 over 2 replicas
        names.append({n.decode() for b in _take(ds, 100) for n in b["name"]})
    assert not names[0] & names[1]
    assert len(names[0] | names[1]) >= 40 - 2   # 41 photos, partial batches dropped


def _mirrored():
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip("needs two logical CPUs (tests/conftest.py)")
    return make_strategy("mirrored", devices=[d.name for d in devices[:2]])


def test_under_mirrored_strategy(bad_image_folder):
    strategy = _mirrored()
    folder, _ = bad_image_folder
    counter = SkipCounter()
    ds = _dataset(str(folder), _data(batch_size=4, targets_on_device=True), skip_counter=counter)
    dist = strategy.experimental_distribute_dataset(ds)

    @tf.function
    def step(batch):
        def replica(b):
            return tf.reduce_sum(b["gray"]) + tf.cast(tf.reduce_sum(b["centers"]), tf.float32)
        return strategy.reduce("SUM", strategy.run(replica, args=(batch,)), axis=None)

    iterator = iter(dist)
    for _ in range(3):
        assert np.isfinite(step(next(iterator)).numpy())
    bad = {n for n, r in BAD_FOLDER_EXPECTED.items() if r != "ok"}
    assert {name.rsplit("/", 1)[1] for name, _ in counter.skipped} == bad
    assert counter.distinct == 3 and counter.total >= 3   # once per epoch read so far

    def dataset_fn(context):
        return _dataset(None, _data(batch_size=4, targets_on_device=False),
                        input_context=context)

    dist = strategy.distribute_datasets_from_function(dataset_fn)
    batch = next(iter(dist))
    local = strategy.experimental_local_results(batch["targets"])
    assert len(local) == 2 and local[0].shape[0] == 2


def test_iterator_checkpoint_round_trip(tmp_path):
    """The skip report (a py_function) must not block tf.train.Checkpoint(iterator=...)."""
    ds = _dataset(None, _data(targets_on_device=True), skip_counter=SkipCounter())
    iterator = iter(ds)
    next(iterator)
    checkpoint = tf.train.Checkpoint(iterator=iterator)
    path = checkpoint.save(str(tmp_path / "ckpt"))
    expected = next(iterator)
    checkpoint.restore(path)
    again = next(iterator)
    for key in expected:
        np.testing.assert_array_equal(expected[key].numpy(), again[key].numpy())


CORPUS = os.environ.get("TFCOLOR_PHOTO_CORPUS", os.path.expanduser("~/.cache/tfcolor-corpus/photos"))


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(CORPUS), reason=f"shared photo corpus not built ({CORPUS})")
def test_one_epoch_over_the_real_photo_corpus():
    """Every photo of the shared corpus (/work/shared/data) goes through, none is skipped."""
    counter = SkipCounter()
    files = sorted(os.listdir(CORPUS))
    cfg = _data(batch_size=8, crop_size=96, min_side=96, max_side=160, points=32)
    batches = _take(_dataset(CORPUS, cfg, repeat=False, drop_remainder=False, include_names=True,
                             skip_counter=counter), 10 ** 6)
    names = sorted(os.path.basename(n.decode()) for b in batches for n in b["name"])
    assert names == files and counter.total == 0
    targets = np.concatenate([b["targets"] for b in batches])
    np.testing.assert_allclose(targets[..., :64].reshape(-1, 2, 32).sum(-1), 1.0, atol=1e-5)
    assert targets[..., 64].mean() > 0.05   # real colour photos: chroma at the centres


@pytest.mark.parametrize("cache", [False, True])
def test_a_source_without_any_decodable_image_fails_instead_of_spinning(tmp_path, cache):
    for i in range(3):
        (tmp_path / f"{i}.jpg").write_text(f"not an image {i}")
    counter = SkipCounter()
    ds = _dataset(str(tmp_path), _data(targets_on_device=True), cache=cache,
                  skip_counter=counter)
    with pytest.raises(tf.errors.InvalidArgumentError, match="no decodable image"):
        next(iter(ds))
    assert counter.distinct == 3


def test_one_good_file_among_bad_ones_keeps_a_shuffled_repeating_pipeline_going(tmp_path):
    """The guard against sources without any decodable image does not fire when one good
    image sits at opposite ends of two consecutive shuffled epochs."""
    for i in range(5):
        (tmp_path / f"{i}.jpg").write_text(f"not an image {i}")
    from PIL import Image
    Image.fromarray(smooth_rgb(60, 60)).save(tmp_path / "good.png")
    ds = _dataset(str(tmp_path), _data(batch_size=1, targets_on_device=True),
                  skip_counter=SkipCounter())
    assert len(_take(ds, 30)) == 30


def _heldout(images=5, **kw):
    data = config_lib.DataConfig(**dict(dict(batch_size=3, crop_size=48, points=6), **kw))
    return pretrain.heldout_batches("embedded:validation", data,
                                    config_lib.LossConfig(kind="lab_joint", window=3),
                                    TargetBuilder("lab_joint", window=3), images=images)


def test_heldout_batches_are_fixed_whatever_the_training_seed():
    tf.keras.utils.set_random_seed(1)
    a = _heldout()
    tf.keras.utils.set_random_seed(2)
    b = _heldout(shuffle_buffer=7)
    assert [x["gray"].shape[0] for x in a] == [3, 2]   # 5 images in batches of 3: 3 + 2
    for x, y in zip(a, b):
        for key in ("gray", "centers", "targets"):
            np.testing.assert_array_equal(x[key], y[key])
    with pytest.raises(ValueError, match="heldout_images must be a positive integer"):
        _heldout(images=0)
