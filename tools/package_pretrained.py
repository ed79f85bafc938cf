#!/usr/bin/env python3
"""Packages a trained colorizer as a shipped model (``tfcolor/assets/models/NAME``).

    python tools/package_pretrained.py --model_dir=/work/exp/E_lowlr --checkpoint=ckpt-625 \
        --name=debphoto_vgg_tiny --card=MODEL_CARD.md --command="..." --data="..." \
        --metrics=holdout/metrics.json

Writes config.json, float16 weights.npz, MODEL_CARD.md and MANIFEST.json (sha256 of the files,
training command, data provenance, licence, held-out metrics) through
:func:`tfcolor.pretrained.write`; then ``tfcolor.pretrained.load(NAME)`` and
``binaries/colorize --model=pretrained:NAME photo.jpg`` use it.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfcolor import pretrained  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint name inside model_dir (default: the latest complete)")
    parser.add_argument("--name", required=True)
    parser.add_argument("--card", required=True, help="Markdown file: the model card")
    parser.add_argument("--command", default="", help="the training command")
    parser.add_argument("--data", default="", help="the training data's provenance")
    parser.add_argument("--licence", default="Apache-2.0 (the weights); training photos: see "
                        "the corpus manifest")
    parser.add_argument("--metrics", default=None, help="a binaries/evaluate metrics.json")
    parser.add_argument("--out_root", default=pretrained.MODELS_DIR)
    args = parser.parse_args(argv)
    checkpoint = (os.path.join(args.model_dir, args.checkpoint) if args.checkpoint else None)
    extra = {}
    if args.metrics:
        with open(args.metrics, encoding="utf-8") as f:
            extra["heldout_metrics"] = json.load(f)
    with open(args.card, encoding="utf-8") as f:
        card = f.read()
    out = pretrained.write(args.model_dir, os.path.join(args.out_root, args.name),
                           checkpoint=checkpoint, command=args.command, data=args.data,
                           licence=args.licence, card=card, extra=extra)
    print(out)


if __name__ == "__main__":
    main()
