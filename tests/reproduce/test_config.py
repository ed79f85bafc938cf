"""Tests of tfcolor.reproduce.config: validation names the field, round trip, initialisations."""
import dataclasses

import pytest

from tfcolor.config import ConfigError
from tfcolor.reproduce import config as config_lib


def _config(**kw):
    return config_lib.ReproduceConfig(**{"corpus": "/c", "output_dir": "/o", **kw})


def test_defaults_validate_and_round_trip():
    c = _config().validate()
    again = config_lib.ReproduceConfig.from_dict(c.to_dict()).validate()
    assert again == c
    assert c.inits() == ["random", "colorization_s0", "colorization_s1", "no_lr_drop_s0",
                         "no_lr_drop_s1", "l2_regression_s0", "l2_regression_s1"]


def test_lists_are_normalised_to_tuples():
    c = _config(arms=["colorization"], evaluate_arms=[], pretrain_seeds=[3],
                lr_drops=[0.5], probe_learning_rates=[1, 0.1]).validate()
    assert c.arms == ("colorization",) and c.pretrain_seeds == (3,)
    assert c.probe_learning_rates == (1.0, 0.1) and c.evaluate_arms == ()
    assert c.inits() == ["random", "colorization_s3"]


@pytest.mark.parametrize("change, field", [
        (dict(corpus=""), "corpus"),
        (dict(arms=("colorization", "nope")), "arms"),
        (dict(arms=("colorization", "colorization")), "arms"),
        (dict(evaluate_arms=("denoising",), arms=("denoising",)), "evaluate_arms"),
        (dict(evaluate_arms=("no_lr_drop",), arms=("colorization",)), "evaluate_arms"),
        (dict(protocols=("zero_shot",)), "protocols"),
        (dict(pretrain_seeds=()), "pretrain_seeds"),
        (dict(finetune_seeds=(0, 0)), "finetune_seeds"),
        (dict(finetune_seeds=(-1,)), "finetune_seeds"),
        (dict(pretrain_steps=0), "pretrain_steps"),
        (dict(dropout=1.0), "dropout"),
        (dict(learning_rate=0), "learning_rate"),
        (dict(lr_drops=(0.8, 0.5)), "lr_drops"),
        (dict(lr_drops=(1.0,)), "lr_drops"),
        (dict(lr_drops=(0.5, 0.8), pretrain_steps=2), "lr_drops"),
        (dict(probe_learning_rates=(0.1, -1)), "probe_learning_rates"),
        (dict(finetune_learning_rates=()), "finetune_learning_rates"),
        (dict(arch="vgg99"), "arch"),
])
def test_bad_values_name_their_field(change, field):
    with pytest.raises(ConfigError) as e:
        _config(**change).validate()
    assert e.value.field == field and str(e.value).startswith(field)


def test_unknown_keys_are_refused():
    with pytest.raises(ConfigError, match="unknown reproduce config keys"):
        config_lib.ReproduceConfig.from_dict({"corpus": "/c", "steps": 3})


def test_arms_are_recipes():
    arms = config_lib.ARMS
    # The two ablations differ from colorization in exactly one respect each.
    base = dataclasses.asdict(arms["colorization"])
    for name, field in (("no_lr_drop", "lr_drop"), ("l2_regression", "objective")):
        other = dataclasses.asdict(arms[name])
        assert [k for k in base if k != "description" and base[k] != other[k]] == [field]
    assert not arms["denoising"].is_colorizer and arms["l2_regression"].is_colorizer


def test_the_untrained_control_is_the_colorization_recipe_without_learning():
    arms = config_lib.ARMS
    base, other = dataclasses.asdict(arms["colorization"]), dataclasses.asdict(arms["untrained"])
    assert [k for k in base if k != "description" and base[k] != other[k]] == \
        ["untrained", "statistics_steps"]
    assert other["statistics_steps"] > 0 and arms["untrained"].is_colorizer
    c = _config(arms=("colorization", "untrained"), pretrain_seeds=(0,),
                evaluate_arms=("colorization", "untrained")).validate()
    assert c.inits() == ["random", "colorization_s0", "untrained_s0"]
