"""The real-photo corpus and labelled colour classification sets, built from Debian packages.

One module per stage of :func:`tfcolor.corpus.build.build` (the corpus builder's work; its
program is ``tfcolor.programs.build_corpus``, its command ``binaries/build_corpus`` /
``tfcolor-build-corpus``):

* ``packages``: ``apt-get download``, unpacking the wanted files, copyright files and licences;
* ``bundles``: files inside Qt resource bundles (``.rcc``) and Jigzo puzzles (``.pzl``);
* ``sources``: the curated list of packages, paths and classes, and the candidate files;
* ``curation``: image statistics and the filters that keep photographs; contact sheets;
* ``dedup``: exact and near duplicates (difference hash), scene groups;
* ``splits``: the grouped train / val / holdout and labelled train / val / test splits;
* ``labelled``: the labelled images and the existing labelled sets;
* ``manifest``: the manifest files; ``crops``: the crop arrays;
* ``build``: every stage in order, its settings (:data:`~tfcolor.corpus.build.DEFAULTS`).
"""
from tfcolor.corpus.build import DEFAULTS, FRACTIONS, build, inside_git_tree, settings_from_values
from tfcolor.corpus.bundles import (IMAGE_EXTS, PZL_MEMBER, pzl_photo, rcc_members, unpack_bundle,
                                    unpack_pzl, unpack_rcc)
from tfcolor.corpus.crops import random_crops
from tfcolor.corpus.curation import (GREY_BACKGROUND, FilterConfig, analyse, contact_sheet,
                                     load_image, measure, reject_reasons, thumbnail)
from tfcolor.corpus.dedup import dedup_and_group, dhash, hamming_matrix
from tfcolor.corpus.labelled import square_image, write_existing_sets
from tfcolor.corpus.manifest import LABEL_FIELDS, MANIFEST_FIELDS, write_csv
from tfcolor.corpus.packages import (deb_file, download, licence_for, member_patterns,
                                     name_match, package_version, parse_copyright, path_match,
                                     unpack)
from tfcolor.corpus.sources import (COPYRIGHT_FROM, CURATED_DROP, CURATED_KEEP,
                                    EXISTING_SET_MEMBERS, LABEL_SOURCES, SOURCES, Source, collect)
from tfcolor.corpus.splits import split_corpus, split_labelled, unit_hash
