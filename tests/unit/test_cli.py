"""Every subcommand of `lab` run through lab.cli.main without qemu (lab's
FakeMachine, a cached fake image, fake kernels), and the job's machine
settings followed from the job file to the qemu argv: through `lab run
--dry-run`, and through the runner into the real Machine's argv."""

import functools
import json
import shlex
import stat

import pytest

from lab import runner, validate
from lab.cli import main
from lab.image import build as image_build
from lab.image.recipe import load_recipe
from lab.kernel import artifact as artifact_mod
from lab.vm.machine import Machine

from .conftest import make_artifact

MACHINE_JOB = """\
name: sizes
image: debian-bookworm
machine: {{cpus: 3, memory_mb: 1536, nvme_mb: 512, pmem_mb: 256, cmdline: "lab.job=1"}}
hung_task_timeout: 9
kernels:
  first: {{artifact: {first}}}
  second: {{artifact: {second}}}
variants:
  plain: {{}}
  noisy: {{cmdline: "loglevel=8"}}
workloads: [{{shell: {{command: "true", case: w}}}}]
"""


@pytest.fixture
def lab_env(tmp_path, monkeypatch):
    """lab's caches and runs in tmp_path, a cached image (so nothing is
    built), a host of 4 cpus (jobs may ask for 3)."""
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(validate, "host_cpus", lambda: 4)
    d = image_build.image_dir(load_recipe("debian-bookworm"))
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({"name": "debian-bookworm",
                                                 "key": d.name.rsplit("-", 1)[1]}))
    (d / "rootfs.ext4").write_bytes(b"")
    (d / "id_ed25519").write_text("key")
    (d / "ssh_host_ed25519_key.pub").write_text("ssh-ed25519 AAAA lab-guest")
    return d


def sizes_job(tmp_path):
    first = make_artifact(tmp_path / "first", "6.1-first")
    second = make_artifact(tmp_path / "second", "6.1-second")
    p = tmp_path / "sizes.yaml"
    p.write_text(MACHINE_JOB.format(first=first, second=second))
    return p


def opt(argv, flag):
    return argv[argv.index(flag) + 1]


def assert_machine_of_the_job(argv, kernel_dir, variant_cmdline=""):
    """What MACHINE_JOB asks for is on qemu's command line."""
    assert opt(argv, "-smp") == "3"
    # memory, plus a slot for the NVDIMM of 256 MiB
    assert opt(argv, "-m") == "1536M,slots=1,maxmem=1792M"
    assert "nvdimm=on" in opt(argv, "-machine")
    assert any(a.startswith("nvdimm,") and "memdev=" in a for a in argv)
    assert any(a.startswith("nvme,") for a in argv)
    assert opt(argv, "-kernel") == str(kernel_dir / "bzImage")
    append = opt(argv, "-append")
    assert "lab.job=1" in append.split()
    assert "sysctl.kernel.hung_task_timeout_secs=9" in append.split()
    assert ("loglevel=8" in append.split()) == bool(variant_cmdline)


def dry_run_cells(out: str) -> dict[str, list[str]]:
    cells, name = {}, "-"
    for line in out.splitlines():
        if line.startswith("# "):
            name = line[2:]
        elif line.strip():
            cells[name] = shlex.split(line)
    return cells


def test_run_dry_run_prints_each_cells_qemu_command(tmp_path, lab_env, capsys):
    job = sizes_job(tmp_path)
    assert main(["run", str(job), "--dry-run"]) == 0
    cells = dry_run_cells(capsys.readouterr().out)
    assert sorted(cells) == ["first.noisy", "first.plain", "second.noisy", "second.plain"]
    assert_machine_of_the_job(cells["first.plain"], tmp_path / "first")
    assert_machine_of_the_job(cells["second.noisy"], tmp_path / "second", "loglevel=8")
    assert not (tmp_path / "runs").exists()     # nothing ran, nothing was written


