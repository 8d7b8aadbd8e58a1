"""The guest over SSH (fabric/paramiko). One connection is opened and kept for
every command: a handshake costs ~2 s under TCG because guest crypto is
emulated. The guest's host key is pinned to the one its image was built with."""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

from ..errors import CommandTimeout
from ..proc import Result
from .base import Guest, GuestUnreachable

# paramiko logs every failed handshake while lab waits for sshd; lab reports
# failures itself.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)

_KEYTYPES = {"ssh-ed25519": paramiko.Ed25519Key, "ssh-rsa": paramiko.RSAKey,
             "ecdsa-sha2-nistp256": paramiko.ECDSAKey}


CHANNEL_TIMEOUT = 30.0    # seconds to open a channel on a live connection


class SSHGuest(Guest):
    def __init__(self, port: int, key: Path, host_key: str, host: str = "127.0.0.1",
                 user: str = "root", banner_timeout: float = 30):
        self.port = port
        cfg = Config(overrides={"load_ssh_configs": False})
        self.conn = Connection(host=host, user=user, port=port, config=cfg,
                               connect_timeout=15,
                               connect_kwargs={"key_filename": str(key),
                                               "look_for_keys": False,
                                               "allow_agent": False,
                                               "banner_timeout": banner_timeout,
                                               "auth_timeout": 30})
        ktype, b64 = host_key.split()[:2]
        pkey = _KEYTYPES[ktype](data=base64.b64decode(b64))
        self.conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        self.conn.client.get_host_keys().add(f"[{host}]:{port}", ktype, pkey)

    def connect(self) -> None:
        try:
            self.conn.open()
            t = self.conn.client.get_transport()
            if t:
                t.set_keepalive(5)
                # opening a channel (a command, SFTP) waits for the guest to
                # answer; paramiko's default wait is an hour
                t.channel_timeout = CHANNEL_TIMEOUT
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise GuestUnreachable(f"SSH to 127.0.0.1:{self.port} failed: {e}") from e

    def run(self, cmd, *, timeout, check=False, log=None):
        start = time.monotonic()
        logf = open(log, "a", encoding="utf-8", errors="replace") if log else None
        try:
            kw = dict(hide=True)
            if logf:
                kw = dict(hide=False, out_stream=logf, err_stream=logf)
            r = self.conn.run(cmd, warn=True, timeout=timeout, in_stream=False, pty=False, **kw)
        except CommandTimedOut as e:
            out = (e.result.stdout or "") + (e.result.stderr or "")
            raise CommandTimeout(["guest$", cmd], timeout,
                                 "\n".join(out.splitlines()[-30:])) from None
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise GuestUnreachable(f"guest stopped answering SSH while running {cmd!r}: {e}") \
                from e
        finally:
            if logf:
                logf.close()
        res = Result(("guest$", cmd), r.exited, r.stdout, r.stderr, time.monotonic() - start)
        if check and not res.ok:
            from ..errors import InfraError
            raise InfraError(f"guest command failed with exit {res.returncode}: {cmd}\n"
                             + res.tail())
        return res

    def put(self, local, remote, mode=None):
        self.conn.put(str(local), remote)
        if mode is not None:
            self.run(f"chmod {mode:o} {remote}", timeout=30, check=True)

    def get(self, remote, local):
        self.conn.get(remote, str(local))

    def alive(self, timeout=10.0):
        try:
            return self.run("true", timeout=timeout).ok
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return False

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass
