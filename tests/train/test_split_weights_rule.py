"""tfcolor.train.gradient_rules.SplitWeightsRule (split-weights, §8.2.2) against a NumPy hand
computation: a weight whose destination unit lies in task m's column gets task m's gradient
only; one task is the sum rule; masks from a real trunk; the config accepts the rule."""
import keras
import numpy as np
import pytest

from tfcolor import config
from tfcolor.models import cifar_nets, split
from tfcolor.train import gradient_rules as gr

TASKS = ("a", "b")


def _config(**kw):
    base = dict(learning_rate=0.1, lr_drops=[], weight_decay=0.0, head_weight_decay=0.0,
                bias_lr_multiplier=1.0)
    base.update(kw)
    return config.OptimizerConfig(**base)


def _toy(seed=0):
    rng = np.random.default_rng(seed)
    base = [keras.Variable(rng.normal(size=(3, 4)).astype(np.float32), name="kernel"),
            keras.Variable(rng.normal(size=(4,)).astype(np.float32), name="bias")]
    heads = {t: [keras.Variable(rng.normal(size=(2, 2)).astype(np.float32), name="kernel")]
             for t in TASKS}
    grads = {t: [rng.normal(size=(3, 4)).astype(np.float32),
                 rng.normal(size=(4,)).astype(np.float32)] for t in TASKS}
    head_grads = {t: [rng.normal(size=(2, 2)).astype(np.float32)] for t in TASKS}
    return base, heads, grads, head_grads


@pytest.mark.parametrize("average_heads", [True, False])
def test_each_weight_gets_its_destination_columns_task_only(average_heads):
    base, heads, grads, head_grads = _toy()
    rule = gr.make_rule("split_weights", list(TASKS), base, heads, _config(),
                        task_weights={"b": 2.0}, average_heads=average_heads)
    share = 1.0   # every parameter gets its owner's whole gradient
    out, norms = rule.gradients(grads, head_grads, step=0)
    got = [np.asarray(g) for g, _ in out]
    # Units 0, 1 of the 4 are column 0 (task a), units 2, 3 column 1 (task b).
    want_kernel = np.concatenate([grads["a"][0][:, :2], 2.0 * grads["b"][0][:, 2:]], 1) * share
    want_bias = np.concatenate([grads["a"][1][:2], 2.0 * grads["b"][1][2:]]) * share
    np.testing.assert_allclose(got[0], want_kernel, rtol=1e-6)
    np.testing.assert_allclose(got[1], want_bias, rtol=1e-6)
    np.testing.assert_allclose(got[2], share * head_grads["a"][0], rtol=1e-6)
    np.testing.assert_allclose(got[3], share * 2.0 * head_grads["b"][0], rtol=1e-6)
    # The logged norms are of each task's whole base gradient.
    l1 = (np.abs(grads["a"][0]).sum() + np.abs(grads["a"][1]).sum()) / 16
    np.testing.assert_allclose(norms["a/grad_l1_mean"], l1, rtol=1e-5)


def test_one_task_is_the_sum_rule_and_decay_is_added():
    base, heads, grads, head_grads = _toy(1)
    conf = _config(weight_decay=0.01, bias_lr_multiplier=2.0)
    one = {"a": grads["a"]}
    split_rule = gr.SplitWeightsRule(["a"], base, {"a": heads["a"]}, conf)
    sum_rule = gr.SumRule(["a"], base, {"a": heads["a"]}, conf)
    a, _ = split_rule.gradients(one, {"a": head_grads["a"]}, step=0)
    b, _ = sum_rule.gradients(one, {"a": head_grads["a"]}, step=0)
    for (ga, _), (gb, _) in zip(a, b):
        np.testing.assert_allclose(ga, gb, rtol=1e-6)


def test_equal_task_gradients_give_the_mean_rule():
    # The masks partition every variable: if all tasks had the same gradient, split-weights
    # would be joint SGD's mean.
    base, heads, grads, head_grads = _toy(2)
    same = {t: grads["a"] for t in TASKS}
    a, _ = gr.SplitWeightsRule(list(TASKS), base, heads, _config()).gradients(
        same, head_grads, step=0)
    b, _ = gr.SumRule(list(TASKS), base, heads, _config()).gradients(same, head_grads, step=0)
    for (ga, _), (gb, _) in zip(a[:2], b[:2]):
        np.testing.assert_allclose(ga, gb, rtol=1e-6)


def test_masks_from_a_trunk_and_bad_masks():
    net = cifar_nets.shallow_net(input_shape=(16, 16, 1), width_divisor=8, num_classes=None)
    base = net.trainable_variables
    masks = split.column_masks(net, 2)
    rule = gr.SplitWeightsRule(list(TASKS), base, {}, _config(), masks=masks)
    grads = {t: [np.full(v.shape, 1.0 + i, np.float32) for v in base]
             for i, t in enumerate(TASKS)}
    out, _ = rule.gradients(grads, {}, step=0, loss_scale=None)
    kernel = np.asarray(out[-2][0])                         # conv5: 24 units, 12 per column
    np.testing.assert_allclose(kernel[..., :12], 1.0)
    np.testing.assert_allclose(kernel[..., 12:], 2.0)
    wrong = dict(masks)
    wrong[base[0].path] = [np.zeros(base[0].shape[-1:], np.float32)] * 2
    with pytest.raises(ValueError, match="exactly one column"):
        gr.SplitWeightsRule(list(TASKS), base, {}, _config(), masks=wrong)
    missing = {k: v for k, v in masks.items() if k != base[0].path}
    with pytest.raises(ValueError, match="no column masks"):
        gr.SplitWeightsRule(list(TASKS), base, {}, _config(), masks=missing)


def test_config_accepts_split_weights():
    mt = config.MultiTaskConfig(tasks=("colorization", "jigsaw"),
                                gradient_rule="split_weights").validate()
    base, heads, _, _ = _toy()
    rule = gr.make_rule(mt.gradient_rule, list(TASKS), base, heads, _config(),
                        **mt.rule_options())
    assert isinstance(rule, gr.SplitWeightsRule)
    with pytest.raises(ValueError, match="reduction"):
        gr.SplitWeightsRule(list(TASKS), base, heads, _config(), reduction="mean")
