"""tfcolor.corpus.splits: grouped, seeded splits."""
import numpy as np

from tfcolor import corpus



def test_split_is_a_function_of_seed_and_group_only():
    recs = [dict(group=f"g{i // 3}", label="") for i in range(300)]
    corpus.split_corpus(recs, seed=5, val_frac=0.1, holdout_frac=0.2)
    again = [dict(r) for r in recs[::-1]]
    corpus.split_corpus(again, seed=5, val_frac=0.1, holdout_frac=0.2)
    assert [r["split"] for r in again[::-1]] == [r["split"] for r in recs]
    by_group = {}
    for r in recs:
        by_group.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_group.values())
    fractions = np.mean([[s == {"holdout"}, s == {"val"}] for s in by_group.values()], 0)
    assert 0.08 < fractions[0] < 0.35 and 0.02 < fractions[1] < 0.2
    recs[0]["label"] = "cats"   # a labelled photo takes its whole scene out of pretraining
    corpus.split_corpus(recs, seed=5, val_frac=0.1, holdout_frac=0.2)
    assert [r["split"] for r in recs[:3]] == ["labeled_only"] * 3
