"""A run directory whose files are torn or garbage: what can be repaired from the other files
is, what was lost is said, and nothing is ever appended to a torn line (issue 29, cases 1, 11
and 12). Runs are trained by the real command line on the bundled sample."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tui
from tui.core.runs.catalog import summarise
from tui.core.runs.layout import METRICS_CSV, RUN_JSON
from tui.core.runs.resume import resume

SAMPLE = Path(tui.__file__).parent / "sample" / "mnist_sample.npz"
TINY_FLAGS = [
    *("--data", str(SAMPLE), "--train-size", "600", "--validation-split", "0.1"),
    *("--conv-filters", "8", "--dense-units", "16", "--batch-size", "64"),
]


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "XDG_CACHE_HOME": str(cwd / "cache")},
        timeout=300,
    )


def train(cwd: Path, runs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(cwd, "train", *TINY_FLAGS, "--runs-dir", str(runs), *args)


def resume_cli(cwd: Path, run: Path, epochs: int) -> subprocess.CompletedProcess[str]:
    return cli(cwd, "train", "--data", str(SAMPLE), "--resume", str(run), "--epochs", str(epochs))


def epochs_in(run: Path) -> list[str]:
    with open(run / METRICS_CSV, newline="") as f:
        return [row["epoch"] for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def three_epochs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of three tiny epochs, recorded by `mnist-tui train`."""
    folder = tmp_path_factory.mktemp("trained")
    done = train(folder, folder / "runs", "--epochs", "3")
    assert done.returncode == 0, done.stderr
    [run] = (folder / "runs").iterdir()
    return run


@pytest.fixture
def run_copy(three_epochs: Path, tmp_path: Path) -> Path:
    target = tmp_path / "runs" / three_epochs.name
    shutil.copytree(three_epochs, target)
    return target


def test_a_torn_last_row_is_dropped_and_never_glued_to_the_next(run_copy: Path) -> None:
    # Case 1: `truncate -s -37 metrics.csv`; the resume appended the next row onto the torn one.
    metrics = run_copy / METRICS_CSV
    os.truncate(metrics, metrics.stat().st_size - 37)
    assert "cut short" in (summarise(run_copy).problem or "")

    resumed = resume(run_copy)
    assert resumed.epochs_done == 3
    assert [e.epoch for e in resumed.history] == [1, 2]
    said = " ".join(resumed.repairs)
    assert "last row was cut short" in said and "no row for epoch 3" in said
    assert metrics.read_text().endswith("\n")  # the next row starts a line of its own
    assert epochs_in(run_copy) == ["0", "1"]


def test_garbage_rows_are_dropped_and_said(run_copy: Path) -> None:
    metrics = run_copy / METRICS_CSV
    lines = metrics.read_text().splitlines(keepends=True)
    lines[2] = "\x00\x00garbage, not numbers\n"
    metrics.write_text("".join(lines))
    assert "line 3 held no row of numbers" in (summarise(run_copy).problem or "")

    resumed = resume(run_copy)
    assert [e.epoch for e in resumed.history] == [1, 3]
    assert any("line 3 held no row of numbers" in line for line in resumed.repairs)
    assert epochs_in(run_copy) == ["0", "2"]


def test_an_unreadable_metrics_file_is_kept_aside_and_training_goes_on(run_copy: Path) -> None:
    (run_copy / METRICS_CSV).write_bytes(b"\xff\xfe not a csv at all")
    resumed = resume(run_copy)
    assert resumed.epochs_done == 3 and resumed.history == []
    assert any("metrics.csv.damaged" in line for line in resumed.repairs)
    assert (run_copy / "metrics.csv.damaged").exists()


def test_a_garbage_run_json_is_rebuilt_from_the_other_files(run_copy: Path) -> None:
    # Case 12: run.json full of garbage beside an intact model, metrics and hparams.
    original = json.loads((run_copy / RUN_JSON).read_text())
    (run_copy / RUN_JSON).write_bytes(b"{\x00garbage")
    listed = summarise(run_copy).problem or ""
    assert "run.json is unreadable" in listed and "rebuilds it" in listed

    resumed = resume(run_copy)
    assert resumed.epochs_done == 3
    assert [e.epoch for e in resumed.history] == [1, 2, 3]
    said = " ".join(resumed.repairs)
    assert "rebuilt from hparams.toml" in said and "data it trained on" in said
    rebuilt = json.loads((run_copy / RUN_JSON).read_text())
    assert rebuilt["saved"]["epoch"] == 3
    assert rebuilt["saved"]["iterations"] == original["saved"]["iterations"]
    assert rebuilt["best"]["epoch"] == original["best"]["epoch"]
    assert (run_copy / "run.json.damaged").read_bytes() == b"{\x00garbage"
    assert summarise(run_copy).problem is None


@pytest.mark.slow
def test_a_resumed_torn_run_trains_on_with_every_row_whole(run_copy: Path, tmp_path: Path) -> None:
    """Case 1 end to end: the command line says what was lost and the new row is its own."""
    metrics = run_copy / METRICS_CSV
    os.truncate(metrics, metrics.stat().st_size - 37)
    done = resume_cli(tmp_path, run_copy, 4)
    assert done.returncode == 0, done.stderr
    assert "cut short" in done.stdout
    assert epochs_in(run_copy) == ["0", "1", "3"]
    assert "metrics.csv has 3 of 4 epochs" in (summarise(run_copy).problem or "")


@contextlib.contextmanager
def small_disk(where: Path, free: int) -> Iterator[Path]:
    """A real tmpfs mounted at `where`, filled until `free` bytes are left."""
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        stats = os.statvfs(where)
        with open(where / "filler", "wb") as f:
            f.write(b"\0" * (stats.f_bavail * stats.f_frsize - free))
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.mark.slow
def test_a_run_recorded_on_a_full_disk_says_what_was_not_saved(tmp_path: Path) -> None:
    # Case 11: a full disk stops the model's saves but not the small metrics rows; afterwards
    # the runs list said "epochs 0" with no word, and a resume started from 0 silently.
    with small_disk(tmp_path / "disk", free=48 * 1024) as disk:
        done = train(tmp_path, disk / "runs", "--epochs", "3")
        assert done.returncode == 0, done.stderr
        assert "stopped recording" in done.stdout + done.stderr
        [run] = (disk / "runs").iterdir()
        listed = summarise(run)
        assert listed.epochs_done == 0
        assert "3 epochs were trained but only 0 saved" in (listed.problem or "")

        (disk / "filler").unlink()  # space freed, as a user would before resuming
        again = resume_cli(tmp_path, run, 1)
        assert again.returncode == 0, again.stderr
        assert "epochs 1-3 were trained but their model was never saved" in again.stdout
        assert epochs_in(run) == ["0"]
