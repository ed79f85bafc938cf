#!/usr/bin/env bash
# The issue #12 reproduction run, from the frozen worktree /work/exp/repro_wt2 (commit 57b82d0).
# Resumable: rerun this script.
cd /work/exp/repro_wt2 || exit 1
exec python -m binaries.reproduce --flagfile=configs/reproduce.flags \
  --corpus=/root/.cache/tfcolor-corpus-v2 --output_dir=/work/exp/reproduce/out
