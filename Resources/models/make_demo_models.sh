#!/usr/bin/env bash
# Train the bundled demo models (ultrasound + MRI, `slim` preset, v-prediction, 64 px) on phantom data, on a CPU.
#
#   bash Resources/models/make_demo_models.sh WORKDIR [STEPS]
#
# WORKDIR keeps the phantom data and both training runs; rerunning the script resumes where it stopped
# (every stage is skipped when its output exists, training continues from its checkpoint with --resume).
# Data (seed 1000, disjoint from every validation and evaluation seed; the two domains use disjoint anatomies):
#   US:  1200 phantom cases; the canonical head images of the frames (us/paired/*_us.png: the one canonical-US
#        preprocessing of `ddic prepare hc18`, skull-masked, with the phantom's true orientation), 15 % with
#        ventriculomegaly;
#   MRI: 800 phantom anatomies × 3 slices around the TT plane, brain-extracted as `ddic prepare feta` does.
# Recipe (BENCHMARKS.md, "Demo-model training recipe"): v-prediction, batch 16, EMA 0.999 with warm-up, vertical
# flips, uniform loss weights, in two stages: (1) AdamW lr 1e-3 constant for 3000 steps (fast progress; at this
# constant lr both runs later diverged, at steps 3083 and 6692); (2) from stage 1's EMA weights (--init-from),
# lr 4e-4 decayed by a half cosine to 2e-5 over 3000 more steps.
# At the end the EMA weights are stored in float16 under Resources/models/demo-{us,mri}/
# (ddic.models.bundled.export_demo_model) with loss.csv, loss.png and the last sample grid, and the US model's
# round-trip reference for the trust number is measured on held-out phantom frames (seed 2024) with
# `ddic calibrate-trust`. Needs matplotlib for loss.png (pip install ".[eval]").
# DDIC_DEMO_DOMAINS="us" / "mri" trains one domain only (run two copies in parallel on two cores);
# DDIC_TRAIN_THREADS sets torch's threads per run (default 1).
set -euo pipefail
WORK=${1:?usage: make_demo_models.sh WORKDIR [STEPS]}
STEPS=${2:-3000}  # per stage
THREADS=${DDIC_TRAIN_THREADS:-1}
mkdir -p "$WORK"
if [ ! -f "$WORK/phantom-us/phantom.json" ]; then
  ddic phantom --n 1200 --seed 1000 --domains us --ventriculomegaly-fraction 0.15 --out "$WORK/phantom-us"
fi
if [ ! -f "$WORK/phantom-mri/phantom.json" ]; then
  ddic phantom --n 800 --seed 1000 --domains mri --ventriculomegaly-fraction 0.15 --out "$WORK/phantom-mri"
fi
if [ ! -d "$WORK/us-train" ]; then
  mkdir -p "$WORK/us-train"
  cp "$WORK"/phantom-us/us/paired/*_us.png "$WORK/us-train/"
fi
for domain in ${DDIC_DEMO_DOMAINS:-us mri}; do
  if [ "$domain" = us ]; then data="$WORK/us-train"; else data="$WORK/phantom-mri/mri/canonical"; fi
  common=(--domain "$domain" --data "$data" --preset slim --size 64 --steps "$STEPS" --batch-size 16 --ema-decay 0.999
          --prediction v_prediction --flip vertical --warmup 100 --checkpoint-every 500 --sample-every 1000
          --num-samples 16 --device cpu)
  resume=()
  if [ -d "$WORK/stage1-$domain/checkpoint" ]; then resume=(--resume); fi
  OMP_NUM_THREADS=$THREADS ddic train "${common[@]}" --out "$WORK/stage1-$domain" --lr 1e-3 "${resume[@]}"
  resume=()
  if [ -d "$WORK/train-$domain/checkpoint" ]; then resume=(--resume); fi
  OMP_NUM_THREADS=$THREADS ddic train "${common[@]}" --out "$WORK/train-$domain" --lr 4e-4 --lr-schedule cosine \
    --min-lr 2e-5 --init-from "$WORK/stage1-$domain" "${resume[@]}"
done

# Export: float16 weights + a card that says what the model is, with its training curve and samples.
HERE=$(cd "$(dirname "$0")" && pwd)
for domain in ${DDIC_DEMO_DOMAINS:-us mri}; do
  if [ -f "$WORK/train-$domain/model.json" ]; then
    python -c "import sys; from ddic.models.bundled import export_demo_model; export_demo_model(*sys.argv[1:5], earlier=sys.argv[5])" \
      "$WORK/train-$domain" "$HERE/demo-$domain" \
      "bash Resources/models/make_demo_models.sh WORKDIR $STEPS (two stages; DDIC_TRAIN_THREADS=$THREADS)" \
      "${DDIC_DEMO_WHERE:-a 2-core x86-64 CPU, 64 px, in the background}" "$WORK/stage1-$domain"
  fi
done

# The trust number's reference: the US model's round trip on held-out in-distribution frames.
if [ -f "$HERE/demo-us/model.json" ]; then
  if [ ! -f "$WORK/val-2024/us/paired/paired.csv" ]; then
    ddic phantom --n 24 --seed 2024 --ventriculomegaly-fraction 0.15 --out "$WORK/val-2024"  # also the solver study's frames
  fi
  mkdir -p "$WORK/val-2024-us"
  cp "$WORK"/val-2024/us/paired/*_us.png "$WORK/val-2024-us/"
  ddic calibrate-trust "$HERE/demo-us" --images "$WORK/val-2024-us" --limit 24 --steps 10,15,20,30,50,100,200
fi
