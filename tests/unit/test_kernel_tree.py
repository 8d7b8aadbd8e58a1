"""A kernel built in the user's own tree (`lab boot --kernel PATH`): what
the path is, its release, its configuration checked, its modules installed
into lab's cache without a write into the tree."""

import struct

import pytest

from lab.errors import UserError
from lab.kernel import tree as ktree

from .conftest import need

GOOD_CONFIG = """\
CONFIG_MODULES=y
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_BLK=y
CONFIG_EXT4_FS=y
CONFIG_DEVTMPFS=y
CONFIG_VIRTIO_NET=y
CONFIG_UNIX=y
CONFIG_INET=y
CONFIG_NET_9P=m
CONFIG_NET_9P_VIRTIO=m
CONFIG_9P_FS=m
"""


def bzimage(release: str, size: int = 0x4000) -> bytes:
    """Enough of a bzImage for its header: 'HdrS' at 0x202, kernel_version
    at 0x20E pointing (minus 0x200) at the version string."""
    data = bytearray(size)
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x20E, 0x1000)
    text = f"{release} (dev@host) #3 SMP PREEMPT_DYNAMIC Mon Nov 30 2026".encode()
    data[0x1200:0x1200 + len(text)] = text
    return bytes(data)


def make_tree(root, release="6.1.0-dev", config=GOOD_CONFIG, modules=("fs/foo/foo.ko",)):
    (root / "arch/x86/boot").mkdir(parents=True)
    (root / "arch/x86/boot/bzImage").write_bytes(bzimage(release))
    (root / "include/config").mkdir(parents=True)
    (root / "include/config/kernel.release").write_text(release + "\n")
    (root / ".config").write_text(config)
    (root / "System.map").write_text("ffffffff81000000 T _text\n")
    (root / "modules.order").write_text("".join(m + "\n" for m in modules))
    (root / "modules.builtin").write_text("kernel/ext4.ko\n")
    for m in modules:
        (root / m).parent.mkdir(parents=True, exist_ok=True)
        (root / m).write_bytes(b"\x7fELF not really a module")
    return root


def snapshot(root):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_release_from_the_bzimage_header():
    assert ktree.bzimage_release(bzimage("6.1.192-gd3316cf4a8de")) == "6.1.192-gd3316cf4a8de"
    assert ktree.bzimage_release(b"\0" * 0x4000) is None      # no HdrS
    assert ktree.bzimage_release(b"short") is None
    no_pointer = bytearray(bzimage("x"))
    struct.pack_into("<H", no_pointer, 0x20E, 0)
    assert ktree.bzimage_release(bytes(no_pointer)) is None


def test_modules_order_lists_ko_or_o_files():
    assert ktree.module_paths("fs/a/a.ko\n\nnet/b.o\n") == ["fs/a/a.ko", "net/b.ko"]


def test_a_tree_is_detected_with_its_release(tmp_path):
    t = make_tree(tmp_path / "linux")
    tk = ktree.detect(t)
    assert (tk.tree, tk.image, tk.release) == (t, t / "arch/x86/boot/bzImage", "6.1.0-dev")
    assert tk.config == t / ".config"


def test_a_bzimage_alone(tmp_path):
    img = tmp_path / "bzImage"
    img.write_bytes(bzimage("6.2.0-rc1"))
    tk = ktree.detect(img)
    assert (tk.tree, tk.image, tk.release, tk.config) == (None, img, "6.2.0-rc1", None)
    logs = []
    art = ktree.tree_artifact(tk, share=True, log=logs.append)
    assert art.modules_dir is None and art.release == "6.2.0-rc1"
    assert "without modules" in logs[0]


@pytest.mark.parametrize("setup, words", [
    (lambda p: None, ["does not exist"]),
    (lambda p: p.mkdir(), ["without arch/x86/boot/bzImage", "make"]),
    (lambda p: (p.mkdir(), (p / ".config").write_text("")),
     ["a kernel tree without arch/x86/boot/bzImage"]),
    (lambda p: p.write_text("not a kernel"), ["is not a bzImage"]),
])
def test_bad_paths_name_the_path(tmp_path, setup, words):
    p = tmp_path / "thing"
    setup(p)
    with pytest.raises(UserError) as e:
        ktree.detect(p, field="--kernel")
    assert e.value.exit_code == 3 and e.value.field == "--kernel"
    assert str(p) in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_a_tree_rebuilt_halfway_is_refused(tmp_path):
    t = make_tree(tmp_path / "linux")
    (t / "include/config/kernel.release").write_text("6.1.0-newer\n")
    with pytest.raises(UserError, match="6.1.0-newer but .* is 6.1.0-dev.*run make"):
        ktree.detect(t)