def test_run_dry_run_of_one_cell_or_one_shard(tmp_path, lab_env, capsys):
    job = sizes_job(tmp_path)
    assert main(["run", str(job), "--dry-run", "--cell", "second.noisy"]) == 0
    out = capsys.readouterr().out
    assert not out.startswith("#")             # one cell: just its command
    assert_machine_of_the_job(shlex.split(out), tmp_path / "second", "loglevel=8")
    assert main(["run", str(job), "--dry-run", "--shard", "2/2"]) == 0
    halves = set(dry_run_cells(capsys.readouterr().out))
    assert main(["run", str(job), "--dry-run", "--shard", "1/2"]) == 0
    other = set(dry_run_cells(capsys.readouterr().out))
    assert len(halves) == len(other) == 2 and not halves & other
    assert main(["run", str(job), "--dry-run", "--cell", "nope"]) == 3
    assert "first.plain" in capsys.readouterr().err      # the valid ids are named
    assert main(["run", str(job), "--dry-run", "--shard", "3/2"]) == 3


def test_run_dry_run_of_a_kernel_not_built_yet_is_bad_input(tmp_path, lab_env, tree, capsys):
    p = tmp_path / "b.yaml"
    p.write_text(f"name: b\nkernel: {{build: {{tree: {tree}}}}}\nimage: debian-bookworm\n"
                 "workloads: [{shell: {command: 'true'}}]\n")
    assert main(["run", str(p), "--dry-run"]) == 3
    assert "--dry-run needs cell default's kernel built" in capsys.readouterr().err


def test_job_settings_reach_qemus_argv_through_the_runner(tmp_path, lab_env, monkeypatch,
                                                         fake_lab):
    """job file -> lab run -> runner -> machine factory -> Machine argv: the
    factory renders the real Machine's qemu argv for each boot it is asked
    for (Machine builds it without starting qemu), then boots a FakeMachine."""
    argvs = {}

    def recording(cfg, workdir, log):
        m = Machine(cfg, workdir, log=log)
        argvs[cfg.kernel.release + " " + cfg.extra_cmdline] = m.build_spec(
            ssh_port=10022, accel="tcg").argv()
        return fake_lab(cfg, workdir, log)
    monkeypatch.setattr(runner, "default_machine_factory", recording)
    job = sizes_job(tmp_path)
    assert main(["run", str(job), "-o", str(tmp_path / "out"), "--cell", "first.noisy",
                 "--cell", "second.plain"]) == 0
    assert sorted(argvs) == ["6.1-first lab.job=1 loglevel=8", "6.1-second lab.job=1"]
    assert_machine_of_the_job(argvs["6.1-first lab.job=1 loglevel=8"], tmp_path / "first",
                              "loglevel=8")
    assert_machine_of_the_job(argvs["6.1-second lab.job=1"], tmp_path / "second")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [s["name"] for s in summary["suites"]] == ["first.noisy#1", "second.plain#1"]


