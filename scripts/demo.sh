#!/usr/bin/env bash
# The demo: start volantd on 127.0.0.1 (SQLite in the default state directory), install the
# example runtime, boot a VM with QEMU and show its state and the workload's answer via kestrel.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
API="${VOLANT_API:-http://127.0.0.1:7777}"
{ read -r STATE; read -r LOGS; } < <($BIN/python -c \
    'from volant_core.settings import load_settings; s = load_settings(); print(s.state_dir); print(s.log_dir)')
mkdir -p "$STATE" "$LOGS"

if ! curl -fsS "$API/healthz" >/dev/null 2>&1; then
    echo "==> starting volantd (log: $LOGS/volantd.log)"
    nohup "$BIN/volantd" >>"$LOGS/volantd.log" 2>&1 &
    echo $! >"$STATE/volantd.pid"
    for _ in $(seq 1 100); do
        curl -fsS "$API/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -fsS "$API/healthz" >/dev/null || { tail -20 "$LOGS/volantd.log"; exit 1; }
fi

echo "==> installing the example runtime"
$BIN/volar plugins install examples/hello-http/manifest.json
if ! $BIN/volar vms get demo >/dev/null 2>&1; then
    echo "==> creating VM 'demo' (QEMU; waits until kestrel answers)"
    $BIN/volar vms create demo --plugin hello-http
fi
echo "==> VMs"
$BIN/volar vms list
echo "==> the workload's answer, through the API and kestrel"
$BIN/volar vms agent demo /v1/
echo
cat <<MSG
Next:  .venv/bin/volar vms list
       .venv/bin/volar vms delete demo      (stops the guest and removes everything it held)
       make demo-stop                       (stops volantd; VMs keep running)
MSG
