#!/usr/bin/env bash
# The demo: `volar quickstart` starts volantd on 127.0.0.1:7777 (SQLite in the default state
# directory), installs the example runtime, boots a VM with QEMU and prints the workload's answer
# through kestrel. `make demo-stop` stops volantd (its pid is in <state>/volantd.pid).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/volar quickstart
cat <<MSG
Next:  .venv/bin/volar vms list
       .venv/bin/volar vms delete demo      (stops the guest and removes everything it held)
       make demo-stop                       (stops volantd; VMs keep running)
MSG