def test_matrix_lists_cells_and_counts_boots(tmp_path, lab_env, capsys):
    job = sizes_job(tmp_path)
    assert main(["matrix", str(job), "--list"]) == 0
    out, err = capsys.readouterr()
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["cell", "kernel", "variant", "workloads", "baseline"]
    assert [r[0] for r in rows[1:]] == ["first.plain", "first.noisy", "second.plain",
                                        "second.noisy"]
    assert rows[1][1:] == ["first", "(artifact)", "plain", "default", "(1)", "-"]
    assert "4 cell(s) x repeat 1 = 4 boot(s)" in err
    assert main(["matrix", str(job), "--shard", "1/4"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


# --- lab boot -----------------------------------------------------------------

def test_boot_dry_run_prints_the_argv_of_its_options(tmp_path, lab_env, capsys):
    art = make_artifact(tmp_path / "art", "6.1-art")
    assert main(["boot", "--kernel", str(art), "--cpus", "3", "--memory", "1536",
                 "--nvme", "512", "--pmem", "256", "--append", "lab.job=1 loglevel=8",
                 "--dry-run"]) == 0
    argv = shlex.split(capsys.readouterr().out)
    assert opt(argv, "-smp") == "3"
    assert opt(argv, "-m") == "1536M,slots=1,maxmem=1792M"
    assert opt(argv, "-kernel") == str(art / "bzImage")
    assert "lab.job=1 loglevel=8" in opt(argv, "-append")
    # lab boot turns the hung-task detector on (20 s)
    assert "sysctl.kernel.hung_task_timeout_secs=20" in opt(argv, "-append")


@pytest.fixture
def distros(tmp_path, monkeypatch):
    """Two installed Debian kernels in a fake /boot and /lib/modules."""
    boot, mods = tmp_path / "boot", tmp_path / "lib-modules"
    for rel in ("6.1.0-9-amd64", "6.1.0-10-amd64"):
        boot.mkdir(exist_ok=True)
        (boot / f"vmlinuz-{rel}").write_bytes(b"not a kernel")
        # root-path drivers built in: no initramfs needed
        (boot / f"config-{rel}").write_text("".join(
            f"CONFIG_{s}=y\n" for s in ("VIRTIO_PCI", "VIRTIO_BLK", "EXT4_FS",
                                        "DEVTMPFS")) + "CONFIG_NET_9P=m\n"
            "CONFIG_NET_9P_VIRTIO=m\nCONFIG_9P_FS=m\n")
        (mods / rel / "kernel").mkdir(parents=True)
        (mods / rel / "modules.dep").write_text("")
    monkeypatch.setattr(artifact_mod, "distro_kernel", functools.partial(
        artifact_mod.distro_kernel, boot=boot, modules_root=mods))
    return boot


def test_boot_kernel_distro_release_boots_that_release(tmp_path, lab_env, distros, capsys):
    assert main(["boot", "--kernel", "distro:6.1.0-9-amd64", "--dry-run"]) == 0
    argv = shlex.split(capsys.readouterr().out)
    assert opt(argv, "-kernel") == str(distros / "vmlinuz-6.1.0-9-amd64")
    assert opt(argv, "-name") == "lab-6.1.0-9-amd64"
    # the distro kernel's modules go in as a read-only disk
    assert "readonly=on" in next(a for a in argv if "modules.ext4" in a)
    assert "-initrd" not in argv                # its root drivers are built in
    # plain `distro` is the newest
    assert main(["boot", "--kernel", "distro", "--dry-run"]) == 0
    assert "vmlinuz-6.1.0-10-amd64" in capsys.readouterr().out


def test_boot_kernel_distro_release_not_installed_names_the_installed(tmp_path, lab_env,
                                                                      distros, capsys):
    assert main(["boot", "--kernel", "distro:5.10.0-1-amd64", "--dry-run"]) == 3
    err = capsys.readouterr().err
    assert "distro kernel 5.10.0-1-amd64 is not installed" in err
    assert "6.1.0-10-amd64, 6.1.0-9-amd64" in err


@pytest.mark.parametrize("args, message", [
    (["--kernel", "/nonexistent", "--dry-run"],
     "/nonexistent does not exist; valid: a built kernel tree"),
    (["--share", "/nonexistent", "--dry-run"], "field '--share': /nonexistent does not exist"),
    (["--share", "/root", "--dry-run"], "would hide the guest's /root/.ssh"),
    (["--share", "/", "--dry-run"], "/ cannot be shared"),
    ([], "give --shell or -- CMD"),
    (["--timeout", "0", "--dry-run"], "--timeout"),
    (["--cpus", "0", "--dry-run"], "--cpus"),
])
def test_boot_bad_input(tmp_path, lab_env, capsys, args, message):
    assert main(["boot", *args]) == 3
    assert message in capsys.readouterr().err


def test_boot_a_tree_in_place_with_the_current_directory_shared(tmp_path, lab_env, capsys,
                                                               monkeypatch):
    """`make && lab boot --kernel .`: the tree's bzImage, its modules copied
    into lab's cache (the tree untouched), the current directory a 9p share."""
    from .test_kernel_tree import make_tree, snapshot
    tree = make_tree(tmp_path / "linux")
    before = snapshot(tree)
    monkeypatch.chdir(tree)
    assert main(["boot", "--kernel", ".", "--dry-run"]) == 0
    argv = shlex.split(capsys.readouterr().out)
    assert opt(argv, "-kernel") == str(tree / "arch/x86/boot/bzImage")
    assert opt(argv, "-name") == "lab-6.1.0-dev"
    mods = next(a for a in argv if "modules.ext4" in a)
    assert "readonly=on" in mods and str(lab_env.parent.parent) in mods   # lab's cache
    assert opt(argv, "-fsdev").startswith(f"local,id=fs0,path={tree},")
    assert "virtio-9p-pci,fsdev=fs0,mount_tag=labshare0" in argv
    assert snapshot(tree) == before
    # --share DIR, --no-share
    other = tmp_path / "work"
    other.mkdir()
    assert main(["boot", "--kernel", str(tree), "--share", str(other), "--dry-run"]) == 0
    assert f"path={other}," in opt(shlex.split(capsys.readouterr().out), "-fsdev")
    assert main(["boot", "--kernel", str(tree), "--no-share", "--dry-run"]) == 0
    assert "-fsdev" not in shlex.split(capsys.readouterr().out)


def test_boot_a_bzimage_alone_says_it_has_no_modules(tmp_path, lab_env, capsys):
    from .test_kernel_tree import bzimage
    img = tmp_path / "bzImage"
    img.write_bytes(bzimage("6.3.0-mine"))
    assert main(["boot", "--kernel", str(img), "--no-share", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert opt(shlex.split(out), "-kernel") == str(img) and "labmods" not in out
    assert "booting 6.3.0-mine without modules" in err


def test_boot_a_tree_whose_config_cannot_boot_names_the_options(tmp_path, lab_env, capsys):
    from .test_kernel_tree import GOOD_CONFIG, make_tree
    tree = make_tree(tmp_path / "linux", config=GOOD_CONFIG.replace("CONFIG_9P_FS=m\n", "")
                     .replace("CONFIG_VIRTIO_NET=y\n", ""))
    assert main(["boot", "--kernel", str(tree), "--share", str(tmp_path), "--dry-run"]) == 3
    err = capsys.readouterr().err
    assert f"field '--kernel': {tree}/.config lacks" in err
    assert "CONFIG_VIRTIO_NET" in err and "CONFIG_9P_FS" in err and "--no-share" in err
    assert main(["boot", "--kernel", str(tree), "--no-share", "--dry-run"]) == 3
    err = capsys.readouterr().err
    assert "CONFIG_VIRTIO_NET" in err and "9P" not in err
    # a tree not built
    (tree / "arch/x86/boot/bzImage").unlink()
    assert main(["boot", "--kernel", str(tree), "--dry-run"]) == 3
    assert f"{tree} is a kernel tree without arch/x86/boot/bzImage" in capsys.readouterr().err


def test_boot_share_of_a_distro_kernel_without_9p_is_refused(tmp_path, lab_env, distros,
                                                             capsys):
    cfg = distros / "config-6.1.0-10-amd64"
    cfg.write_text(cfg.read_text().replace("CONFIG_9P_FS=m\n", ""))
    assert main(["boot", "--share", str(tmp_path), "--dry-run"]) == 3
    assert "lacks CONFIG_9P_FS: --share mounts" in capsys.readouterr().err
    assert main(["boot", "--no-share", "--dry-run"]) == 0


def test_which_directories_a_share_may_not_be():
    from lab.cli.core import share_problem
    P = __import__("pathlib").Path
    assert share_problem(P("/home/dev/linux")) is None
    assert share_problem(P("/usr/src/linux")) is None       # inside the system: fine
    assert share_problem(P("/root/linux")) is None
    assert "whole system" in share_problem(P("/"))
    assert "/root/.ssh" in share_problem(P("/root"))
    assert "/usr" in share_problem(P("/usr"))
    assert "/proc" in share_problem(P("/proc/self"))


def test_boot_does_not_share_a_current_directory_it_cannot(tmp_path, lab_env, distros, capsys,
                                                          monkeypatch):
    monkeypatch.chdir("/")
    assert main(["boot", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "-fsdev" not in out and "not sharing the current directory /" in err


# --- lab image build ------------------------------------------------------------

def test_image_build_finds_a_cached_image(lab_env, capsys):
    assert main(["image", "build", "debian-bookworm"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(lab_env)
    assert "[lab] cached in" in err


def test_image_build_force_rebuilds_into_the_cache(lab_env, monkeypatch, capsys):
    """--force builds even when cached (mmdebstrap stands in here), and the
    new image replaces the old one under the same key, private to its owner."""
    built = []

    def fake_build(recipe, work, log):
        out = work / "out"
        out.mkdir(mode=0o700)
        (out / "manifest.json").write_text(json.dumps({"name": recipe.name, "key": recipe.key,
                                                       "fresh": True}))
        (out / "ssh_host_ed25519_key.pub").write_text("ssh-ed25519 BBBB lab-guest")
        built.append(recipe.name)
    monkeypatch.setattr(image_build, "_build", fake_build)
    monkeypatch.setattr(image_build.os, "geteuid", lambda: 0)
    assert main(["image", "build", "debian-bookworm", "--force"]) == 0
    out, err = capsys.readouterr()
    assert built == ["debian-bookworm"] and out.strip() == str(lab_env)
    assert "[lab] built in" in err
    assert json.loads((lab_env / "manifest.json").read_text())["fresh"] is True
    assert stat.S_IMODE(lab_env.stat().st_mode) == 0o700


def test_image_build_needs_root_and_says_so(lab_env, monkeypatch, capsys):
    monkeypatch.setattr(image_build.os, "geteuid", lambda: 1000)
    assert main(["image", "build", "debian-bookworm", "--force"]) == 2
    assert "building an image needs root" in capsys.readouterr().err


def test_image_build_of_an_unknown_recipe_is_bad_input(lab_env, capsys):
    assert main(["image", "build", "no-such-image"]) == 3
    assert "no-such-image" in capsys.readouterr().err


# --- lab doctor -------------------------------------------------------------------

@pytest.fixture
def host(monkeypatch, tmp_path):
    """A host doctor looks at: which binaries exist, the distro kernel, KVM."""
    from lab import doctor
    from lab.proc import Result
    from lab.vm import accel
    have = {b for b, _, _ in doctor.CHECKS}
    monkeypatch.setattr(doctor.shutil, "which",
                        lambda b: f"/usr/bin/{b}" if b in have else None)
    monkeypatch.setattr(doctor.proc, "run", lambda argv, **kw: Result(
        tuple(argv), 0, "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)\n", "", 0))
    kernel = make_artifact(tmp_path / "k", "6.1.0-57-amd64")
    monkeypatch.setattr(artifact_mod, "distro_kernel",
                        lambda release=None: artifact_mod.KernelArtifact.from_dir(kernel))
    monkeypatch.setattr(accel, "choose", lambda image: accel.AccelChoice(
        "tcg", "KVM guest did not reach the kernel in 10s"))
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    return have


def test_doctor_on_a_complete_host(host, capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "ok  qemu-system-x86_64" in out and "MISSING" not in out
    assert "qemu: QEMU emulator version 7.2.19" in out
    assert "distro kernel        6.1.0-57-amd64" in out
    assert "accelerator          tcg: KVM guest did not reach the kernel in 10s" in out
    assert "free disk" in out and "install:" not in out


def test_doctor_names_what_to_install(host, monkeypatch, capsys):
    from lab.errors import UserError
    host -= {"qemu-system-x86_64", "mmdebstrap", "ccache"}

    def no_kernel(release=None):
        raise UserError("no Debian distro kernel is installed in /boot")
    monkeypatch.setattr(artifact_mod, "distro_kernel", no_kernel)
    assert main(["doctor"]) == 2
    out = capsys.readouterr().out
    assert "MISSING qemu-system-x86_64" in out and "apt-get install qemu-system-x86" in out
    assert "MISSING distro kernel: no Debian distro kernel" in out
    assert "qemu:" not in out
    # ccache is optional: listed, but not in what must be installed
    assert out.strip().splitlines()[-1] == \
        "install: apt-get install linux-image-amd64 mmdebstrap qemu-system-x86"


def test_doctor_warns_of_low_disk_and_of_not_being_root(host, monkeypatch, capsys):
    from lab import doctor

    class Full:
        f_bavail, f_frsize = 1024, 4096       # 4 MiB
    monkeypatch.setattr(doctor.os, "statvfs", lambda p: Full())
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "LOW free disk           0.0 GiB" in out
    assert "note: building images needs root" in out


# --- the exit-code contract ---------------------------------------------------------

def test_errors_map_to_exit_codes(monkeypatch, capsys):
    from lab.cli import core
    from lab.errors import InfraError, UserError

    def raising(exc):
        def cmd(args):
            raise exc
        return cmd
    for exc, code, text in ((UserError("bad thing", field="x"), 3, "lab: bad input:"),
                            (InfraError("qemu broke"), 2, "lab: error: qemu broke"),
                            (KeyboardInterrupt(), 130, "lab: interrupted"),
                            (OSError(28, "No space left on device", "/r/x"), 2,
                             "lab: error: /r/x: No space left on device")):
        monkeypatch.setattr(core, "cmd_doctor", raising(exc))
        assert main(["doctor"]) == code
        assert text in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 3
