"""What `lab --help`, `lab run --help` and `lab boot --help` teach beyond the
options: the exit codes, where the job-file format is described, the
environment lab reads. Text only; the README says the same."""

from __future__ import annotations

import platform
import sys
import textwrap
from pathlib import Path

from .. import __version__
from ..errors import EXIT_BAD_INPUT, EXIT_INFRA, EXIT_OK, EXIT_TESTS_FAILED
from ..paths import IMAGES, JOBS, PACKAGE_DIR

EXIT_INTERRUPTED = 130
WIDTH = 79

# Every environment variable lab reads (tests/unit/test_cli_help.py holds the
# code and the README to this list).
ENVIRONMENT = (
    ("LAB_CACHE_DIR", "images, kernels, build directories, compiled helpers "
                      "(default $XDG_CACHE_HOME/lab, else ~/.cache/lab)"),
    ("LAB_RUNS_DIR", "where a run without -o goes, and where `lab report` looks "
                     "(default ./runs)"),
    ("LAB_HISTORY", "the history of runs `lab report` compares with "
                    "(default $XDG_DATA_HOME/lab/history.sqlite, else ~/.local/share/lab/)"),
    ("LAB_IMAGES_DIR", "directories of image recipes (':'-separated), searched before lab's"),
    ("LAB_FRAGMENTS_DIR", "directories of config fragments, searched before lab's"),
    ("LAB_JOBS_DIR", "directories of job files, searched before lab's (`lab run NAME`)"),
    ("LAB_ACCEL", "kvm or tcg: use it without probing KVM (default: probe, fall back to tcg)"),
    ("XDG_CACHE_HOME", "see LAB_CACHE_DIR"),
    ("XDG_DATA_HOME", "see LAB_HISTORY"),
    ("CCACHE_DIR", "ccache of kernel builds (default ~/.cache/ccache)"),
)


def version() -> str:
    return f"lab {__version__} from {PACKAGE_DIR} (python {platform.python_version()})"


def para(text: str) -> str:
    """A paragraph wrapped for a terminal (the help formatter keeps it)."""
    return textwrap.fill(text, WIDTH, break_on_hyphens=False, break_long_words=False)


def _table(rows) -> str:
    width = max(len(k) for k, _ in rows) + 2
    return "\n".join(textwrap.fill(v, WIDTH, initial_indent=f"  {k:<{width}}",
                                    subsequent_indent=" " * (width + 2),
                                    break_on_hyphens=False) for k, v in rows)


def exit_codes(tests: str) -> str:
    return "exit status:\n" + _table([
        (str(EXIT_OK), "every testcase passed (or was skipped with a reason)"),
        (str(EXIT_TESTS_FAILED), f"a test failed: {tests}"),
        (str(EXIT_INFRA), "infrastructure error: qemu or mmdebstrap missing, the guest never "
                          "answered, qemu killed, the results filesystem full"),
        (str(EXIT_BAD_INPUT), "bad input: the message names the file, line and field and "
                              "what is valid"),
        (str(EXIT_INTERRUPTED), "interrupted (Ctrl-C, SIGTERM): qemu stopped, finished "
                                "results kept"),
    ])


def job_format() -> str:
    """Where a job file's format is described, and lab's own jobs."""
    job_py = PACKAGE_DIR / "job.py"
    return para(f"Job files are YAML. The format (keys, kernels, matrices, workloads) is the "
            f"docstring of lab/job.py: {job_py}, or `{Path(sys.executable)} -m pydoc lab.job`; "
            f"the README's \"Matrices\" and \"Latency\" sections explain them. lab's own jobs "
            f"({', '.join(JOBS.names())}) are examples, in {JOBS.builtin}; a job is given by "
            f"path or by name (`lab run smoke`), names looked up in $LAB_JOBS_DIR first.")


def main_epilog() -> str:
    return (para("`lab COMMAND --help` says more. Exit status: 0 passed, 1 a test failed, "
                 "2 infrastructure error, 3 bad input, 130 interrupted.") + "\n\n"
            "environment:\n" + _table(ENVIRONMENT) + f"\n\n{version()}")


def run_epilog() -> str:
    return job_format() + "\n\n" + exit_codes(
        "a workload, a kernel finding, a pin leak, a deadlock, a stall, a regression "
        "against the baseline cell, a patch that does not apply, a build")


def boot_epilog() -> str:
    return (para("--kernel PATH boots a kernel built in your tree, in place: `make && lab boot "
                 "--kernel . --shell`. Its release is read from include/config/kernel.release "
                 "(or the bzImage's header), its .config is checked for what the boot needs "
                 "(virtio-pci, virtio-blk, ext4, devtmpfs, virtio-net; 9p with --share) and "
                 "its modules are copied by modules.order into lab's cache (nothing is "
                 "written into the tree). The current directory (or --share DIR) is mounted "
                 "read-write in the guest at the same path over virtio-9p, and -- CMD runs "
                 "there. On a terminal the boot's stages show on one status line; otherwise "
                 "one line per stage.") + "\n\n"
            + para(f"--image NAME is a recipe in $LAB_IMAGES_DIR or lab's {IMAGES.builtin} "
                 f"({', '.join(IMAGES.names())}); to run lab's workloads and checks on a "
                 "kernel, write a job for `lab run`.") + "\n\n" + job_format() + "\n\n"
            + para("exit status: with -- CMD, the command's own; with --shell, the shell's; "
                   "lab's own:") + "\n" + _table([
                (str(EXIT_OK), "--dry-run printed the qemu command line"),
                (str(EXIT_INFRA), "infrastructure error: qemu missing, the guest never answered"),
                (str(EXIT_BAD_INPUT), "bad input: an unknown --kernel or --image, a --kernel "
                                      "path that is not a built tree or a bzImage, a .config "
                                      "lacking what the boot needs (the CONFIG_ options "
                                      "named), a --share that is not a directory, sizes "
                                      "beyond the host"),
                (str(EXIT_INTERRUPTED), "interrupted (Ctrl-C, SIGTERM): qemu stopped"),
            ]) + "\n  (lab prefixes its own errors with `lab:` on stderr)")
