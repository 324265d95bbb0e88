#!/usr/bin/env bash
# Time the demo sweep from a cold start (no study, no cached baseline) and print its front.
# Goal (walking-skeleton issue): under 5 minutes on 2 cores. Usage: benchmarks/demo_sweep.sh
set -euo pipefail
cd "$(dirname "$0")/.."
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/ {print $2}') GiB"
start=$(date +%s.%N)
.venv/bin/slimsweep run "sweep.dir=$workdir" "$@"
end=$(date +%s.%N)
printf 'wall time of `slimsweep run` (cold: baseline trained, Ray started): %.1f s\n' "$(echo "$end - $start" | bc)"
