"""Lab hosts made on this machine for the fan-out tests: each a network
namespace with its own address (a veth pair, 10.213.N.2/30), its own sshd
listening there, its own unprivileged user, and its own lab cache and work
directories. They share this machine's filesystem, so lab runs there from a
copy of this checkout with this Python; their caches get a copy of the
controller's image and distro-kernel assets (so no host builds anything;
kernels built by lab are copied by `lab hosts run` itself).

Everything is undone on exit, even after a failure: the sshds and every
process of the hosts' users are ended by pid, the namespaces, users and
directories removed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

PREFIX = "labt-h"            # namespace, veth and user names: labt-h1, ...


def sh(*argv, check=True, **kw):
    return subprocess.run([str(a) for a in argv], check=check, capture_output=True,
                          text=True, **kw)


@dataclass
class NsHost:
    index: int
    root: Path
    sshd: subprocess.Popen | None = None
    cpus: str | None = None          # taskset list: the host's cores (None: all)

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.index}"

    @property
    def address(self) -> str:
        return f"10.213.{self.index}.2"

    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.name).pw_uid

    def pids(self) -> list[int]:
        """This host's processes: its sshd and whatever runs as its user."""
        out = []
        uid = self.uid
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                if os.stat(d).st_uid == uid:
                    out.append(int(d.name))
            except OSError:
                continue
        if self.sshd and self.sshd.poll() is None:
            out.append(self.sshd.pid)
        return out

    def kill(self) -> None:
        """The host dies: its sshd and all its processes, SIGKILL, by pid."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        if self.sshd:
            self.sshd.wait(timeout=10)


class NamespaceHosts:
    def __init__(self, count: int, *, cache_from: Path, image_dir: Path, release: str,
                 cpus: list[str | None] | None = None):
        self.count = count
        self.cache_from = cache_from
        self.image_dir = image_dir
        self.release = release
        self.cpus = cpus or [None] * count
        self.hosts: list[NsHost] = []
        self.base: Path | None = None

    # --- set up ----------------------------------------------------------------
    def __enter__(self) -> "NamespaceHosts":
        cleanup_leftovers()
        self.base = Path(tempfile.mkdtemp(prefix="lab-nshosts-", dir="/var/tmp"))
        self.base.chmod(0o755)
        try:
            self._common()
            for i in range(1, self.count + 1):
                h = NsHost(i, self.base / f"h{i}", cpus=self.cpus[i - 1])
                self.hosts.append(h)
                self._host(h)
            for h in self.hosts:
                wait_port(h.address, 22)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _common(self) -> None:
        b = self.base
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", b / "id_ed25519")
        # lab as the hosts run it: a copy of this checkout (the hosts' users
        # may not traverse the controller's directories), this Python
        repo = Path(__file__).resolve().parents[2]
        for d in ("lab", "images", "kernels"):
            shutil.copytree(repo / d, b / "src" / d,
                            ignore=shutil.ignore_patterns("__pycache__"))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)   # sshd's privilege separation dir

    def _host(self, h: NsHost) -> None:
        ns, veth = h.name, h.name
        (h.root / "home").mkdir(parents=True)
        sh("useradd", "--no-create-home", "--home-dir", h.root / "home", "--shell", "/bin/sh",
           "--user-group", "--password", "*", h.name)   # '*': no password, not locked
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "addr", "add", f"10.213.{h.index}.1/30", "dev", veth)
        sh("ip", "link", "set", veth, "up")
        sh("ip", "-n", ns, "addr", "add", f"{h.address}/30", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        self._cache(h)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", h.root / "ssh_host_ed25519_key")
        (h.root / "authorized_keys").write_text((self.base / "id_ed25519.pub").read_text())
        (h.root / "sshd_config").write_text(f"""\
