#!/usr/bin/env bash
# The issue #12 reproduction run. The cells were run from frozen worktrees of commits 57b82d0
# (the first grids) and 85dbc39 (the extended grids, through --probe_learning_rates overrides:
# results/reproduce_fullgrid.json); results/reproduce.json is this final invocation, from a
# worktree of the commit that holds the final configs/reproduce.flags, on the same output_dir
# (every cell reused). Resumable: rerun this script.
cd /work/exp/repro_wt4 || exit 1
exec python -m binaries.reproduce --flagfile=configs/reproduce.flags \
  --corpus=/root/.cache/tfcolor-corpus-v2 --output_dir=/work/exp/reproduce/out
