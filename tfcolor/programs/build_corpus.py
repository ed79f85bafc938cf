"""Builds the real-photo corpus and a labelled colour classification set from Debian packages.

Re-runnable and cached: ``apt-get download`` fetches each package once into ``CACHE/debs``, only
the image paths (and the package's copyright file) are unpacked into ``CACHE/root/PACKAGE`` and
Qt resource bundles (``.rcc``) are unpacked into ``CACHE/rcc``; a second run is offline::

    apt-get update                                   # once, on a fresh machine
    binaries/build_corpus [--out=~/.cache/tfcolor-corpus] [--manifest_dir=DIR]

Installed, the command is ``tfcolor-build-corpus``. It needs ``apt-get`` and ``dpkg-deb`` (a
Debian or Ubuntu machine); about a minute once the packages are cached.

Stages:

1. **collect**: every file of a package that matches a ``Source`` pattern (the curated list in
   ``tfcolor.corpus.sources.SOURCES``: wallpaper collections, landscape panoramas, photo
   puzzles, educational data);
2. **filter**: keep *photographs* only. Each image is measured on a nearest-neighbour thumbnail
   of at most 256 x 256 pixels (``tfcolor.corpus.curation.measure``) and rejected, with the
   reason recorded in ``rejected.csv``, when

   * ``small``: its short side is below ``--min_side`` (labelled set: ``--label_min_side``);
   * ``alpha``: more than 2% of it is transparent after cropping to its fully opaque rows
     (cut-outs, icons; the labelled set keeps cut-outs and lays them on grey);
   * ``grey``: colourfulness (Hasler & Suesstrunk 2003) below ``--min_colourfulness``;
   * ``few_colours``: fewer than ``--min_colours`` distinct colours at 5 bits per channel
     (drawings, renders with flat fills);
   * ``flat``: more than ``--max_flat`` of the pixels have an exactly zero gradient to their
     right and lower neighbours (flat fills; camera noise makes this rare in photographs);
   * ``palette``: the 8 most frequent 5-bit colours cover more than ``--max_top8`` of the image;
   * ``curated``: outside the ``keep_only`` list of its source or named in
     ``CURATED_DROP``, both decided by looking at the contact sheets (``--contact_sheets``
     writes them) -- artwork and renders that pass the statistics.

   The statistics reject drawings, icons, cut-outs and grey images reliably; they cannot tell a
   smooth render from a smooth photograph (a shallow-focus photo has few colours too), hence
   the curation. Labelled candidates come from folders of photographs and are judged on size,
   emptiness, grey and colour count only (studio shots on white are flat by design);
3. **dedup**: exact duplicates (same sha256) and near-identical copies (16 x 16 difference
   hash within ``--dup_bits`` of 256) keep one copy: the labelled one, else the largest;
4. **group**: near-duplicates (within ``--group_bits``; same-scene pairs measured <= 17 bits
   here, unrelated pairs >= 33) and explicit same-scene rules (the
   ``group_by`` of a source: slices of one panorama, one monument in two activities, one wallpaper
   in several sizes) are merged into scene groups;
5. **split** by group with a fixed ``--seed``: each group's place comes from a hash of the seed and
   the group name, so adding photos never moves the old ones; groups that hold a photo of the
   labelled set are ``labeled_only`` (never used for pretraining or selection);
6. **write** ``OUT/photos/ID.png`` (EXIF-rotated, short side <= ``--max_side``), ``manifest.csv``
   (id, package, package version, path inside the package, licence as stated by the package's
   copyright file, sha256 of the source file, width, height, group, split), ``rejected.csv``,
   ``OUT/labeled/debphotoK.npz`` (K classes; ``x``, ``y``, ``classes``, ``group``, ``split``
   and ``x_train`` / ``y_train`` / ``x_val`` / ... / ``y_test``, split by group inside each
   class) with its ``labelled_manifest.csv``, the existing sets of ``/work/shared/data``
   (``gcompris5.npz``, ``fashion_mnist.npz``, ``digits_opencv.npz``, same keys) and from the
   last two the 20-class stand-in for CIFAR-100 ``fmnist_digits20.npz``
   (:mod:`tfcolor.corpus.fmnist_digits20`),
   ``near_duplicates.txt``, ``report.json`` (counts per package / split / class, licences,
   wall time), and with ``--sizes`` the crop arrays ``pretrain_S.npy`` (``--crops_per_photo``
   random crops per train photo) / ``val_S.npy`` / ``holdout_S.npy`` (``--eval_crops`` per
   photo, the first centred) with ``*_ids.txt``.

The photos are not committed: ``--out`` may not lie inside a git work tree. ``--manifest_dir``
writes a second copy of the two manifests (for instance into the repository).
"""
from tfcolor import corpus

#: Every setting with its default (``tfcolor.corpus.build.DEFAULTS``, named as the flags).
DEFAULTS = corpus.DEFAULTS


def settings_from_values(values=None, **overrides):
    """The settings of the build (``tfcolor.corpus.settings_from_values``): ``{name: value}``
    and overrides over :data:`DEFAULTS`; a bad value is a ValueError naming its flag."""
    return corpus.settings_from_values(values, **overrides)


def main(settings):
    """Builds the corpus with ``settings`` (:func:`settings_from_values`); returns 0."""
    corpus.build(settings)
    return 0
