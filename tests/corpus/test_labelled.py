"""tfcolor.corpus.labelled.within_source: one package's images of a labelled set."""
import numpy as np

from tfcolor.corpus.labelled import within_source


def _arrays():
    # class 0 from packages a and b, class 1 from a only, class 2 from a but never in val
    package = np.array(["a", "a", "a", "b", "b", "a", "a", "a", "a", "a"])
    y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2])
    split = np.array(["train", "val", "test", "train", "test", "train", "val", "test", "train",
                      "test"])
    x = np.arange(10)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    return dict(x=x, y=y, classes=np.array(["c0", "c1", "c2"]), split=split,
                group=np.array([f"g{i}" for i in range(10)]),
                id=np.array([f"i{i}" for i in range(10)]), package=package)


def test_within_source_keeps_one_package_and_classes_in_every_split():
    out = within_source(_arrays(), "a")
    assert list(out["classes"]) == ["c0", "c1"]          # c2 has no val image of package a
    assert list(out["x"][:, 0, 0, 0]) == [0, 1, 2, 5, 6, 7]
    assert list(out["y"]) == [0, 0, 0, 1, 1, 1] and set(out["package"]) == {"a"}
    for s in ("train", "val", "test"):
        assert list(out[f"y_{s}"]) == list(out["y"][out["split"] == s])
        np.testing.assert_array_equal(out[f"x_{s}"], out["x"][out["split"] == s])
    assert within_source(_arrays(), "b") is None          # one class only
