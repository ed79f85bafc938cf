"""Comparing initialisations fairly: a learning rate per initialisation, paired differences.

A downstream comparison (``colorization`` vs ``random``, or two pretraining recipes) runs every
initialisation with every learning rate of a small grid and several fine-tuning seeds. Two rules
keep it honest:

* **The learning rate is chosen on validation, per initialisation**
  (:func:`choose_learning_rates`): the rate with the best mean validation score over the seeds
  (``best_val`` of :func:`tfcolor.downstream.protocol.finetune`, on the set's own validation
  split); the test scores reported are that rate's. A pretrained trunk and a random one want
  different rates, and picking the rate on test would flatter whichever is noisier. Ties go to
  the smaller rate. ``at_edge`` says when the choice is the grid's largest or smallest rate (the
  grid should then be extended).
* **Differences are paired by fine-tuning seed** (:func:`paired_difference`): a fine-tuning
  seed fixes the head's initialisation, the data order and the augmentation, so
  ``score(A, seed) - score(B, seed)`` removes that share of the noise. With several pretraining
  seeds of one recipe (``A_s0``, ``A_s1``, ...) the recipe's score per fine-tuning seed is the
  mean over its pretraining seeds: the fine-tuning seeds are then the independent pairs, and the
  interval (Student t and percentile bootstrap, :mod:`tfcolor.paired_statistics`) accounts for
  pretraining noise only through that average -- the conservative reading. ``pooled`` also
  gives every (pretraining seed, fine-tuning seed) pair, whose t-interval is narrower but treats
  pairs that share a reference run as independent.

The grid is a plain dict, so the results of any runner (``binaries/finetune`` results files,
:mod:`tfcolor.reproduce`) fit: ``grid[init][learning_rate] = {"val": {seed: score}, "test":
{seed: score}}`` with any extra keys (``stop_step``...) passed through.
"""
import numpy as np

from tfcolor import paired_statistics

__all__ = ["grid_cell", "choose_learning_rates", "recipe_scores", "paired_difference",
           "runs_and_images", "with_holm"]


def grid_cell(finetune_seeds_result):
    """The grid cell of one :func:`tfcolor.downstream.protocol.finetune_seeds` result:
    ``{"val": {seed: best_val}, "test": {seed: test score}, "stop_step": {seed: step}}``
    (seeds as strings, as JSON keeps them)."""
    r = finetune_seeds_result
    metric = r["metric"]
    runs = {str(x["seed"]): x for x in r["runs"]}
    cell = {"val": {s: float(x["best_val"]) for s, x in runs.items()},
            "test": {s: float(x["test"][metric]) for s, x in runs.items()},
            "stop_step": {s: int(x["stop_step"]) for s, x in runs.items()}}
    if all("predictions" in x["test"] for x in runs.values()):
        cell["predictions"] = {s: list(x["test"]["predictions"]) for s, x in runs.items()}
    return cell


def _mean(scores):
    return float(np.mean(list(scores.values())))


def choose_learning_rates(grid):
    """The learning rate of each initialisation, chosen on validation (module docstring).

    Args:
        grid: ``{init: {learning_rate: {"val": {seed: score}, "test": {seed: score}}}}``
            (learning rates as strings or floats; every cell with the same seeds).

    Returns:
        ``{init: {"learning_rate", "val_mean", "test_mean", "test_std", "test", "at_edge"}}``
        with ``test`` the chosen cell's per-seed test scores.
    """
    chosen = {}
    for init, by_lr in grid.items():
        if not by_lr:
            raise ValueError(f"initialisation {init!r} has no grid cell")
        rates = sorted(by_lr, key=float)
        best = max(rates, key=lambda lr: (_mean(by_lr[lr]["val"]), -float(lr)))
        test = {str(s): float(v) for s, v in by_lr[best]["test"].items()}
        values = list(test.values())
        chosen[init] = {
                "learning_rate": float(best), "val_mean": _mean(by_lr[best]["val"]),
                "test_mean": float(np.mean(values)),
                "test_std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                "test": test,
                "at_edge": len(rates) > 1 and best in (rates[0], rates[-1])}
    return chosen


