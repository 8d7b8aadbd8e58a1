"""A small synchronous QMP client on top of the qemu.qmp library's legacy
API (qemu.qmp handles the handshake, capabilities negotiation and events)."""

from __future__ import annotations

import time
from pathlib import Path

from qemu.qmp.legacy import QEMUMonitorProtocol

from ..errors import InfraError


class Qmp:
    def __init__(self, socket: Path):
        self.socket = socket
        self._mon: QEMUMonitorProtocol | None = None

    def connect(self, timeout: float = 30.0, alive=lambda: True) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline and alive():
            try:
                mon = QEMUMonitorProtocol(str(self.socket))
                mon.connect(negotiate=True)
                self._mon = mon
                return
            except (OSError, Exception) as e:  # noqa: BLE001 - socket not there yet
                last = e
                time.sleep(0.1)
        raise InfraError(f"QMP socket {self.socket} did not answer within {timeout:g}s: {last}")

    def cmd(self, name: str, **args):
        if self._mon is None:
            raise InfraError("QMP is not connected")
        return self._mon.cmd(name, **args) if args else self._mon.cmd(name)

    def close(self) -> None:
        if self._mon is not None:
            try:
                self._mon.close()
            except Exception:  # noqa: BLE001
                pass
            self._mon = None
