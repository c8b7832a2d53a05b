"""Every port the local stack binds, chosen in one place so that no two of its servers ever ask for the same one.

A stack's ports are planned before any server starts: first the ports asked for outright (a flag, or a service's
documented default: orchestrator 50051 and metrics 9101, inpainter 50052 and metrics 9100, Triton 8001, ...),
then the ports derived from them (replica 2 of the inpainter takes the next port after the first replica's that
nobody claimed and nothing on this machine listens on; `--inpainter-metrics-port 9100` with three replicas gives
9100, 9102, 9103, stepping over the orchestrator's 9101). Port 0 means a free port chosen by the OS.
"""

from __future__ import annotations

import socket

MAX_PORT = 65535


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, chosen by the OS (another process may still take it before it is bound)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether port can be bound on host now (SO_REUSEADDR, as servers bind: a port in TIME_WAIT is free)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PortPlan:
    """The ports of one stack on one host, each claimed by a named owner (for error messages and the log)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.owners: dict[int, str] = {}

    def exact(self, port: int, owner: str) -> int:
        """port for owner as asked (0: a free one). Two owners asking for one port is a ValueError naming both;
        a port that something outside the stack holds is left for the server to fail on, with its own error."""
        if not port:
            return self.free(owner)
        if not 0 < port <= MAX_PORT:
            raise ValueError(f"{owner}: port {port} is not in 1-{MAX_PORT}")
        if port in self.owners:
            raise ValueError(f"port {port} is asked for by both {self.owners[port]} and {owner}")
        self.owners[port] = owner
        return port

    def preferred(self, port: int, owner: str) -> int:
        """port when nobody claimed it and it is free on this host, else a free one (a default worth keeping
        when it can be had, such as Triton's 8000 and 8002)."""
        if port and port not in self.owners and port_is_free(port, self.host):
            self.owners[port] = owner
            return port
        return self.free(owner)

    def after(self, port: int, owner: str) -> int:
        """The first port above port that nobody claimed and that is free on this host (port 0: a free one)."""
        if not port:
            return self.free(owner)
        for candidate in range(port + 1, MAX_PORT + 1):
            if candidate not in self.owners and port_is_free(candidate, self.host):
                self.owners[candidate] = owner
                return candidate
        raise ValueError(f"{owner}: no free port above {port}")

    def free(self, owner: str) -> int:
        """A port the OS calls free and no owner of this plan holds."""
        while (port := free_port(self.host)) in self.owners:
            continue
        self.owners[port] = owner
        return port