def test_a_tree_without_config_asks_for_the_build_directory(tmp_path):
    t = make_tree(tmp_path / "linux")
    (t / ".config").unlink()
    with pytest.raises(UserError, match="no .config: give the build directory"):
        ktree.detect(t)


def test_config_check_names_every_missing_option():
    cfg = ktree.parse_config(GOOD_CONFIG)
    assert ktree.config_problems(cfg, has_modules=True, share=True) == []
    # modular root drivers need modules to load; a bzImage alone needs them built in
    cfg["VIRTIO_BLK"] = "m"
    assert ktree.config_problems(cfg, has_modules=True, share=False) == []
    [p] = ktree.config_problems(cfg, has_modules=False, share=False)
    assert p.symbols == ("VIRTIO_BLK",) and "built in" in p.why
    del cfg["NET_9P_VIRTIO"], cfg["9P_FS"], cfg["DEVTMPFS"]
    texts = [p.text() for p in ktree.config_problems(cfg, has_modules=True, share=True)]
    assert texts[0].startswith("CONFIG_DEVTMPFS ")
    assert texts[1].startswith("CONFIG_NET_9P_VIRTIO, CONFIG_9P_FS (") and "--no-share" in texts[1]
    assert len(ktree.config_problems(cfg, has_modules=True, share=False)) == 1


def test_a_config_without_what_the_boot_needs_is_bad_input(tmp_path):
    t = make_tree(tmp_path / "linux", config=GOOD_CONFIG.replace("CONFIG_9P_FS=m\n", "")
                  .replace("CONFIG_EXT4_FS=y\n", ""))
    with pytest.raises(UserError) as e:
        ktree.tree_artifact(ktree.detect(t), share=True)
    msg = str(e.value)
    assert e.value.exit_code == 3 and str(t / ".config") in msg
    assert "CONFIG_EXT4_FS" in msg and "CONFIG_9P_FS" in msg and "CONFIG_NET_9P=" not in msg
    # without --share, 9p is not needed
    with pytest.raises(UserError, match="CONFIG_EXT4_FS") as e:
        ktree.tree_artifact(ktree.detect(t), share=False)
    assert "9P" not in str(e.value)


def test_modules_are_installed_into_the_cache_not_the_tree(tmp_path, monkeypatch):
    need("depmod", "kmod")
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    t = make_tree(tmp_path / "linux", modules=("fs/foo/foo.ko", "net/bar/bar.ko"))
    before = snapshot(t)
    art = ktree.tree_artifact(ktree.detect(t), share=True)
    assert snapshot(t) == before
    m = art.modules_dir
    assert m.is_relative_to(tmp_path / "cache") and m.name == "6.1.0-dev"
    assert (m / "kernel/fs/foo/foo.ko").read_bytes() == (t / "fs/foo/foo.ko").read_bytes()
    assert (m / "modules.order").read_text() == "kernel/fs/foo/foo.ko\nkernel/net/bar/bar.ko\n"
    assert (m / "modules.builtin").read_text() == "kernel/kernel/ext4.ko\n"
    assert "kernel/net/bar/bar.ko:" in (m / "modules.dep").read_text()
    assert (art.origin, art.config, art.system_map) == (str(t), t / ".config", t / "System.map")
    # the same content: the same copy; a rebuilt module: a new one
    assert ktree.tree_artifact(ktree.detect(t), share=True).modules_dir == m
    (t / "net/bar/bar.ko").write_bytes(b"\x7fELF rebuilt, longer than before")
    again = ktree.tree_artifact(ktree.detect(t), share=True).modules_dir
    assert again != m and (again / "kernel/net/bar/bar.ko").read_bytes().endswith(b"before")


def test_the_modules_disk_key_follows_the_copy(tmp_path, monkeypatch):
    """lab/image/modules.py keys the guest's modules disk by modules.dep,
    which a rebuilt module leaves alone: the copy's stamp tells them apart."""
    from lab.image.modules import _key
    from lab.kernel.artifact import KernelArtifact
    a, b = tmp_path / "a", tmp_path / "b"
    for d, stamp in ((a, "1"), (b, "2")):
        d.mkdir()
        (d / "modules.dep").write_text("kernel/x.ko:\n")
        (d / "modules.lab-key").write_text(stamp)
    key = lambda d: _key(KernelArtifact(tmp_path / "bz", "6.1", d, "t"))  # noqa: E731
    assert key(a) != key(b)


