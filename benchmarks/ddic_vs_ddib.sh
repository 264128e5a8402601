#!/usr/bin/env bash
# The decisive study of issue 11, one command: DDIB vs DDIC (+1, the paper's settings) on held-out paired
# phantom frames (seed 4242: never used for training, recipe choice or the solver choice), the paired MRI
# brain-extracted exactly like the MRI training data. N = 100 (the default solver) on ≥ 50 frames, N = 1000
# DDIM (the paper's) on the first 10 frames, plus the beyond-the-paper variants (DDIC −1, local NCC² guidance)
# at N = 100; and the shipped defaults (eval-default).
#
#   bash benchmarks/ddic_vs_ddib.sh WORKDIR [extra ddic evaluate flags, e.g. --solver dpmpp2m]
#   (US_MODEL / MRI_MODEL: the pair, default the bundled demo pair)
#
# Writes WORKDIR/phantom-4242 (the frames) and one `ddic evaluate` report per configuration
# (WORKDIR/eval-*/report.html, summary.csv, pairwise.csv with Holm-corrected tests); BENCHMARKS.md quotes them.
set -euo pipefail
work=${1:?usage: ddic_vs_ddib.sh WORKDIR [extra ddic evaluate flags]}
shift
ddic=${DDIC:-ddic}
frames=${FRAMES:-60}
mkdir -p "$work"
if [ ! -f "$work/phantom-4242/us/paired/paired.csv" ]; then
  "$ddic" phantom --n "$frames" --seed 4242 --domains us --ventriculomegaly-fraction 0.15 --out "$work/phantom-4242"
fi
data=(--us-test "$work/phantom-4242" --paired "$work/phantom-4242" --no-fid --cpu
      --us-model "${US_MODEL:-ddic-demo-us}" --mri-model "${MRI_MODEL:-ddic-demo-mri}")
"$ddic" evaluate "${data[@]}" --methods ddib,ddic "$@" --out "$work/eval-default"  # the shipped defaults
"$ddic" evaluate "${data[@]}" --methods ddib,ddic --steps 100 "$@" --out "$work/eval-n100"
"$ddic" evaluate "${data[@]}" --methods ddic --steps 100 "$@" --corr-sign=-1 --out "$work/eval-sign-minus"
"$ddic" evaluate "${data[@]}" --methods ddic --steps 100 "$@" --guidance lncc2 --out "$work/eval-lncc2"
"$ddic" evaluate "${data[@]}" --methods ddib,ddic "$@" --solver ddim --steps 1000 --limit 10 --batch-size 10 \
  --out "$work/eval-ddim1000"
