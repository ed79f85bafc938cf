"""Tests of tfcolor.train.pretraining (the whole run: tests/train/test_heldout.py and
tests/programs/test_pretrain.py run it end to end)."""
import pytest

from tfcolor import config as cfg
from tfcolor import run_dir
from tfcolor.train import pretraining


def _config(model_dir, **model):
    config = cfg.PretrainConfig()
    config.train.model_dir = model_dir
    for key, value in model.items():
        setattr(config.model, key, value)
    return config


def test_a_restart_may_change_the_initialization_but_not_the_network(tmp_path):
    model_dir = str(tmp_path)
    run_dir.write_config(model_dir, _config(model_dir, prior_bias=False))
    # prior_bias only initializes: the checkpoint still fits, the restart is allowed.
    pretraining._check_model_dir(_config(model_dir, prior_bias=True), model_dir)
    with pytest.raises(cfg.ConfigError, match="different model configuration.*hidden"):
        pretraining._check_model_dir(_config(model_dir, prior_bias=True, hidden=8), model_dir)
