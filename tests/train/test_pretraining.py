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


def test_a_distillation_restart_may_change_the_loss_but_not_the_teachers(tmp_path):
    def config(**distill):
        c = _config(str(tmp_path))
        c.multitask.tasks = ("distillation",)
        c.multitask.gradient_rule = "sum"
        c.distill.teachers = ("runs/a",)
        for key, value in distill.items():
            setattr(c.distill, key, value)
        return c

    run_dir.write_config(str(tmp_path), config())
    pretraining._check_model_dir(config(alpha=0.5), str(tmp_path))     # the loss may change
    with pytest.raises(cfg.ConfigError, match="different distill configuration.*teachers"):
        pretraining._check_model_dir(config(teachers=("runs/b",)), str(tmp_path))
    with pytest.raises(cfg.ConfigError, match="different distill configuration.*combine"):
        pretraining._check_model_dir(config(combine="auxiliary"), str(tmp_path))
