"""Help that teaches: `lab --version`; `lab --help` lists every environment
variable lab reads (and so does the README); `lab run --help` and `lab boot
--help` give the exit codes and where the job-file format is described; one
spelling of the results option."""

import argparse
import re
from pathlib import Path

import pytest

import lab
from lab.cli import build_parser, main
from lab.cli.helptext import ENVIRONMENT

REPO = Path(__file__).resolve().parents[2]


def help_of(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def test_version_names_the_version_and_where_lab_runs_from(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith(
        f"lab {lab.__version__} from {Path(lab.__file__).parent} (python ")


def test_every_environment_variable_lab_reads_is_in_lab_help_and_the_readme(capsys):
    read = set()
    for p in (REPO / "lab").rglob("*.py"):
        read |= set(re.findall(r'"(LAB_[A-Z0-9_]+|XDG_[A-Z_]+)"', p.read_text()))
    listed = {name for name, _ in ENVIRONMENT}
    assert read <= listed, f"not in lab.cli.helptext.ENVIRONMENT: {read - listed}"
    text = help_of(capsys)
    readme = (REPO / "README.md").read_text()
    for name in listed:
        assert re.search(rf"^  {name} ", text, re.M), name
        assert f"`{name}`" in readme, f"README does not list {name}"


@pytest.mark.parametrize("command", ["run", "boot"])
def test_run_and_boot_help_give_the_exit_codes_and_the_job_format(capsys, command):
    text = help_of(capsys, command)
    assert "exit status" in text
    for code in ("0", "2", "3", "130"):
        assert re.search(rf"^  {code} ", text, re.M), code
    job_py = Path(lab.__file__).parent / "job.py"
    assert str(job_py) in " ".join(text.split()) and job_py.is_file()
    assert "-m pydoc lab.job" in " ".join(text.split())
    assert "Job files are YAML" in text


def test_one_spelling_of_the_results_directory():
    """Every subcommand that writes a results directory takes -o/--output;
    test-patch's old --out still works, hidden."""
    spellings = {}

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif action.dest == "output" and action.help is not argparse.SUPPRESS:
                spellings[path] = action.option_strings
    walk(build_parser(), "lab")
    assert {"lab run", "lab boot", "lab test-patch"} <= set(spellings)
    assert all(s == ["-o", "--output"] for s in spellings.values()), spellings
    args = build_parser().parse_args(["test-patch", "--linux-source", "--series", "s",
                                      "--out", "old"])
    assert args.output == "old"
