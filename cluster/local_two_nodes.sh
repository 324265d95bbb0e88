#!/usr/bin/env bash
# Two Ray nodes on this machine, on 127.0.0.1: a head (1 CPU) and a second raylet (1 CPU)
# that carries the `target` resource, so `slimsweep run cluster=ray` compresses on both and
# measures on the second. `bash cluster/local_two_nodes.sh stop` stops them.
set -euo pipefail
ray=${RAY:-ray}
# `ray start --head` turns on Ray's token authentication (the token is ~/.ray/auth_token);
# every process that joins (the second raylet, and the slimsweep driver) must use it too.
export RAY_AUTH_MODE=token
if [ "${1:-start}" = stop ]; then
    exec "$ray" stop
fi
"$ray" start --head --node-ip-address=127.0.0.1 --port=6379 --num-cpus=1 \
    --include-dashboard=false --disable-usage-stats
# A second raylet on the same machine needs its own ports and temporary folder.
"$ray" start --address=127.0.0.1:6379 --node-ip-address=127.0.0.1 --num-cpus=1 \
    --resources='{"target": 1}' --node-manager-port=6380 --object-manager-port=6381 \
    --min-worker-port=11000 --max-worker-port=11999 --disable-usage-stats
echo "cluster up at 127.0.0.1:6379; run: RAY_AUTH_MODE=token slimsweep run cluster=ray"