def test_modules_listed_but_not_built(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    t = make_tree(tmp_path / "linux")
    (t / "fs/foo/foo.ko").unlink()
    with pytest.raises(UserError, match=r"not built \(fs/foo/foo.ko\): run `make modules`"):
        ktree.tree_artifact(ktree.detect(t), share=False)


def test_a_tree_without_modules(tmp_path):
    t = make_tree(tmp_path / "linux", modules=())
    logs = []
    art = ktree.tree_artifact(ktree.detect(t), share=False, log=logs.append)
    assert art.modules_dir is None and "has no modules" in logs[0]


def test_a_job_boots_a_tree_in_place(tmp_path, fake_lab, monkeypatch):
    """kernel: {tree: DIR} in a job: relative to the job file, checked when
    the job loads, booted by the runner with its modules."""
    import json
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    from lab.job import KernelKind, load_job
    from lab.runner import run_job
    need("depmod", "kmod")
    t = make_tree(tmp_path / "linux")
    job = tmp_path / "j.yaml"
    job.write_text("name: j\nkernel: {tree: linux}\nimage: debian-bookworm\n"
                   "workloads: [{shell: {command: 'true', case: one}}]\n")
    loaded = load_job(job)
    assert loaded.kernels[0].spec.kind is KernelKind.TREE
    assert loaded.kernels[0].spec.path == t
    assert run_job(loaded, tmp_path / "out", live=False) == 0
    cfg = fake_lab.machines[0].cfg
    assert cfg.kernel.image == t / "arch/x86/boot/bzImage" and cfg.shares == ()
    assert cfg.kernel.modules_dir.is_relative_to(tmp_path / "cache")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["suites"][0]["properties"]["kernel_origin"] == str(t)


@pytest.mark.parametrize("prepare, message", [
    (lambda t: None, "does not exist"),
    (lambda t: make_tree(t, config=GOOD_CONFIG.replace("CONFIG_EXT4_FS=y\n", "")),
     "CONFIG_EXT4_FS"),
])
def test_a_jobs_tree_that_cannot_boot_is_bad_input(tmp_path, fake_lab, prepare, message,
                                                   monkeypatch):
    monkeypatch.setenv("LAB_CACHE_DIR", str(tmp_path / "cache"))
    from lab.job import load_job
    from lab.runner import run_job
    prepare(tmp_path / "linux")
    job = tmp_path / "j.yaml"
    job.write_text("name: j\nkernel: {tree: linux}\nimage: debian-bookworm\n"
                   "workloads: [{shell: {command: 'true'}}]\n")
    with pytest.raises(UserError) as e:
        run_job(load_job(job), tmp_path / "out", live=False)
    assert e.value.file == str(job) and e.value.field in ("kernel.tree", "kernel")
    assert message in str(e.value)
    assert fake_lab.machines == []


def test_a_bzimage_alone_is_checked_against_a_config_beside_it(tmp_path):
    """/boot/vmlinuz-R with /boot/config-R (a distro kernel: root drivers are
    modules, which a bzImage alone cannot load), or a tree's own bzImage."""
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "vmlinuz-6.1.0-9-amd64").write_bytes(bzimage("6.1.0-9-amd64"))
    (boot / "config-6.1.0-9-amd64").write_text(GOOD_CONFIG.replace("VIRTIO_BLK=y",
                                                                   "VIRTIO_BLK=m"))
    tk = ktree.detect(boot / "vmlinuz-6.1.0-9-amd64")
    assert tk.config == boot / "config-6.1.0-9-amd64"
    with pytest.raises(UserError, match="CONFIG_VIRTIO_BLK .*built in .*no modules.*"
                                        "give --kernel distro:6.1.0-9-amd64"):
        ktree.tree_artifact(tk, share=False)
    t = make_tree(tmp_path / "linux", config=GOOD_CONFIG.replace("CONFIG_9P_FS=m\n", ""))
    tk = ktree.detect(t / "arch/x86/boot/bzImage")
    assert tk.tree is None and tk.config == t / ".config"
    with pytest.raises(UserError, match="CONFIG_9P_FS"):
        ktree.tree_artifact(tk, share=True)
    assert ktree.tree_artifact(tk, share=False).config == t / ".config"
