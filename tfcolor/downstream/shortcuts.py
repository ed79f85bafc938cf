"""No-learning baselines of a labelled set: what a classifier scores without learning to see.

A learned trunk's accuracy means something only beside what needs no visual learning at all.
On a set built from a few sources (Debian packages), the *source* and its *style* (cut-outs on
grey, studio shots on white, border and brightness) can predict the class; these baselines
measure how much:

* :func:`majority`: the commonest training class, for every image;
* :func:`source_majority`: each image gets the commonest training class of its source (package);
  a source without training images gets the overall commonest class;
* :func:`style_features` + :class:`LogisticRegression`: a softmax regression on
  :data:`STYLE_FEATURES`, eleven hand-made global statistics of an image (no learned filter),
  standardised with the training set's statistics, its L2 strength chosen on the validation
  split from a grid that must hold the choice inside it (:func:`fit_on_val`).

Every function takes NumPy arrays and returns NumPy arrays; nothing here uses TensorFlow.
"""
import dataclasses

import numpy as np

__all__ = ["STYLE_FEATURES", "style_features", "majority", "source_majority",
           "LogisticRegression", "fit_on_val", "DEFAULT_L2_GRID"]

#: The eleven global features of :func:`style_features`, in order.
STYLE_FEATURES = ("grey_background_fraction", "white_fraction", "border_mean_r",
                  "border_mean_g", "border_mean_b", "border_std", "brightness_mean",
                  "brightness_std", "colourfulness", "saturation_mean", "edge_density")

#: The L2 strengths :func:`fit_on_val` tries (per example, on standardised features).
DEFAULT_L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)

_GREY = 128.0  # the background cut-outs are laid on (tfcolor.corpus.curation.GREY_BACKGROUND)
_BORDER = 4    # pixels of the frame the border statistics read


