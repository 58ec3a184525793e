"""The stand-in's REST API on ``--api-socket``: every request checked against the OpenAPI file, every
answer too, and acted on as Cloud Hypervisor v54 would.
"""

from __future__ import annotations

import json
import os
import signal
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from chstandin.machine import VERSION, BootRefused, Machine
from chstandin.openapi import ApiContract, ApiViolation

#: A status and a JSON body (None: no body).
Answer = tuple[int, Any]
#: Calls the OpenAPI file answers 405 for when the VM is not booted.
NEEDS_A_BOOTED_VM = frozenset(
    {"vm.pause", "vm.resume", "vm.power-button", "vm.shutdown", "vm.reboot", "vm.snapshot"}
)


class NotImplementedByStandIn(Exception):
    """A request the contract allows that the stand-in does not act on (answered 500, not a violation)."""


def act(machine: Machine, endpoint: str, body: Any) -> Answer:
    """What Cloud Hypervisor does for ``endpoint`` (a request already checked against the schema)."""
    if endpoint == "vm.boot":
        if machine.state is None:
            return 404, None  # the contract: not created yet
        machine.start_boot()
        return 204, None
    with machine.lock:
        state = machine.state
        if endpoint == "vmm.ping":
            return 200, {"version": VERSION, "build_version": f"{VERSION}-standin", "pid": os.getpid()}
        if endpoint == "vmm.shutdown":
            machine.todo.put("vmm-shutdown")
            return 204, None
        if endpoint == "vm.create":
            if state is not None:
                raise BootRefused("Error creating VM: a VM is already created")
            machine.create(body)
            return 204, None
        if state is None:
            if endpoint == "vm.info":
                return 404, None  # the contract: not created yet
            raise BootRefused(f"{endpoint}: no VM is created (the stand-in answers as for a failed call)")
        if endpoint == "vm.info":
            return 200, {"config": machine.vm_config(), "state": state, "memory_actual_size": machine.memory}
        if endpoint == "vm.counters":
            return 200, {
                f"_disk{n}": {"read_bytes": 0, "write_bytes": 0}
                for n in range(len(machine.vm_config().get("disks", [])))
            }
        if state in ("Shutdown", "Created") and endpoint in NEEDS_A_BOOTED_VM:
            return 405, None
        if endpoint == "vm.power-button":
            machine.todo.put("power-button")
            return 204, None
        if endpoint == "vm.shutdown":
            machine.state = "Shutdown"
            machine.todo.put("vm-shutdown")
            return 204, None
        if endpoint == "vm.reboot":
            machine.todo.put("reboot")
            return 204, None
        if endpoint == "vm.pause":
            if state != "Running":
                return 405, None
            machine.state = "Paused"
            machine.signal_guest(signal.SIGSTOP)
            machine.event("vm", "paused")
            return 204, None
        if endpoint == "vm.resume":
            if state != "Paused":
                return 405, None
            machine.state = "Running"
            machine.signal_guest(signal.SIGCONT)
            machine.event("vm", "resumed")
            return 204, None
        if endpoint == "vm.snapshot":
            if state != "Paused":
                return 405, None  # the contract: the VM must be paused
            url = str(body.get("destination_url", ""))
            if not url.startswith("file://"):
                return 404, None
            target = Path(url.removeprefix("file://"))
            target.mkdir(parents=True, exist_ok=True)
            (target / "config.json").write_text(json.dumps(machine.vm_config()))
            (target / "state.json").write_text(json.dumps({"standin": True, "memory": machine.memory}))
            machine.event("vm", "snapshotted")
            return 204, None
        if endpoint == "vm.restore":
            return 404, None  # the VM is already created (restore is for a VMM started without one)
        if endpoint == "vm.resize":
            machine.cpus = body.get("desired_vcpus", machine.cpus)
            machine.memory = body.get("desired_ram", machine.memory)
            return 204, None
        if endpoint == "vm.add-device":
            device_id = body.get("id") or f"_vfio{len(machine.devices)}"
            if device_id in machine.devices or body.get("path") in machine.devices.values():
                return 409, None
            machine.devices[device_id] = str(body.get("path"))
            return 200, {"id": device_id, "bdf": f"0000:00:{6 + len(machine.devices):02x}.0"}
        if endpoint == "vm.remove-device":
            if machine.devices.pop(str(body.get("id")), None) is None:
                return 404, None
            return 204, None
    raise NotImplementedByStandIn(f"{endpoint}: valid, but the stand-in does not implement it")


def serve_api(machine: Machine, contract: ApiContract) -> socketserver.BaseServer:
    """Serve the API on the machine's API socket, in threads of their own."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def address_string(self) -> str:
            return "unix"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            method = self.command
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            endpoint = self.path.removeprefix("/api/v1/")
            try:
                operation = contract.operation(method, self.path)
                endpoint = operation.endpoint
                value = contract.check_request(operation, self.headers.get("Content-Type"), body)
                status, answer = act(machine, operation.endpoint, value)
                contract.check_response(operation, status, answer)
            except ApiViolation as exc:
                machine.record_violation(str(exc))
                machine.record_request(method, endpoint, exc.status)
                self._send(exc.status, str(exc).encode(), "text/plain")
                return
            except (NotImplementedByStandIn, BootRefused) as exc:
                machine.record_request(method, endpoint, 500)
                self._send(500, str(exc).encode(), "text/plain")
                return
            machine.record_request(method, endpoint, status)
            self._send(status, b"" if answer is None else json.dumps(answer).encode(), "application/json")

        def _send(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            if data:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

    class Server(socketserver.ThreadingUnixStreamServer):
        daemon_threads = True

    server = Server(str(machine.api_socket), Handler)
    threading.Thread(target=server.serve_forever, name="api", daemon=True).start()
    return server
