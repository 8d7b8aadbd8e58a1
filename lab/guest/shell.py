"""The OpenSSH command line of `lab boot --shell` (pure).

lab's own SSH (ssh.py) pins the guest's host key to the one its image was
built with; the interactive shell must too, or anything listening on the
forwarded port first (another user's process, a stale guest) gets root's
session. OpenSSH reads pins from a known_hosts file, so the caller writes
``known_hosts_line`` to a private file and passes its path here.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from ..errors import InfraError

HOST = "127.0.0.1"


def known_hosts_line(host_key: str, port: int, host: str = HOST) -> str:
    """The known_hosts entry pinning `host_key` ("ssh-ed25519 AAAA... comment")
    for host:port, keyed the way ssh looks a non-default port up."""
    fields = host_key.split()
    if len(fields) < 2:
        raise InfraError(f"the image's host key {host_key!r} is not 'TYPE BASE64'; "
                         "rebuild the image with `lab image build --force`")
    return f"[{host}]:{port} {fields[0]} {fields[1]}\n"


def shell_argv(*, key: Path, port: int, known_hosts: Path, host: str = HOST,
               user: str = "root", cwd: str | None = None) -> list[str]:
    """ssh argv for an interactive root shell in the guest, host key pinned.

    -F none: the user's ssh config (a ProxyJump under `Host *`) has no say, as
    for lab's own SSH. Only `known_hosts` is consulted (no global file, no
    IP check, no updates), and a key that differs ends the connection
    (StrictHostKeyChecking=yes). IdentitiesOnly: agent keys are not offered
    first, which could exhaust sshd's MaxAuthTries before the image's key.
    """
    if any(c.isspace() for c in str(known_hosts)):
        # ssh splits UserKnownHostsFile at whitespace into several files
        raise InfraError(f"known_hosts path {str(known_hosts)!r} has whitespace, which ssh "
                         "cannot take; set TMPDIR to a directory without")
    return ["ssh", "-F", "none", "-i", str(key), "-p", str(port),
            "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "CheckHostIP=no",
            "-o", "UpdateHostKeys=no",
            "-o", "LogLevel=ERROR",
            *(["-t"] if cwd else []),
            f"{user}@{host}",
            *([f'cd {shlex.quote(cwd)} && exec "${{SHELL:-/bin/sh}}" -l'] if cwd else [])]
