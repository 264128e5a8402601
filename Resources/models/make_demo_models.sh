#!/usr/bin/env bash
# Train the bundled demo models (ultrasound + MRI, `tiny` preset, 64 px) on phantom data, on a CPU.
#
#   bash Resources/models/make_demo_models.sh WORKDIR [STEPS]
#
# WORKDIR keeps the phantom data and both training runs; rerunning the script resumes where it stopped
# (every stage is skipped when its output exists, training continues from its checkpoint with --resume).
# The two domains come from one phantom dataset, whose US and MRI cases use disjoint seeds (unpaired),
# and the seed (1000) differs from every evaluation seed. At the end the EMA weights are stored in
# float16 under Resources/models/demo-{us,mri}/ (ddic.models.bundled.export_demo_model), with loss.csv,
# loss.png and the last sample grid. Needs matplotlib for loss.png (pip install ".[eval]").
# DDIC_DEMO_DOMAINS="us" / "mri" trains one domain only (run two copies in parallel on two cores);
# DDIC_TRAIN_THREADS sets torch's threads per run (default 1).
set -euo pipefail
WORK=${1:?usage: make_demo_models.sh WORKDIR [STEPS]}
STEPS=${2:-3000}
THREADS=${DDIC_TRAIN_THREADS:-1}
mkdir -p "$WORK"
if [ ! -f "$WORK/phantom/phantom.json" ]; then
  ddic phantom --n 400 --seed 1000 --out "$WORK/phantom"
fi
if [ ! -f "$WORK/us-canonical/manifest.csv" ]; then
  ddic prepare hc18 "$WORK/phantom/us/hc18" --out "$WORK/us-canonical"
fi
for domain in ${DDIC_DEMO_DOMAINS:-us mri}; do
  if [ "$domain" = us ]; then data="$WORK/us-canonical/train"; else data="$WORK/phantom/mri/canonical"; fi
  resume=()
  if [ -d "$WORK/train-$domain/checkpoint" ]; then resume=(--resume); fi
  OMP_NUM_THREADS=$THREADS ddic train --domain "$domain" --data "$data" --out "$WORK/train-$domain" \
    --preset tiny --size 64 --steps "$STEPS" --batch-size 8 --lr 2e-4 --warmup 200 --ema-decay 0.999 \
    --checkpoint-every 250 --num-samples 16 --device cpu "${resume[@]}"
done

# Export: float16 weights + a card that says what the model is, with its training curve and samples.
HERE=$(cd "$(dirname "$0")" && pwd)
for domain in ${DDIC_DEMO_DOMAINS:-us mri}; do
  if [ -f "$WORK/train-$domain/model.json" ]; then
    python -c "import sys; from ddic.models.bundled import export_demo_model; export_demo_model(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4])" \
      "$WORK/train-$domain" "$HERE/demo-$domain" \
      "bash Resources/models/make_demo_models.sh WORKDIR $STEPS (DDIC_TRAIN_THREADS=$THREADS)" \
      "${DDIC_DEMO_WHERE:-a 2-core x86-64 CPU, 64 px, in the background}"
  fi
done
