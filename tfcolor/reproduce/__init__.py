"""The small-scale reproduction in one call: pretraining arms with several seeds,
the colorizer against grey and the marginal prior on held-out photos, a linear probe and full
fine-tuning against random initialisation with paired confidence intervals, and the ablations
(no learning-rate drop, L2 regression).

    from tfcolor import reproduce
    config = reproduce.ReproduceConfig(corpus="~/.cache/tfcolor-corpus", output_dir="runs/r")
    results = reproduce.run(config)        # resumable; results.json and results.md

``binaries/reproduce --flagfile=configs/reproduce.flags`` is the same with flags.
"""
from tfcolor.reproduce.config import ARMS, PROTOCOLS, Arm, ReproduceConfig, init_name
from tfcolor.reproduce.corpus import CorpusError, make_fake_corpus
from tfcolor.reproduce.runner import Preempted, run

__all__ = ["ARMS", "PROTOCOLS", "Arm", "ReproduceConfig", "init_name", "CorpusError",
           "make_fake_corpus", "Preempted", "run"]
