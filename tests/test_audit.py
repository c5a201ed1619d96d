"""The training-set audit: flipped labels are found, leaving them out is recorded and kept on a
resume, and a run that cannot be audited or an exclude file that cannot be read is one line."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from test_cli import SAMPLE, Run, assert_quiet, cli, one_error_line

from tui.cli import build_parser, parse, train_request
from tui.core.data.exclusion import read_exclude_file, write_exclude_file
from tui.core.data.info import DataInfo
from tui.core.data.mnist import DataError, MnistData, load_npz
from tui.core.experiments.doubt import TrainingAudit
from tui.errors import UsageError

FLIPPED = 20
TOP = 60
TRAIN = ["--epochs", "3", "--conv-filters", "16", "--dense-units", "32", "--batch-size", "64",
         "--validation-split", "0", "--dropout", "0"]  # fmt: skip
"""A small network on all 6,000 sample digits: it learns the digits well in a few seconds, but
not the 20 labels made wrong."""


@dataclass(frozen=True)
class Audited:
    folder: Path
    data: Path
    flipped: np.ndarray
    run: Path
    audit: Run
    exclude: Path


def _only_run(runs: Path) -> Path:
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return run


def flip_sample_labels(folder: Path) -> tuple[Path, np.ndarray]:
    """The bundled sample with 20 training labels changed to another digit, saved in `folder`
    as flipped.npz; returns the file and the flipped indices."""
    with np.load(SAMPLE) as sample:
        arrays = {key: sample[key] for key in sample.files}
    rng = np.random.default_rng(33)
    flipped = np.sort(rng.choice(len(arrays["y_train"]), FLIPPED, replace=False))
    labels = arrays["y_train"].copy()
    labels[flipped] = (labels[flipped] + rng.integers(1, 10, FLIPPED)) % 10
    arrays["y_train"] = labels
    data = folder / "flipped.npz"
    np.savez(data, **arrays)
    return data, flipped


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Audited:
    """The sample with 20 training labels changed to another digit, trained on, then audited."""
    folder = tmp_path_factory.mktemp("audit")
    data, flipped = flip_sample_labels(folder)
    trained = cli(folder, "train", "--data", str(data), "--runs-dir", "runs", *TRAIN)
    assert trained.code == 0, trained.err
    run = _only_run(folder / "runs")
    exclude = folder / "doubted.txt"
    audit = cli(
        folder, "audit", str(run), "--top", str(TOP), "--no-color", "--write-exclude", str(exclude)
    )
    return Audited(folder, data, flipped, run, audit, exclude)


def test_most_flipped_labels_are_among_the_top_doubted(audited: Audited) -> None:
    assert audited.audit.code == 0, audited.audit.err
    assert_quiet(audited.audit)
    listed = read_exclude_file(audited.exclude)
    assert len(listed) == TOP
    found = set(listed) & set(audited.flipped.tolist())
    # Measured (2026-12-07, 2-core CPU): 18 of the 20 in the top 60, 12 of them in the top 20;
    # other flips (seeds 7, 101) gave 16 and 14.
    assert len(found) >= 14, f"{len(found)} of {FLIPPED} flipped labels in the top {TOP}"
    out = audited.audit.out
    assert "labels doubted (label doubted: the model gives another class >= 50%" in out
    shown = [int(i) for i in re.findall(r"^#(\d+)", out.replace(" #", "\n#"), re.MULTILINE)]
    assert sorted(shown) == list(listed)  # the file holds the digits shown


def test_the_audit_is_kept_in_the_run_and_reused(audited: Audited) -> None:
    assert (audited.run / "audit.npz").is_file()
    again = cli(audited.folder, "audit", str(audited.run), "--top", "3", "--no-color")
    assert again.code == 0, again.err
    assert "reused from audit.npz" in again.out
    assert "computed in" in audited.audit.out


def test_filters_by_label_and_prediction(audited: Audited) -> None:
    label = cli(
        audited.folder, "audit", str(audited.run), "--top", "5", "--label", "7", "--no-color"
    )
    assert label.code == 0, label.err
    captions = [line for line in label.out.splitlines() if "label " in line and " pred " in line]
    assert captions and all(part.startswith("label 7 ") for line in captions
                            for part in _cells(line, "label "))  # fmt: skip
    predicted = cli(
        audited.folder, "audit", str(audited.run), "--top", "5", "--predicted", "3", "--no-color"
    )
    assert predicted.code == 0, predicted.err
    captions = [line for line in predicted.out.splitlines() if " pred " in line]
    assert captions and all(part.rstrip().endswith("pred 3") for line in captions
                            for part in _cells(line, "label "))  # fmt: skip


def _cells(line: str, start: str) -> list[str]:
    """The captions of one row of digit cards, each from `start` to the next."""
    return [start + cell.strip() for cell in line.split(start)[1:]]


def test_leaving_the_doubted_out_is_recorded_and_a_resume_keeps_it(audited: Audited) -> None:
    folder = audited.folder
    listed = read_exclude_file(audited.exclude)
    again = cli(
        folder, "train", "--data", str(audited.data), "--runs-dir", "again",
        "--exclude-file", str(audited.exclude), *TRAIN[:1], "1", *TRAIN[2:],
    )  # fmt: skip
    assert again.code == 0, again.err
    kept = 6000 - TOP
    assert f"Training on {kept:,} images" in again.out
    assert f"{TOP} left out" in again.out  # the data line names the exclusion
    run = _only_run(folder / "again")
    data = json.loads((run / "run.json").read_text())["data"]
    assert data["excluded"] == list(listed)
    assert data["excluded_count"] == TOP
    assert data["excluded_sha256"] == DataInfo("path", "", "", 0, 0, listed).excluded_digest
    assert data["train"] == 6000
    assert data["fingerprint"] == load_npz(audited.data).fingerprint

    resumed = cli(folder, "train", "--resume", str(run), "--epochs", "2")
    assert resumed.code == 0, resumed.err
    assert f"Training on {kept:,} images" in resumed.out
    assert json.loads((run / "run.json").read_text())["data"]["excluded"] == list(listed)


def test_a_run_that_cannot_be_audited_is_one_line(audited: Audited, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    _copy_run(audited.run, damaged)
    (damaged / "last.keras").write_bytes(b"not a model")
    line = one_error_line(cli(tmp_path, "audit", str(damaged)))
    assert "last.keras cannot be loaded" in line

    missing = tmp_path / "missing"
    _copy_run(audited.run, missing, skip=("last.keras", "best.keras"))
    line = one_error_line(cli(tmp_path, "audit", str(missing)))
    assert "has no model to audit" in line

    line = one_error_line(cli(tmp_path, "audit", str(tmp_path / "nowhere")))
    assert "no run" in line


def test_a_run_whose_data_is_gone_is_one_line(audited: Audited, tmp_path: Path) -> None:
    moved = tmp_path / "run"
    _copy_run(audited.run, moved)
    info = json.loads((moved / "run.json").read_text())
    info["data"]["source"] = str(tmp_path / "gone.npz")
    (moved / "run.json").write_text(json.dumps(info))
    line = one_error_line(cli(tmp_path, "audit", str(moved)))
    assert "gone.npz is gone" in line and "cannot be audited" in line


def _copy_run(source: Path, target: Path, skip: tuple[str, ...] = ()) -> None:
    target.mkdir()
    for file in source.iterdir():
        if file.is_file() and file.name not in (".lock", "audit.npz", *skip):
            (target / file.name).write_bytes(file.read_bytes())


# --- in process: the rule, the order, exclude files ---------------------------------------------
def test_the_doubt_rule_and_the_orders() -> None:
    probabilities = np.array(
        [
            [0.95, 0.05, 0, 0, 0, 0, 0, 0, 0, 0],  # label 0, sure: not doubted
            [0.05, 0.90, 0, 0, 0, 0, 0, 0, 0.05, 0],  # label 0, says 1: doubted
            [0.15, 0.80, 0, 0, 0, 0, 0, 0, 0.05, 0],  # label 0 at 15%: not doubted
            [0.30, 0.40, 0.30, 0, 0, 0, 0, 0, 0, 0],  # label 2 unsure: not doubted
        ],
        np.float32,
    )
    audit = TrainingAudit("last.keras", 1, "", "", np.array([0, 0, 0, 2], np.uint8), probabilities)
    assert audit.doubted.tolist() == [False, True, False, False]
    assert audit.ranked("doubt").tolist() == [1, 2, 3, 0]
    assert audit.ranked("loss").tolist() == [1, 2, 3, 0]
    assert audit.ranked("doubt", label=2).tolist() == [3]
    assert audit.ranked("doubt", predicted=1).tolist() == [1, 2, 3]
    assert audit.predicted.tolist() == [0, 1, 1, 1]


def test_exclude_files_one_a_line_commas_and_comments(tmp_path: Path) -> None:
    file = tmp_path / "ex.txt"
    file.write_text("# what these are\n5\n3, 9,3\n\n  12  # a note\n")
    assert read_exclude_file(file) == (3, 5, 9, 12)
    written = write_exclude_file(tmp_path / "w.txt", [7, 2], "two digits")
    assert read_exclude_file(written) == (2, 7)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1\n2\nthree\n", "line 3: 'three' is not a training index"),
        ("4,-5\n", "line 1: '-5' is not a training index"),
        ("1.5\n", "line 1: '1.5' is not a training index"),
        ("# nothing\n", "names no training digits"),
    ],
)
def test_bad_exclude_files_are_refused_naming_the_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    file = tmp_path / "ex.txt"
    file.write_text(text)
    args = parse(build_parser(), ["train", "--exclude-file", str(file)])
    with pytest.raises(UsageError, match=expected) as raised:
        train_request(args)
    assert "\n" not in str(raised.value)


def test_exclude_file_missing_or_with_resume_or_detach(tmp_path: Path) -> None:
    args = parse(build_parser(), ["train", "--exclude-file", str(tmp_path / "no.txt")])
    with pytest.raises(UsageError, match="does not exist"):
        train_request(args)
    (tmp_path / "ex.txt").write_text("1\n")
    for flag in (["--resume", "runs/x"], ["--detach"]):
        args = parse(build_parser(), ["train", *flag, "--exclude-file", str(tmp_path / "ex.txt")])
        with pytest.raises(UsageError, match=f"--exclude-file cannot be used with {flag[0]}"):
            train_request(args)


def test_an_index_outside_the_training_set_is_refused() -> None:
    data = MnistData(
        np.zeros((5, 28, 28, 1), np.float32),
        np.arange(5, dtype=np.uint8),
        np.zeros((2, 28, 28, 1), np.float32),
        np.zeros(2, np.uint8),
        "test arrays",
        "subset",
    )
    kept = data.excluding([1, 3])
    assert kept.y_train.tolist() == [0, 2, 4]
    assert kept.info.train == 5 and kept.info.excluded == (1, 3)
    assert kept.excluding((3, 1)) is kept
    with pytest.raises(DataError, match="training index 5 is outside"):
        data.excluding([5])
    with pytest.raises(DataError, match="leaves nothing to train on"):
        data.excluding(range(5))  # type: ignore[arg-type]
