"""The headless CLI through real subprocesses: train, evaluate, predict, bad input, Ctrl+C, two
processes at once; and the parser, in process (no TensorFlow), down to typed requests."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from views import nine_views

from tui.cli import build_parser, parse, resolve_hparams, train_request
from tui.core.settings.hyperparams import Hyperparams
from tui.core.settings.presets import preset
from tui.core.settings.toml import dump_toml
from tui.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tui" / "sample" / "mnist_sample.npz"
"""Real MNIST digits (6,000/1,000) that every checkout has: these tests need no download."""
TINY = ["--train-size", "600", "--epochs", "1", "--conv-filters", "8", "--dense-units", "16",
        "--batch-size", "64"]  # fmt: skip
NATIVE_NOISE = re.compile(r"oneDNN|cudart|absl|cuda|TF_ENABLE|^[IWEF]\d{4} ", re.MULTILINE)
"""What TensorFlow's C++ runtime prints at import; none of it may reach the terminal."""
ACCURACY = re.compile(r"Test accuracy: (\d+\.\d\d)%")


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The TensorFlow log goes here instead of the real cache; nothing may reach the network.
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env.pop("MNIST_TUI_DATA", None)
    env.pop("NO_COLOR", None)
    return env


def cli(tmp_path: Path, *args: str, timeout: float = 180) -> Run:
    done = subprocess.run(
        [sys.executable, "-m", "tui", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=timeout,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def background(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
    )


def finished(process: subprocess.Popen[str], timeout: float = 180) -> Run:
    out, err = process.communicate(timeout=timeout)
    return Run(process.returncode, out, err)


def assert_quiet(run: Run) -> None:
    assert "Traceback" not in run.out + run.err
    assert not NATIVE_NOISE.search(run.out), run.out
    assert not NATIVE_NOISE.search(run.err), run.err


def one_error_line(run: Run) -> str:
    """The run failed with exit 2 and said why in exactly one line."""
    assert run.code == 2, run.out + run.err
    assert_quiet(run)
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnist-tui: error: "), run.err
    return lines[0]


# --- a trained tiny model, shared by the tests that need one ------------------------------------
@dataclass(frozen=True)
class Trained:
    run: Run
    model: Path
    home: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    home = tmp_path_factory.mktemp("cli")
    run = cli(home, "train", "--data", str(SAMPLE), *TINY, "--out", str(home / "models"))
    models = list((home / "models").glob("*.keras"))
    return Trained(run, models[0] if models else home / "missing.keras", home)


def test_train_prints_table_and_accuracy_and_saves(trained: Trained) -> None:
    run = trained.run
    assert run.code == 0, run.err
    assert_quiet(run)
    assert "mnist_sample.npz · 6,000 train / 1,000 test" in run.out
    assert re.search(r"epoch\s+loss\s+acc\s+val loss\s+val acc\s+time\s+samples/s", run.out)
    assert re.search(r"^\s+1/1\s+\d+\.\d{4}\s+\d\.\d{4}\s+\d+\.\d{4}\s+\d\.\d{4}", run.out, re.M)
    assert ACCURACY.search(run.out)
    assert trained.model.is_file()
    assert trained.model.name.startswith("default-")
    assert f"Model saved to {trained.model}" in run.out
    # No half-written file left beside it.
    assert [p.name for p in trained.model.parent.iterdir()] == [trained.model.name]
    # TensorFlow's banners went to the log instead.
    assert (trained.home / "cache" / "mnist-tui" / "tensorflow.log").is_file()


def test_train_says_when_augmentation_goes_off_for_the_last_epochs(tmp_path: Path) -> None:
    run = cli(tmp_path, "train", "--data", str(SAMPLE), *TINY, "--epochs", "3", "--augment",
              "--clean-epochs", "1")  # fmt: skip
    assert run.code == 0, run.err
    assert_quiet(run)
    lines = run.out.splitlines()
    said = lines.index(
        "Augmentation off from epoch 3: the last epochs train on the images as they are."
    )
    rows = [(i, line.split()[0]) for i, line in enumerate(lines) if re.match(r"\s+\d/3\s", line)]
    assert [epoch for i, epoch in rows if i < said] == ["1/3", "2/3"]
    assert [epoch for i, epoch in rows if i > said] == ["3/3"]


def test_the_same_seed_trains_the_same_model_and_another_seed_does_not(tmp_path: Path) -> None:
    """The README's promise: a seeded run repeats on the same machine, augmentation, dropout,
    shuffling and the clean epochs included, to the last bit of every metric and prediction."""

    def recorded(seed: int, folder: str) -> tuple[list[list[str]], dict[str, np.ndarray]]:
        run = cli(tmp_path, "train", "--data", str(SAMPLE), *TINY, "--epochs", "3",
                  "--batch-norm", "--augment", "--clean-epochs", "1", "--dropout", "0.3",
                  "--lr-schedule", "cosine", "--seed", str(seed), "--runs-dir", folder,
                  "--out", f"{folder}.keras")  # fmt: skip
        assert run.code == 0, run.err
        (run_dir,) = (tmp_path / folder).iterdir()
        rows = [line.split(",") for line in (run_dir / "metrics.csv").read_text().splitlines()]
        timed = rows[0].index("epoch_seconds")
        with np.load(run_dir / "predictions.npz") as saved:
            arrays = {name: saved[name] for name in saved.files}
        return [row[:timed] + row[timed + 1 :] for row in rows], arrays

    first, again, other = recorded(7, "first"), recorded(7, "again"), recorded(8, "other")
    assert len(first[0]) == 4  # the header and three epochs
    assert first[0] == again[0]
    assert first[1].keys() == again[1].keys()
    for name, values in first[1].items():
        np.testing.assert_array_equal(values, again[1][name])
    assert other[0][1:] != first[0][1:]


def test_evaluate_reports_the_same_accuracy(trained: Trained) -> None:
    train_accuracy = ACCURACY.search(trained.run.out)
    assert train_accuracy is not None
    run = cli(trained.home, "evaluate", "--model", str(trained.model), "--data", str(SAMPLE))
    assert run.code == 0, run.err
    assert_quiet(run)
    match = ACCURACY.search(run.out)
    assert match is not None and match.group(1) == train_accuracy.group(1)


def test_evaluate_tta_adds_the_accuracy_over_the_digits_and_their_shifts(
    trained: Trained,
) -> None:
    run = cli(trained.home, "evaluate", "--model", str(trained.model), "--data", str(SAMPLE),
              "--tta")  # fmt: skip
    assert run.code == 0, run.err
    assert_quiet(run)
    plain = ACCURACY.search(run.out)
    shifted = re.search(r"With test-time augmentation: (\d+\.\d\d)% \(loss \d\.\d{4};", run.out)
    assert plain is not None and shifted is not None, run.out
    assert run.out.index(plain.group(0)) < run.out.index(shifted.group(0))

    import keras

    model = keras.saving.load_model(trained.model)
    with np.load(SAMPLE) as sample:
        images = sample["x_test"].astype(np.float32)[..., np.newaxis] / 255.0
        labels = sample["y_test"]
    views = nine_views(images)
    probabilities = np.mean([model.predict(view, verbose=0) for view in views], axis=0)
    expected = float((probabilities.argmax(axis=1) == labels).mean())
    assert float(shifted.group(1)) == pytest.approx(100 * expected, abs=0.01)


def test_train_tta_says_it_once_the_model_is_saved(tmp_path: Path) -> None:
    run = cli(tmp_path, "train", "--data", str(SAMPLE), *TINY, "--tta", "--out", "m.keras")
    assert run.code == 0, run.err
    assert_quiet(run)
    lines = run.out.splitlines()
    plain = next(i for i, line in enumerate(lines) if ACCURACY.match(line))
    # Saved first: a Ctrl+C or a kill during the eight extra passes must not cost the model.
    assert lines[plain + 1] == "Model saved to m.keras"
    assert re.match(r"With test-time augmentation: \d+\.\d\d% \(loss ", lines[plain + 2])


def test_tta_with_detach_is_refused_before_anything_starts() -> None:
    with pytest.raises(UsageError, match=r"--tta cannot be used with --detach.*evaluate"):
        train_request(build_parser().parse_args(["train", "--detach", "--tta"]))


def test_predict_captions_digits_with_marks(trained: Trained) -> None:
    args = ["predict", "--model", str(trained.model), "--data", str(SAMPLE)]
    run = cli(trained.home, *args, "--index", "3", "--count", "4", "--no-color")
    assert run.code == 0, run.err
    assert_quiet(run)
    # Digits sit side by side, so captions share lines; both lists still run left to right.
    pairs = re.findall(r"true (\d) pred (\d)", run.out)
    marks = re.findall(r"([✓✗]) \d+\.\d%", run.out)
    assert sorted(re.findall(r"#(\d+)", run.out)) == ["3", "4", "5", "6"]
    with np.load(SAMPLE) as sample:
        labels = [str(label) for label in sample["y_test"][3:7]]
    assert sorted(true for true, _ in pairs) == sorted(labels)
    assert len(marks) == 4
    for (true, pred), mark in zip(pairs, marks, strict=True):
        assert (mark == "✓") == (true == pred)
    assert re.search(r"\d of 4 shown are right", run.out)


def test_predict_index_out_of_range(trained: Trained) -> None:
    args = ["predict", "--model", str(trained.model), "--data", str(SAMPLE)]
    line = one_error_line(cli(trained.home, *args, "--index", "1000"))
    assert line == (
        "mnist-tui: error: index = 1000 is out of range: the test set has 1,000 images (0 to 999)."
    )


# --- models from elsewhere ------------------------------------------------------------------------
FOREIGN = """
import sys, keras
kind, path = sys.argv[1], sys.argv[2]
layers = keras.layers
if kind == "flat":
    model = keras.Sequential([keras.Input((784,)), layers.Dense(10, activation="softmax")])
elif kind == "colour":
    model = keras.Sequential([keras.Input((32, 32, 3)), layers.Flatten(), layers.Dense(10)])
elif kind == "five":
    model = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(), layers.Dense(5)])
elif kind == "logits":
    model = keras.Sequential([keras.Input((28, 28)), layers.Flatten(), layers.Dense(10)])
if kind != "logits":
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.save(path)
"""


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Models not made by mnist-tui: flattened input, colour input, 5 classes, raw scores."""
    folder = tmp_path_factory.mktemp("foreign")
    made = {}
    for kind in ("flat", "colour", "five", "logits"):
        made[kind] = folder / f"{kind}.keras"
        subprocess.run(
            [sys.executable, "-c", FOREIGN, kind, str(made[kind])],
            check=True,
            capture_output=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
    return made


def test_models_from_elsewhere_are_fed_or_refused_in_one_line(
    foreign: dict[str, Path], tmp_path: Path
) -> None:
    data = ["--data", str(SAMPLE)]
    flat = cli(tmp_path, "evaluate", "--model", str(foreign["flat"]), *data)
    assert flat.code == 0, flat.err
    assert "fed as 784 values" in flat.out and ACCURACY.search(flat.out)
    logits = cli(tmp_path, "predict", "--model", str(foreign["logits"]), *data, "--count", "2")
    assert logits.code == 0, logits.err
    assert "raw scores: shown after a softmax" in logits.out
    assert "fed as 28x28" in logits.out
    colour = one_error_line(cli(tmp_path, "evaluate", "--model", str(foreign["colour"]), *data))
    assert "expects input (?, 32, 32, 3)" not in colour and "(32, 32, 3)" in colour
    assert "28x28 grey digits" in colour
    five = one_error_line(cli(tmp_path, "evaluate", "--model", str(foreign["five"]), *data))
    assert "output (5)" in five and "10 class scores" in five


def test_missing_corrupt_and_folder_model_files(tmp_path: Path) -> None:
    line = one_error_line(cli(tmp_path, "evaluate", "--model", "nope.keras"))
    assert line == (
        "mnist-tui: error: model file nope.keras does not exist; pass a .keras file saved by "
        "mnist-tui."
    )
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    line = one_error_line(cli(tmp_path, "predict", "--model", "junk.keras"))
    assert line.startswith("mnist-tui: error: model file junk.keras cannot be loaded (")
    (tmp_path / "a-folder").mkdir()
    line = one_error_line(cli(tmp_path, "evaluate", "--model", "a-folder"))
    assert "is a folder, not a model file" in line


# --- bad input, refused before anything trains ----------------------------------------------------
def test_missing_data_is_one_line_and_exit_2(tmp_path: Path) -> None:
    line = one_error_line(cli(tmp_path, "train", "--data", "/nonexistent"))
    assert line.startswith("mnist-tui: error: /nonexistent does not exist")


@pytest.mark.parametrize(
    ("flag", "value", "field"),
    [
        ("--epochs", "0", "epochs"),
        ("--epochs", "many", "epochs"),
        ("--dropout", "1.5", "dropout"),
        ("--optimizer", "foo", "optimizer"),
        ("--conv-filters", "a,b", "conv_filters"),
        ("--conv-filters", "8,8,8,8,8", "conv_filters"),
        ("--learning-rate", "0", "learning_rate"),
        ("--preset", "turbo", "preset"),
    ],
)
def test_bad_flag_values_exit_2_naming_the_field(
    tmp_path: Path, flag: str, value: str, field: str
) -> None:
    line = one_error_line(cli(tmp_path, "train", flag, value, "--data", "/nonexistent"))
    assert field in line
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize(
    ("argv", "typed", "nearest"),
    [
        (["train", "--epocs", "3"], "--epocs", "--epochs"),
        (["--epocs", "3"], "--epocs", "--epochs"),
        (["train", "--batchsize=64"], "--batchsize", "--batch-size"),
        (["train", "--no-augmnt"], "--no-augmnt", "--no-augment"),
        (["predict", "--model", "m.keras", "--indx", "3"], "--indx", "--index"),
    ],
    ids=["train", "app", "with-equals", "negated-switch", "predict"],
)
def test_a_mistyped_flag_names_the_nearest_one(
    tmp_path: Path, argv: list[str], typed: str, nearest: str
) -> None:
    line = one_error_line(cli(tmp_path, *argv))
    assert (
        line == f"mnist-tui: error: unknown option {typed}; did you mean {nearest}? (see "
        "mnist-tui --help)"
    )


def test_a_flag_like_no_other_is_refused_as_argparse_says_and_a_start_of_one_is_taken(
    tmp_path: Path,
) -> None:
    line = one_error_line(cli(tmp_path, "train", "--zzzz"))
    assert line == "mnist-tui: error: unrecognized arguments: --zzzz (see mnist-tui --help)"
    # argparse takes an unambiguous start of a flag: that is no mistake to correct.
    args = parse(build_parser(), ["train", "--epoch", "3", "--conv-f", "8"])
    assert (args.epochs, args.conv_filters) == (3, (8,))


def test_settings_that_cannot_fit_are_refused_with_the_estimate(tmp_path: Path) -> None:
    args = ["train", "--data", str(SAMPLE), "--batch-size", "8192", "--conv-filters", "512,512",
            "--padding", "same", "--dense-units", "4096"]  # fmt: skip
    line = one_error_line(cli(tmp_path, *args))
    assert "do not fit" in line and "parameters" in line and "GiB" in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_config_files_in_the_readme_wording_and_mistakes(tmp_path: Path) -> None:
    (tmp_path / "good.toml").write_text('preset = "fast"\n[hyperparams]\nepochs = 4\n')
    args = build_parser().parse_args(["--config", str(tmp_path / "good.toml")])
    assert resolve_hparams(args) == preset("fast").with_changes(epochs=4)
    (tmp_path / "table.toml").write_text("[hyperparam]\nepochs = 4\n")
    line = one_error_line(cli(tmp_path, "train", "--config", "table.toml"))
    assert "unknown table [hyperparam]" in line and "'hyperparams'" in line
    (tmp_path / "key.toml").write_text("[hyperparams]\nepoch = 4\n")
    line = one_error_line(cli(tmp_path, "train", "--config", "key.toml"))
    assert "'epoch'" in line and "'epochs'" in line
    (tmp_path / "bad.toml").write_text("epochs = [\n", encoding="utf-8")
    line = one_error_line(cli(tmp_path, "train", "--config", "bad.toml"))
    assert line.startswith("mnist-tui: error: config file bad.toml is not valid TOML")


def test_an_unwritable_out_or_runs_dir_is_refused_before_training(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user can write anywhere (root): no read-only folder to test with")
        out = one_error_line(cli(tmp_path, "train", "--data", str(SAMPLE), *TINY,
                                 "--out", str(locked / "m.keras")))  # fmt: skip
        assert "--out" in out and "not writable" in out
        runs = one_error_line(cli(tmp_path, "train", "--data", str(SAMPLE), *TINY,
                                  "--runs-dir", str(locked / "runs")))  # fmt: skip
        assert "--runs-dir" in runs
    finally:
        locked.chmod(0o700)


def test_an_out_that_is_a_file_where_a_folder_should_be(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file")
    line = one_error_line(
        cli(tmp_path, "train", "--data", str(SAMPLE), *TINY, "--out", "blocker/m.keras")
    )
    assert "--out" in line and "blocker" in line


def test_an_existing_out_file_is_kept_unless_overwrite(tmp_path: Path) -> None:
    (tmp_path / "m.keras").write_text("precious")
    line = one_error_line(cli(tmp_path, "train", "--data", str(SAMPLE), *TINY, "--out", "m.keras"))
    assert "m.keras exists; pass --overwrite" in line
    assert (tmp_path / "m.keras").read_text() == "precious"


def test_tensorboard_without_the_package_exit_2_before_training(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        pytest.skip("tensorboard is installed")
    (tmp_path / "old-run").mkdir()
    for extra in ([], ["--resume", "old-run"]):
        run = cli(tmp_path, "train", "--tensorboard", "--data", str(SAMPLE), *TINY[2:4], *extra)
        line = one_error_line(run)
        assert run.out == ""  # nothing loaded, nothing trained
        assert line.startswith("mnist-tui: error: --tensorboard needs")
    assert not (tmp_path / "runs").exists()
    assert not any((tmp_path / "old-run").iterdir())


# --- options before the subcommand ----------------------------------------------------------------
def test_options_before_the_subcommand_are_honoured_or_refused(tmp_path: Path) -> None:
    run = cli(tmp_path, "--data", str(SAMPLE), "--runs-dir", "here", "--preset", "seed",
              "train", *TINY)  # fmt: skip
    assert run.code == 0, run.err
    assert "mnist_sample.npz" in run.out and "bundled sample" not in run.out
    (recorded,) = (tmp_path / "here").iterdir()
    assert recorded.name.endswith("-seed")
    line = one_error_line(cli(tmp_path, "--epochs", "3", "evaluate", "--model", "m.keras"))
    assert "--epochs does not apply to `mnist-tui evaluate`" in line


VALUES = {
    "epochs": st.integers(1, 1000),
    "batch_size": st.integers(1, 8192),
    "learning_rate": st.floats(1e-6, 1.0),
    "dropout": st.floats(0.0, 0.9),
    "seed": st.integers(0, 2**31 - 1),
    "optimizer": st.sampled_from(["adam", "sgd", "rmsprop", "adamw"]),
    "batch_norm": st.booleans(),
    "conv_filters": st.lists(st.integers(1, 512), min_size=1, max_size=2).map(tuple),
}


def _flag(name: str, value: Any) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else "--no-" + flag[2:]]
    if isinstance(value, tuple):
        return [flag, ",".join(map(str, value))]
    return [flag, repr(value) if isinstance(value, float) else str(value)]


@settings(max_examples=60, deadline=None)
@given(st.fixed_dictionaries({}, optional=VALUES), st.booleans())
def test_any_valid_flags_give_the_same_request_before_or_after_train(
    values: dict[str, Any], before: bool
) -> None:
    flags = [part for name, value in values.items() for part in _flag(name, value)]
    argv = [*flags, "train"] if before else ["train", *flags]
    request = train_request(build_parser().parse_args(argv))
    assert request.setup.hparams == preset("default").with_changes(**values)


@settings(max_examples=40, deadline=None)
@given(st.fixed_dictionaries({}, optional=VALUES))
def test_a_config_file_and_flags_say_the_same(
    tmp_path_factory: Any, values: dict[str, Any]
) -> None:
    hparams = preset("default").with_changes(**values)
    path = tmp_path_factory.mktemp("toml") / "hp.toml"
    path.write_text(dump_toml(hparams))
    from_file = resolve_hparams(build_parser().parse_args(["--config", str(path)]))
    flags = [part for name, value in values.items() for part in _flag(name, value)]
    from_flags = resolve_hparams(build_parser().parse_args(flags))
    assert from_file == from_flags == hparams


def test_resume_refuses_other_settings_in_one_sentence() -> None:
    args = build_parser().parse_args(["train", "--resume", "runs/x", "--batch-size", "32"])
    with pytest.raises(UsageError, match="--batch-size cannot change a run being resumed"):
        train_request(args)
    ok = train_request(build_parser().parse_args(["train", "--resume", "runs/x", "--epochs", "9"]))
    assert (ok.resume, ok.resume_epochs) == ("runs/x", 9)


def test_every_hyperparameter_has_a_flag() -> None:
    train_help = subprocess.run(
        [sys.executable, "-m", "tui", "train", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for f in fields(Hyperparams):
        assert "--" + f.name.replace("_", "-") in train_help


def test_flags_override_config_which_overrides_preset(tmp_path: Path) -> None:
    toml = tmp_path / "hp.toml"
    toml.write_text("[hyperparams]\nepochs = 7\nbatch_size = 99\n", encoding="utf-8")
    args = build_parser().parse_args(
        ["train", "--preset", "seed", "--config", str(toml), "--epochs", "3", "--no-batch-norm",
         "--conv-filters", "16,32,64", "--augment"]
    )  # fmt: skip
    assert resolve_hparams(args) == preset("seed").with_changes(
        epochs=3, batch_size=99, conv_filters=(16, 32, 64), augment=True, batch_norm=False
    )


def test_save_config_writes_what_would_train(tmp_path: Path) -> None:
    # Written before the data is looked for, so a bad --data still leaves the file.
    run = cli(tmp_path, "train", "--preset", "fast", "--epochs", "4", "--save-config", "hp.toml",
              "--data", "/nonexistent")  # fmt: skip
    assert run.code == 2
    from tui.core.settings.toml import load_toml

    assert load_toml(tmp_path / "hp.toml") == preset("fast").with_changes(epochs=4)


def test_app_flags_are_validated_before_the_app_starts(tmp_path: Path) -> None:
    line = one_error_line(cli(tmp_path, "--dropout", "2"))
    assert line.startswith("mnist-tui: error: dropout = 2.0 is out of range")
    line = one_error_line(cli(tmp_path, "--strategy", "multiworker"))
    assert "the app trains on one machine" in line
    line = one_error_line(cli(tmp_path, "--resume", "r", "--model", "m.keras"))
    assert "not both" in line


# --- two processes at once ------------------------------------------------------------------------
def test_two_runs_in_the_same_second_keep_both_models(tmp_path: Path) -> None:
    args = ["train", "--data", str(SAMPLE), *TINY, "--runs-dir", "runs"]
    first, second = background(tmp_path, *args), background(tmp_path, *args)
    results = [finished(first), finished(second)]
    assert all(r.code == 0 for r in results), [r.err for r in results]
    saved = sorted((tmp_path / "models").glob("*.keras"))
    assert len(saved) == 2
    said = sorted(re.search(r"Model saved to (\S+)", r.out).group(1) for r in results)  # type: ignore[union-attr]
    assert said == sorted(str(p.relative_to(tmp_path)) for p in saved)
    assert len(list((tmp_path / "runs").iterdir())) == 2


def test_two_writers_of_one_run_the_second_is_refused(tmp_path: Path) -> None:
    made = cli(tmp_path, "train", "--data", str(SAMPLE), *TINY, "--runs-dir", "runs")
    assert made.code == 0, made.err
    (run,) = (tmp_path / "runs").iterdir()
    args = ["train", "--resume", str(run), "--epochs", "40", "--data", str(SAMPLE)]
    first = background(tmp_path, *args)
    # The first holds the lock once it says where it records.
    assert first.stdout is not None
    for line in first.stdout:
        if line.startswith("Resuming"):
            break
    second = cli(tmp_path, *args)
    line = one_error_line(second)
    assert "is being trained by mnist-tui train" in line and str(first.pid) in line
    first.send_signal(signal.SIGINT)
    assert finished(first).code == 130
    rows = (run / "metrics.csv").read_text().strip().splitlines()[1:]
    epochs = [int(row.split(",")[0]) for row in rows]
    assert epochs == list(range(len(epochs))), "each epoch once: one writer"


# --- Ctrl+C -----------------------------------------------------------------------------------
def _train_until(
    tmp_path: Path, marker: str, *args: str
) -> tuple[subprocess.Popen[str], list[str], queue.Queue[str | None]]:
    process = background(tmp_path, *args)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while True:
        line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        assert line is not None, "training ended first:\n" + "".join(seen)
        seen.append(line)
        if line.startswith(marker):
            return process, seen, lines


def _rest(process: subprocess.Popen[str], seen: list[str], lines: queue.Queue[str | None]) -> Run:
    code = process.wait(timeout=60)
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    assert process.stderr is not None
    return Run(code, "".join(seen), process.stderr.read())


def _three_epochs(out: Path) -> list[str]:
    """A small three-epoch run on the sample, long enough to be interrupted in epoch 2."""
    return ["train", "--data", str(SAMPLE), "--epochs", "3", "--conv-filters", "8",
            "--dense-units", "16", "--batch-size", "32", "--out", str(out)]  # fmt: skip


def test_ctrl_c_early_in_epoch_2_names_it_saves_epoch_1_and_exits_130(tmp_path: Path) -> None:
    args = _three_epochs(tmp_path / "stopped.keras")
    process, seen, lines = _train_until(tmp_path, "epoch 2/3 step", *args)
    process.send_signal(signal.SIGINT)
    run = _rest(process, seen, lines)
    assert run.code == 130, run.out + run.err
    assert re.search(r"Stopped during epoch 2 \(step \d+/\d+\); 1 complete epoch,", run.out)
    assert (tmp_path / "stopped.keras").is_file()
    assert ACCURACY.search(run.out), "the saved model (epoch 1) is the one evaluated"
    assert "Continue with: mnist-tui train --resume" in run.out
    assert_quiet(run)


def test_ctrl_c_twice_quits_without_saving(tmp_path: Path) -> None:
    args = _three_epochs(tmp_path / "never.keras")
    process, seen, lines = _train_until(tmp_path, "epoch 2/3 step", *args)
    process.send_signal(signal.SIGINT)
    # The second press once the first has been taken (two at once are one signal to Python).
    while (line := lines.get(timeout=60)) is not None:
        seen.append(line)
        if line.startswith("Stopping"):
            break
    process.send_signal(signal.SIGINT)
    run = _rest(process, seen, lines)
    assert run.code == 130
    assert "quitting without saving" in run.err
    assert not (tmp_path / "never.keras").exists()


def test_detach_refuses_the_flags_only_a_foreground_training_can_honour() -> None:
    args = build_parser().parse_args(["train", "--detach", "--out", "m.keras", "--overwrite"])
    with pytest.raises(UsageError, match=r"--out, --overwrite cannot be used with --detach"):
        train_request(args)


def _finished_in_background(run: Path, epochs: int, timeout: float = 180) -> list[str]:
    """The run's recorded epochs, once its engine has trained `epochs` and gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = run / "metrics.csv"
        rows = metrics.read_text().splitlines()[1:] if metrics.is_file() else []
        if len(rows) >= epochs and not (run / "engine.json").exists():
            return rows
        time.sleep(0.2)
    raise AssertionError(f"{run} did not reach {epochs} epochs in {timeout} s")


@pytest.mark.slow
def test_detach_trains_in_the_background_and_a_detached_resume_goes_on(tmp_path: Path) -> None:
    runs = str(tmp_path / "runs")
    first = cli(tmp_path, "train", "--detach", "--data", str(SAMPLE), "--runs-dir", runs, *TINY)
    assert first.code == 0, first.out + first.err
    found = re.search(r"Training in the background \(engine pid \d+\): (\S+)", first.out)
    assert found is not None, first.out
    run = Path(found[1])
    assert f"mnist-tui attach {run.name}" in first.out
    assert len(_finished_in_background(run, 1)) == 1
    # A resumed run is opened, not recorded anew: the command still says where it trains.
    again = cli(tmp_path, "train", "--detach", "--resume", str(run), "--epochs", "2", timeout=120)
    assert again.code == 0, again.out + again.err
    assert str(run) in again.out
    assert len(_finished_in_background(run, 2)) == 2
