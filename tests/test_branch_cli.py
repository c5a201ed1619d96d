"""`mnist-tui train --from`, `compare` and `note` as real processes: a branch trains, survives
kill -9 and its parent's deletion; bad input is one sentence, exit 2, and writes nothing."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tui.core.data.mnist import MnistData
from tui.core.runs.catalog import summarise
from tui.core.runs.checkpoints import checkpoint_path

TINY_FLAGS = [
    *("--train-size", "1000", "--batch-size", "64", "--conv-filters", "8"),
    *("--dense-units", "16", "--dropout", "0"),
]


def write_npz(data: MnistData, target: Path, train: int) -> Path:
    """`data` as a Keras-layout mnist.npz of `train` training images."""
    pixels = lambda x: np.rint(x[..., 0] * 255).astype(np.uint8)  # noqa: E731
    np.savez(
        target,
        x_train=pixels(data.x_train[:train]),
        y_train=data.y_train[:train],
        x_test=pixels(data.x_test),
        y_test=data.y_test,
    )
    return target


def mnist_tui(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
        timeout=300,
    )


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory, mnist_small: MnistData) -> Path:
    """A 4-epoch run trained by `mnist-tui train` on an npz of 2,000 real digits."""
    home = tmp_path_factory.mktemp("parent")
    npz = write_npz(mnist_small, home / "mnist.npz", 2000)
    done = mnist_tui(
        "train", "--data", str(npz), *TINY_FLAGS, "--epochs", "4", "--runs-dir", "runs", cwd=home
    )
    assert done.returncode == 0, done.stderr
    [run] = (home / "runs").iterdir()
    return run


def one_sentence(done: subprocess.CompletedProcess[str], pattern: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert re.search(pattern, done.stderr), done.stderr


def test_a_branch_trains_and_compare_lists_exactly_what_changed(
    parent: Path, tmp_path: Path
) -> None:
    runs = parent.parent
    before = set(runs.iterdir())
    done = mnist_tui(
        "train", "--from", f"{parent.name}@2", "--learning-rate", "0.01",
        "--runs-dir", str(runs), "--out", str(tmp_path / "b.keras"), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [branch] = set(runs.iterdir()) - before
    assert f"Branch {branch.name} of {parent.name} at epoch 2: learning_rate" in done.stdout
    assert "Resuming" in done.stdout and "after epoch 2" in done.stdout
    summary = summarise(branch)
    assert (summary.epochs_done, summary.parent_epoch) == (4, 2)
    assert [c.epoch for c in summary.checkpoints] == [1, 2, 3, 4]

    shown = mnist_tui("compare", str(parent), str(branch), "--format", "csv", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    header, *rows = list(csv.reader(io.StringIO(shown.stdout)))
    assert header == [
        "run", "branch of", "learning_rate", "best val acc", "test acc", "epochs", "time"
    ]  # fmt: skip
    assert [row[:3] for row in rows] == [
        [parent.name, "", "0.001"],
        [branch.name, f"{parent.name}@2", "0.01"],
    ]
    markdown = mnist_tui(
        "compare", parent.name, branch.name, "--runs-dir", str(runs), "--format", "markdown",
        cwd=tmp_path,
    )  # fmt: skip
    assert markdown.stdout.splitlines()[1] == "| --- | --- | --- | --- | --- | --- | --- |"

    noted = mnist_tui(
        "note", str(branch), "lower rate", "--tag", "lr", "--tag", "try", cwd=tmp_path
    )
    assert noted.returncode == 0, noted.stderr
    summary = summarise(branch)
    assert (summary.note, summary.tags) == ("lower rate", ("lr", "try"))


def test_bad_branches_are_one_sentence_and_write_nothing(
    parent: Path, tmp_path: Path, mnist_small: MnistData
) -> None:
    copy = tmp_path / "runs" / parent.name
    shutil.copytree(parent, copy)
    checkpoint_path(copy, 3).unlink()
    checkpoint_path(copy, 2).write_bytes(b"torn")
    runs = str(tmp_path / "runs")

    def branch(
        spec: str, *flags: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return mnist_tui("train", "--from", spec, *flags, "--runs-dir", runs, cwd=tmp_path, env=env)

    one_sentence(branch(f"{copy}@1", "--dropout", "0.5"), "--dropout cannot change in a branch")
    one_sentence(branch(f"{copy}@1", "--conv-filters", "4"), "--conv-filters cannot change")
    one_sentence(branch(f"{copy}@9"), "epochs 1 to 4; epoch 9 is not one of them")
    one_sentence(branch(f"{copy}@3"), "kept no checkpoint of epoch 3")
    one_sentence(branch(f"{copy}@2"), "checkpoint of epoch 2 is damaged")
    one_sentence(branch(f"{copy}@two"), "'two' is not an epoch number")
    one_sentence(branch("no-such-run"), "no run 'no-such-run'")
    one_sentence(branch(str(copy), "--resume", str(copy)), "--resume cannot be combined")
    one_sentence(branch(str(copy), "--keep-checkpoints", "-1"), "--keep-checkpoints must be 0")

    # The parent's data is gone, and this machine finds other data.
    info = json.loads((copy / "run.json").read_text())
    info["data"]["source"] = str(tmp_path / "gone.npz")
    (copy / "run.json").write_text(json.dumps(info))
    other = write_npz(mnist_small, tmp_path / "other.npz", 1500)
    one_sentence(branch(f"{copy}@4", env={"MNIST_TUI_DATA": str(other)}), "gone.npz is gone")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [parent.name]

    one_sentence(mnist_tui("compare", str(copy), "nothing", cwd=tmp_path), "no run 'nothing'")
    one_sentence(mnist_tui("note", str(copy), cwd=tmp_path), "say what to note")


def test_a_branch_killed_with_sigkill_resumes_after_its_parent_is_deleted(
    parent: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    own_parent = runs / parent.name
    shutil.copytree(parent, own_parent)
    process = subprocess.Popen(
        [sys.executable, "-m", "tui", "train", "--from", f"{own_parent}@2", "--epochs", "300",
         "--runs-dir", str(runs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 180
        while True:  # until the branch's second epoch (epoch 4) has been recorded
            ready, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
            assert ready, "the branch did not reach epoch 4 in time"
            line = process.stdout.readline()
            assert line, "the branch ended before epoch 4"
            if re.match(r"\s*4/300\s", line):
                break
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    [branch] = set(runs.iterdir()) - {own_parent}
    shutil.rmtree(own_parent)

    done = mnist_tui("train", "--resume", str(branch), "--epochs", "8", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"Resuming \S+ after epoch (\d+)", done.stdout)
    summary = summarise(branch)
    assert summary.problem is None
    assert summary.epochs_done == 8
    assert summary.parent == str(own_parent) and summary.parent_epoch == 2
    with open(branch / "metrics.csv", newline="") as rows:
        assert [r["epoch"] for r in csv.DictReader(rows)] == [str(e) for e in range(8)]