def style_features(images):
    """(N, H, W, 3) or (N, H, W) uint8 images -> (N, 11) float64 features (:data:`STYLE_FEATURES`):

    * the fraction of pixels within 2 of mid-grey (128, 128, 128) in every channel, and the
      fraction within 10 of white;
    * the mean R, G, B and the standard deviation of the brightness of the outer 4-pixel frame;
    * the mean and standard deviation of the brightness ((R + G + B) / 3, in [0, 1]);
    * colourfulness (Hasler and Suesstrunk 2003: ``sqrt(s_rg^2 + s_yb^2) + 0.3 sqrt(m_rg^2 +
      m_yb^2)``, on 0-255 values);
    * the mean HSV saturation ``(max - min) / max`` (0 where max is 0);
    * edge density: the mean absolute difference to the right and lower neighbours, in [0, 1].
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or min(x.shape[1:3]) <= 2 * _BORDER:
        raise ValueError(f"images must be (N, H, W, 3) or (N, H, W) larger than "
                         f"{2 * _BORDER} pixels, got shape {x.shape}")
    x = np.broadcast_to(x, x.shape[:3] + (3,)).astype(np.float64)
    n = x.shape[0]
    bright = x.mean(-1) / 255.0
    grey = (np.abs(x - _GREY) <= 2).all(-1).reshape(n, -1).mean(1)
    white = (x >= 245).all(-1).reshape(n, -1).mean(1)
    frame = np.ones(x.shape[1:3], bool)
    frame[_BORDER:-_BORDER, _BORDER:-_BORDER] = False
    border = x[:, frame] / 255.0                                  # (N, P, 3)
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    colourful = (np.sqrt(rg.reshape(n, -1).std(1) ** 2 + yb.reshape(n, -1).std(1) ** 2)
                 + 0.3 * np.sqrt(rg.reshape(n, -1).mean(1) ** 2 + yb.reshape(n, -1).mean(1) ** 2))
    high, low = x.max(-1), x.min(-1)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1e-12), 0.0)
    edges = 0.5 * (np.abs(np.diff(bright, axis=2)).reshape(n, -1).mean(1)
                   + np.abs(np.diff(bright, axis=1)).reshape(n, -1).mean(1))
    return np.stack([grey, white, border[..., 0].mean(1), border[..., 1].mean(1),
                     border[..., 2].mean(1), border.mean(-1).std(1), bright.reshape(n, -1).mean(1),
                     bright.reshape(n, -1).std(1), colourful,
                     saturation.reshape(n, -1).mean(1), edges], axis=1)


def majority(train_labels, count):
    """``count`` predictions of the commonest training class (ties: the lowest class)."""
    values, counts = np.unique(np.asarray(train_labels), return_counts=True)
    return np.full(int(count), values[np.argmax(counts)], dtype=np.int64)


def source_majority(train_sources, train_labels, sources):
    """Each of ``sources`` -> the commonest training class of that source (ties: the lowest
    class); a source without training images -> the overall commonest class."""
    train_sources, train_labels = np.asarray(train_sources), np.asarray(train_labels)
    fallback = majority(train_labels, 1)[0]
    rule = {}
    for s in np.unique(train_sources):
        rule[s] = majority(train_labels[train_sources == s], 1)[0]
    return np.array([rule.get(s, fallback) for s in np.asarray(sources)], dtype=np.int64)


@dataclasses.dataclass
class LogisticRegression:
    """Softmax regression with L2 on standardised features, fitted by full-batch gradient
    descent with Nesterov momentum (a convex problem: the result does not depend on the start
    beyond ``tol``).

    Attributes:
        l2: L2 strength on the weights (not the biases), per example: the objective is the mean
            cross-entropy plus ``0.5 * l2 * ||W||^2``.
        steps: gradient steps at most.
        tol: stop when the gradient's largest entry is below it.
    """
    l2: float = 1e-2
    steps: int = 5000
    tol: float = 1e-7

    def fit(self, features, labels, num_classes):
        f = np.asarray(features, np.float64)
        y = np.asarray(labels, np.int64)
        self.mean_ = f.mean(0)
        self.scale_ = np.where(f.std(0) > 0, f.std(0), 1.0)
        z = (f - self.mean_) / self.scale_
        n, d = z.shape
        onehot = np.eye(num_classes)[y]
        w, b = np.zeros((d, num_classes)), np.zeros(num_classes)
        vw, vb = np.zeros_like(w), np.zeros_like(b)
        # 1 / Lipschitz constant of the gradient: ||z||^2 / (2n) bounds the softmax part
        rate = 1.0 / (np.linalg.norm(z, 2) ** 2 / (2.0 * n) + self.l2 + 0.5)
        for step in range(self.steps):
            lw, lb = w + 0.9 * vw, b + 0.9 * vb
            p = _softmax(z @ lw + lb)
            gw = z.T @ (p - onehot) / n + self.l2 * lw
            gb = (p - onehot).mean(0)
            vw, vb = 0.9 * vw - rate * gw, 0.9 * vb - rate * gb
            w, b = w + vw, b + vb
            if max(np.abs(gw).max(), np.abs(gb).max()) < self.tol:
                break
        self.coef_, self.intercept_, self.steps_ = w, b, step + 1
        return self

    def decision_function(self, features):
        z = (np.asarray(features, np.float64) - self.mean_) / self.scale_
        return z @ self.coef_ + self.intercept_

    def predict(self, features):
        return np.argmax(self.decision_function(features), axis=1)


def _softmax(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def fit_on_val(train, val, num_classes, grid=DEFAULT_L2_GRID):
    """The :class:`LogisticRegression` of the grid's L2 strength with the best validation
    accuracy (ties: the stronger L2), refitted on train only.

    Args:
        train, val: ``(features, labels)`` pairs.
        grid: increasing L2 strengths.

    Returns:
        ``(model, record)``: record holds the grid, the validation accuracy of each strength,
        the choice and whether it lies strictly inside the grid (``inside``).
    """
    grid = sorted(float(g) for g in grid)
    scores = []
    for l2 in grid:
        model = LogisticRegression(l2=l2).fit(*train, num_classes)
        scores.append(float((model.predict(val[0]) == np.asarray(val[1])).mean()))
    best = max(range(len(grid)), key=lambda i: (scores[i], i))
    model = LogisticRegression(l2=grid[best]).fit(*train, num_classes)
    return model, {"grid": grid, "val_accuracy": scores, "l2": grid[best],
                   "inside": 0 < best < len(grid) - 1}