ListenAddress {h.address}
Port 22
HostKey {h.root}/ssh_host_ed25519_key
PidFile {h.root}/sshd.pid
AuthorizedKeysFile {h.root}/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers {h.name}
Subsystem sftp internal-sftp
""")
        sh("chown", "-R", f"{h.name}:{h.name}", h.root / "home", h.root / "cache", h.root / "work")
        argv = ["ip", "netns", "exec", ns]
        if h.cpus is not None:
            argv += ["taskset", "-c", h.cpus]
        argv += ["/usr/sbin/sshd", "-D", "-e", "-f", str(h.root / "sshd_config")]
        h.sshd = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                  stderr=open(h.root / "sshd.log", "w"))

    def _cache(self, h: NsHost) -> None:
        """The host's own lab cache, a copy of what it needs of the
        controller's: the image and the distro kernel's assets."""
        c = h.root / "cache"
        (h.root / "work").mkdir()
        dest = c / "images" / self.image_dir.name
        dest.parent.mkdir(parents=True)
        sh("cp", "-a", "--sparse=always", "--reflink=auto", self.image_dir, dest)
        assets = self.cache_from / "kernel-assets"
        for d in assets.glob(f"{self.release}-*"):
            (c / "kernel-assets").mkdir(exist_ok=True)
            sh("cp", "-a", "--sparse=always", "--reflink=auto", d, c / "kernel-assets" / d.name)
        for sub in ("kernel-assets/pvh", "helpers"):
            if (self.cache_from / sub).is_dir():
                (c / sub).parent.mkdir(parents=True, exist_ok=True)
                sh("cp", "-a", self.cache_from / sub, c / sub)

    # --- use -------------------------------------------------------------------
    def inventory_env(self, h: NsHost) -> dict:
        """The environment lab gets on host h: its own cache, history and
        home, TCG (no KVM probe), lab from the hosts' copy."""
        return {"LAB_CACHE_DIR": str(h.root / "cache"),
                "LAB_HISTORY": str(h.root / "home" / "history.sqlite"),
                "LAB_ACCEL": "tcg", "PYTHONPATH": str(self.base / "src"),
                "HOME": str(h.root / "home"),
                # a user's PATH on Debian lacks the sbin directories (mke2fs)
                "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}

    def inventory(self, **per_host: dict) -> Path:
        """A YAML inventory of the hosts; per_host maps a host name to extra
        variables."""
        hosts = {}
        for h in self.hosts:
            hosts[h.name] = {
                "ansible_host": h.address, "ansible_user": h.name,
                "lab_workdir": str(h.root / "work"),
                "lab_environment": self.inventory_env(h),
                **per_host.get(h.name, {})}
        inv = {"all": {"hosts": hosts, "vars": {
            "ansible_ssh_private_key_file": str(self.base / "id_ed25519"),
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no "
                                       "-o UserKnownHostsFile=/dev/null -o ConnectTimeout=10",
            "ansible_python_interpreter": "/usr/bin/python3",
            "lab_command": f"{host_python()} -m lab.cli"}}}
        path = self.base / f"inventory-{len(list(self.base.glob('inventory-*')))}.yml"
        path.write_text(yaml.safe_dump(inv, sort_keys=False))
        return path

    # --- tear down -------------------------------------------------------------
    def __exit__(self, *exc) -> None:
        for h in self.hosts:
            try:
                h.kill()
            except KeyError:          # the user was never made
                pass
        for h in self.hosts:
            sh("ip", "netns", "del", h.name, check=False)
            sh("ip", "link", "del", h.name, check=False)
            sh("userdel", h.name, check=False)
            sh("groupdel", h.name, check=False)
        if self.base:
            shutil.rmtree(self.base, ignore_errors=True)


def _others_may_run(path: Path) -> bool:
    real = path.resolve()
    return all(os.stat(d).st_mode & 0o001 for d in [*real.parents, real])


def host_python() -> str:
    """A Python with lab's dependencies that the hosts' users may run: this
    one (CI's /opt/lab/venv), else lab's default venv when this one lives
    where they cannot go (a developer's pyenv under /root)."""
    for candidate in (Path(sys.executable), Path("/opt/lab/venv/bin/python")):
        if candidate.exists() and _others_may_run(candidate):
            return str(candidate)
    raise RuntimeError(f"no Python the hosts' users may run: {sys.executable} is under a "
                       "directory closed to them, and /opt/lab/venv is missing (run "
                       "ansible/bootstrap.sh)")


def wait_port(host: str, port: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError:
            if time.monotonic() > end:
                raise TimeoutError(f"sshd at {host}:{port} did not answer in {timeout:g}s")
            time.sleep(0.2)


def cleanup_leftovers() -> None:
    """Namespaces, links and users an earlier, killed test run left behind
    (only ours: named labt-hN)."""
    for pidfile in Path("/var/tmp").glob("lab-nshosts-*/h*/sshd.pid"):
        try:
            pid = int(pidfile.read_text().split()[0])
            if str(pidfile.parent / "sshd_config") in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass
        shutil.rmtree(pidfile.parent.parent, ignore_errors=True)
    r = sh("ip", "netns", "list", check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(PREFIX):
            sh("ip", "netns", "del", name, check=False)
    for i in range(1, 10):
        name = f"{PREFIX}{i}"
        try:
            uid = pwd.getpwnam(name).pw_uid
        except KeyError:
            continue
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit() and os.stat(d).st_uid == uid:
                    os.kill(int(d.name), signal.SIGKILL)
            except OSError:
                pass
        sh("ip", "link", "del", name, check=False)
        sh("userdel", name, check=False)
        sh("groupdel", name, check=False)
