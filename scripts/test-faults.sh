#!/usr/bin/env bash
# `npm run test:faults`: the fault-injection suite (test/faults/). It kills the kernel, the service
# or Postgres at random points of checkpoints (FAULT_TRIALS, default 50; FAULT_SEED replays a run;
# FAULT_BLOB_STORES, default postgres,filesystem) and checks that the last good checkpoint survives,
# restores equal, and that garbage collection leaves no orphans. About five minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node --import tsx --test --test-timeout=3600000 test/faults/checkpoint-faults.trial.ts
