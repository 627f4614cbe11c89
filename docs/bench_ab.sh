#!/bin/bash
# Before/after `dwm-net bench train` in one invocation on one machine, alternating sides.
# Usage: docs/bench_ab.sh BEFORE_COMMIT [PRESET] [SECONDS] [ROUNDS]
# "before" runs in a temporary git worktree at BEFORE_COMMIT, "after" in this checkout.
set -euo pipefail
before=$1; preset=${2:-cpu}; seconds=${3:-9}; rounds=${4:-2}
repo=$(cd "$(dirname "$0")/.." && pwd)
py=$repo/.venv/bin/python
wt=$(mktemp -d)
git -C "$repo" worktree add -q --detach "$wt" "$before"
trap 'git -C "$repo" worktree remove --force "$wt"' EXIT
for i in $(seq 1 "$rounds"); do
  for side in before after; do
    dir=$repo; [ "$side" = before ] && dir=$wt
    (cd "$dir" && PYTHONPATH=$dir $py -m launch bench train --preset "$preset" --seconds "$seconds" --json) \
      | $py -c "import json,sys; r=json.load(sys.stdin); print('$side', round(r['wm_updates_per_s'],1), round(r['ac_updates_per_s'],2), round(r['act_steps_per_s']))"
  done
done
