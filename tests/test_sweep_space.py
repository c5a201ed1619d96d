"""The search space of `mnist-tui sweep`: files read into choices and ranges, the default space
around a preset, and every bad space refused in one sentence with exit 2 before anything is
written (the command in process: nothing here imports TensorFlow or trains)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from tiny import TINY

from tui.cli import main
from tui.core.experiments.space import Choice, Range, default_space, load_space
from tui.core.settings.presets import preset
from tui.core.training import budget


def _space_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_gives_fixed_settings_choices_and_ranges(tmp_path: Path) -> None:
    path = _space_file(
        tmp_path,
        "dropout = 0.2\n"
        "batch_size = [64, 128, 256]\n"
        "learning_rate = {low = 1e-4, high = 1e-2, log = true}\n"
        "dense_units = {low = 16, high = 64, step = 16}\n"
        "conv_filters = [[8], [8, 16]]\n",
    )
    space = load_space(path, TINY)
    assert space.base.dropout == 0.2 and space.base.train_size == TINY.train_size
    assert space.varied == ("batch_size", "learning_rate", "dense_units", "conv_filters")
    assert space.dimensions[0] == Choice("batch_size", (64, 128, 256))
    assert space.dimensions[1] == Range("learning_rate", 1e-4, 1e-2, False, log=True)
    assert space.dimensions[2] == Range("dense_units", 16, 64, True, step=16)
    drawn = space.suggest(
        optuna.trial.FixedTrial(
            {"batch_size": 128, "learning_rate": 0.003, "dense_units": 32, "conv_filters": "8,16"}
        )
    )
    assert (drawn.batch_size, drawn.learning_rate, drawn.dense_units) == (128, 0.003, 32)
    assert drawn.conv_filters == (8, 16) and drawn.dropout == 0.2
    # What sweep.json keeps reads back as the same space.
    assert type(space).from_dict(space.to_dict(), "sweep.json") == space


def test_the_default_space_is_around_the_preset_and_leaves_typed_flags_alone() -> None:
    fast = preset("fast")
    space = default_space(fast)
    rate, batch, dropout = space.dimensions
    assert isinstance(rate, Range) and rate.log
    assert (rate.low, rate.high) == pytest.approx((fast.learning_rate / 5, fast.learning_rate * 5))
    assert batch == Choice("batch_size", (128, 256, 512))
    assert isinstance(dropout, Range) and (dropout.low, dropout.high) == (0.0, 0.5)
    assert default_space(fast, fixed=("batch_size",)).varied == ("learning_rate", "dropout")


BAD_SPACES = [
    ("lerning_rate = [0.01]\n", "unknown setting 'lerning_rate'; did you mean 'learning_rate'?"),
    ("learning_rate = {low = 0.01, high = 0.01}\n", "is empty"),
    ("learning_rate = {low = 0.01, high = 0.001}\n", "is reversed"),
    ("dropout = {low = 0.0, high = 0.4, log = true}\n", "a log range must stay above 0"),
    ("dropout = {low = 0.1, high = 1.5}\n", "dropout = 1.5 is out of range"),
    ("batch_size = [64, 0]\n", "batch_size = 0 is out of range"),
    ('optimizer = {low = "adam", high = "sgd"}\n', "optimizer is not a number"),
    ("batch_size = {low = 16.5, high = 64}\n", "takes whole numbers"),
    ("batch_size = []\n", "has no choices"),
    ("learning_rate = {low = 0.001}\n", "needs both low and high"),
    ("dropout = 0.1\n", "varies nothing"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "said"), BAD_SPACES, ids=[s for _, s in BAD_SPACES])
def test_a_bad_space_is_one_sentence_and_exit_2_with_nothing_written(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    said: str,
) -> None:
    path = _space_file(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--space", str(path), "--trials", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mnist-tui: error: space file") and said in err, err
    assert err.count("\n") == 1, "one line, no traceback"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.toml"]


def test_a_space_that_cannot_fit_in_memory_is_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    # 1 GiB free: the default network fits at batch 128, not at 8192.
    monkeypatch.setattr(budget, "available_memory", lambda: 2**30)
    path = _space_file(tmp_path, "batch_size = [128, 8192]\n")
    assert main(["sweep", "--space", str(path)]) == 2
    err = capsys.readouterr().err
    assert "at its largest (batch_size = 8192): these settings do not fit" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.toml"]


def test_a_setting_both_typed_and_varied_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    path = _space_file(tmp_path, "batch_size = [64, 128]\n")
    assert main(["sweep", "--space", str(path), "--batch-size", "32"]) == 2
    assert "varies batch_size, which --batch-size fixes" in capsys.readouterr().err


def test_sweep_flags_are_checked_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--trials", "0"]) == 2
    assert "--trials must be above 0" in capsys.readouterr().err
    assert main(["sweep", "--storage", "sqlite:///x.db"]) == 2
    assert "--storage needs --study NAME" in capsys.readouterr().err
    assert main(["sweep", "--resume", "nowhere", "--dropout", "0.1"]) == 2
    assert "--dropout cannot change a sweep being resumed" in capsys.readouterr().err
    assert main(["sweep", "--resume", "nowhere"]) == 2
    assert "nowhere is not a sweep folder" in capsys.readouterr().err
    assert main(["sweep", "--storage", "nodb://x", "--study", "s", "--out", "sw"]) == 2
    assert "--storage nodb://x cannot be used" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