def recipe_scores(chosen, inits):
    """Per fine-tuning seed, the mean test score over ``inits`` (the pretraining seeds of one
    recipe): ``{seed: score}`` over the seeds every init has."""
    seeds = set.intersection(*(set(chosen[i]["test"]) for i in inits))
    if not seeds:
        raise ValueError(f"{inits} share no fine-tuning seed")
    return {s: float(np.mean([chosen[i]["test"][s] for i in inits]))
            for s in sorted(seeds, key=int)}


def paired_difference(chosen, inits, reference_inits, *, confidence=0.95, n_resamples=10000,
                      seed=0):
    """Paired test-score difference of a recipe (``inits``: its pretraining seeds) minus a
    reference (``reference_inits``, e.g. ``["random"]``), by fine-tuning seed.

    Returns:
        ``{"n", "mean", "t_interval", "bootstrap", "fraction_improved", "values", "pooled"}``:
        over the fine-tuning seeds with each side averaged over its inits (the conservative
        interval; ``t_interval`` needs n >= 2, else None), and ``pooled`` over every
        (init, reference init) pair of a seed.
    """
    a, b = recipe_scores(chosen, inits), recipe_scores(chosen, reference_inits)
    seeds = [s for s in a if s in b]
    d = np.array([a[s] - b[s] for s in seeds])
    pooled = np.array([chosen[i]["test"][s] - chosen[r]["test"][s] for s in seeds
                       for i in inits for r in reference_inits])

    def stats(values):
        out = {"n": int(values.size), "mean": float(values.mean()),
               "fraction_improved": float(np.mean(values > 0)), "values": values.tolist(),
               "t_interval": None, "bootstrap": None}
        if values.size >= 2:
            out["t_interval"] = list(paired_statistics.t_interval(values, confidence))
            out["bootstrap"] = list(paired_statistics.bootstrap_mean_ci(
                    values, n_resamples=n_resamples, confidence=confidence, seed=seed))
        return out

    out = stats(d)
    out.update(seeds=seeds, inits=list(inits), reference_inits=list(reference_inits),
               confidence=confidence, pooled=stats(pooled))
    return out


def runs_and_images(grid, chosen, inits, reference_inits, labels, *, confidence=0.95,
                    n_resamples=10000, seed=0):
    """The top-1 difference of a recipe (``inits``: its pretraining runs) minus a reference, with
    an interval over the runs and the test images together
    (:func:`tfcolor.paired_statistics.seed_image_bootstrap`): each run's row is its chosen
    learning rate's per-image correctness, averaged over its fine-tuning seeds. None when a
    cell has no per-image predictions (results written before they were kept)."""
    labels = np.asarray(labels)

    def rows(names):
        out = []
        for name in names:
            cell = grid[name][_rate_key(grid[name], chosen[name]["learning_rate"])]
            if "predictions" not in cell:
                return None
            out.append(np.mean([np.asarray(p) == labels for p in cell["predictions"].values()],
                               axis=0))
        return np.stack(out)

    a, b = rows(inits), rows(reference_inits)
    if a is None or b is None:
        return None
    return paired_statistics.seed_image_bootstrap(a, b, n_resamples=n_resamples,
                                                  confidence=confidence, seed=seed)


def _rate_key(by_lr, rate):
    return next(k for k in by_lr if float(k) == float(rate))


def with_holm(comparisons, primary=None):
    """Adds ``p`` (two-sided t-test of the paired differences' mean, n >= 2) to every comparison
    and ``p_holm`` (Holm over every comparison but ``primary``, the one named before the runs,
    which is read at its own level); returns ``comparisons``."""
    names = [n for n, c in comparisons.items() if c["n"] >= 2]
    for name in names:
        comparisons[name]["p"] = paired_statistics.t_test_p(comparisons[name]["values"])
    family = [n for n in names if n != primary]
    for name, adjusted in zip(family, paired_statistics.holm(
            [comparisons[n]["p"] for n in family])):
        comparisons[name]["p_holm"] = adjusted
    if primary in comparisons:
        comparisons[primary]["primary"] = True
    return comparisons
