"""lab's data (recipes, fragments, jobs) is found at lab/data however lab was
installed, and the user's directories extend it: their files are found by
name too, before lab's."""

from pathlib import Path

import pytest

from lab.errors import UserError
from lab.image.recipe import find_recipe
from lab.job import load_job
from lab.kernel import config as kc
from lab.paths import DATA_DIR, FRAGMENTS, IMAGES, JOBS, data_path, find_job

REPO = Path(__file__).resolve().parents[2]
SMOKE = DATA_DIR / "jobs" / "smoke.yaml"


def test_in_a_checkout_lab_data_is_the_top_level_folders():
    for folder in ("images", "kernels", "jobs"):
        assert (DATA_DIR / folder).resolve() == REPO / folder


def test_lab_data_is_found_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_recipe("debian-bookworm") == DATA_DIR / "images" / "debian-bookworm.yaml"
    assert kc.load_fragment("lab").path == DATA_DIR / "kernels" / "fragments" / "lab.config"
    assert find_job("jobs/smoke.yaml") == find_job("smoke") == find_job("smoke.yaml") == SMOKE
    assert load_job("jobs/smoke.yaml").path == SMOKE
    assert {"gup", "nightly", "smoke"} <= set(JOBS.names())


def test_a_path_that_exists_wins_over_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "smoke.yaml").write_text(SMOKE.read_text())
    assert find_job("jobs/smoke.yaml") == Path("jobs/smoke.yaml")
    assert find_job("smoke") == SMOKE
    assert find_job("/nonexistent/smoke.yaml") == Path("/nonexistent/smoke.yaml")


def test_user_directories_extend_lab_data_and_shadow_its_names(tmp_path, monkeypatch):
    mine, other = tmp_path / "mine", tmp_path / "other"
    for d in (mine, other):
        d.mkdir()
    (mine / "lab.config").write_text("CONFIG_MINE=y\n")
    (other / "extra.config").write_text("CONFIG_EXTRA=y\n")
    monkeypatch.setenv("LAB_FRAGMENTS_DIR", f"{mine}:{other}")
    assert FRAGMENTS.dirs() == [mine, other, DATA_DIR / "kernels" / "fragments"]
    assert kc.load_fragment("lab").path == mine / "lab.config"        # the user's first
    extra = kc.load_fragment("extra")
    assert (extra.name, extra.assignments[0].symbol) == ("extra", "EXTRA")
    assert kc.available()[:3] == ["lab", "extra", "debug"]
    assert "debug" in kc.available() and kc.available().count("lab") == 1

    (mine / "tiny.yaml").write_text("name: tiny\n")
    monkeypatch.setenv("LAB_IMAGES_DIR", str(mine))
    assert find_recipe("tiny") == mine / "tiny.yaml"
    assert find_recipe("debian-bookworm") == DATA_DIR / "images" / "debian-bookworm.yaml"
    assert IMAGES.names() == ["tiny", "debian-bookworm"]

    (other / "smoke.yaml").write_text(SMOKE.read_text().replace("name: smoke", "name: mysmoke"))
    monkeypatch.setenv("LAB_JOBS_DIR", str(other))
    monkeypatch.chdir(tmp_path)
    assert load_job("smoke").name == "mysmoke"


def test_unknown_names_say_what_is_valid_and_where_it_was_looked_up(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAB_IMAGES_DIR", str(tmp_path))
    with pytest.raises(UserError) as e:
        find_recipe("nope")
    assert "valid: debian-bookworm" in str(e.value) and f"$LAB_IMAGES_DIR ({tmp_path})" in str(e.value)
    with pytest.raises(UserError, match=r"valid: debug, kasan, lab.*\$LAB_FRAGMENTS_DIR \(unset\)"):
        kc.load_fragment("nope")
    with pytest.raises(UserError, match="no such job file; valid: .* gup, nightly, smoke"):
        load_job("nope.yaml")


def test_lab_files_are_shown_relative_to_its_data_however_reached():
    via_link = DATA_DIR / "kernels" / "fragments" / "lab.config"
    assert data_path(via_link) == data_path(REPO / "kernels" / "fragments" / "lab.config") \
        == "kernels/fragments/lab.config"
    assert data_path(REPO / "pyproject.toml") is None
    assert kc.display_path(via_link) == "kernels/fragments/lab.config"
