"""The headless CLI through a subprocess: train, evaluate, predict, bad input and Ctrl+C."""

from __future__ import annotations

import importlib.util
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

import pytest

from tui.cli import build_parser, resolve_hparams
from tui.core.config import Hyperparams, preset

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


def cli(tmp_path: Path, *args: str, timeout: float = 120) -> Run:
    done = subprocess.run(
        [sys.executable, "-m", "tui", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=timeout,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def assert_quiet(run: Run) -> None:
    assert "Traceback" not in run.out + run.err
    assert not NATIVE_NOISE.search(run.out), run.out
    assert not NATIVE_NOISE.search(run.err), run.err


# --- a trained tiny model, shared by the tests that need one ----------------------------------
@dataclass(frozen=True)
class Trained:
    run: Run
    model: Path
    mnist: Path
    home: Path


@pytest.fixture(scope="module")
def trained(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    home = tmp_path_factory.mktemp("cli")
    mnist = shared_data / "mnist.npz"
    run = cli(home, "train", "--data", str(mnist), *TINY, "--out", str(home / "models"))
    models = list((home / "models").glob("*.keras"))
    return Trained(run, models[0] if models else home / "missing.keras", mnist, home)


def test_train_prints_table_and_accuracy_and_saves(trained: Trained) -> None:
    run = trained.run
    assert run.code == 0, run.err
    assert_quiet(run)
    assert "mnist.npz · 60,000 train / 10,000 test" in run.out
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


def test_evaluate_reports_the_same_accuracy(trained: Trained) -> None:
    train_accuracy = ACCURACY.search(trained.run.out)
    assert train_accuracy is not None
    run = cli(trained.home, "evaluate", "--model", str(trained.model), "--data", str(trained.mnist))
    assert run.code == 0, run.err
    assert_quiet(run)
    match = ACCURACY.search(run.out)
    assert match is not None and match.group(1) == train_accuracy.group(1)


def test_predict_captions_digits_with_marks(trained: Trained) -> None:
    args = ["predict", "--model", str(trained.model), "--data", str(trained.mnist)]
    run = cli(trained.home, *args, "--index", "3", "--count", "4", "--no-color")
    assert run.code == 0, run.err
    assert_quiet(run)
    # Digits sit side by side, so captions share lines; both lists still run left to right.
    pairs = re.findall(r"true (\d) pred (\d)", run.out)
    marks = re.findall(r"([✓✗]) \d+\.\d%", run.out)
    assert sorted(re.findall(r"#(\d+)", run.out)) == ["3", "4", "5", "6"]
    assert sorted(true for true, _ in pairs) == sorted("0414")  # MNIST test labels 3 to 6
    assert len(marks) == 4
    for (true, pred), mark in zip(pairs, marks, strict=True):
        assert (mark == "✓") == (true == pred)
    assert re.search(r"\d of 4 shown are right", run.out)


def test_predict_index_out_of_range(trained: Trained) -> None:
    args = ["predict", "--model", str(trained.model), "--data", str(trained.mnist)]
    run = cli(trained.home, *args, "--index", "10000")
    assert run.code == 2
    assert run.err.strip() == (
        "mnist-tui: error: index = 10000 is out of range: the test set has 10,000 images "
        "(0 to 9999)."
    )


# --- bad input --------------------------------------------------------------------------------
def test_missing_data_is_one_line_and_exit_2(tmp_path: Path) -> None:
    run = cli(tmp_path, "train", "--data", "/nonexistent")
    assert run.code == 2
    assert_quiet(run)
    lines = run.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("mnist-tui: error: /nonexistent does not exist")


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
    run = cli(tmp_path, "train", flag, value, "--data", "/nonexistent")
    assert run.code == 2
    assert_quiet(run)
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnist-tui: error: ")
    assert field in lines[0]
    assert not (tmp_path / "models").exists()


def test_bad_config_file_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("epochs = [\n", encoding="utf-8")
    run = cli(tmp_path, "train", "--config", "bad.toml")
    assert run.code == 2
    assert run.err.startswith("mnist-tui: error: config file bad.toml is not valid TOML")


@pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is not None, reason="tensorboard is installed"
)
def test_tensorboard_without_the_package_exit_2_before_training(
    tmp_path: Path, shared_data: Path
) -> None:
    mnist = str(shared_data / "mnist.npz")
    (tmp_path / "old-run").mkdir()
    for extra in ([], ["--resume", "old-run"]):
        run = cli(tmp_path, "train", "--tensorboard", "--data", mnist, *TINY, *extra)
        assert run.code == 2, run.out + run.err
        assert_quiet(run)
        assert run.out == ""  # nothing loaded, nothing trained
        lines = run.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mnist-tui: error: --tensorboard needs")
        assert "`pip install tensorboard`" in lines[0]
    # No empty run directory left behind.
    assert not (tmp_path / "runs").exists()
    assert not any((tmp_path / "old-run").iterdir())


def test_missing_and_corrupt_model_files(tmp_path: Path) -> None:
    run = cli(tmp_path, "evaluate", "--model", "nope.keras")
    assert (run.code, run.err.strip()) == (
        2,
        "mnist-tui: error: model file nope.keras does not exist; pass a .keras file saved by "
        "mnist-tui.",
    )
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    run = cli(tmp_path, "predict", "--model", "junk.keras")
    assert run.code == 2
    assert run.err.strip().startswith("mnist-tui: error: model file junk.keras cannot be loaded (")


# --- flags and their precedence (in process: no TensorFlow needed) ----------------------------
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
    from tui.core.config import load_toml

    assert load_toml(tmp_path / "hp.toml") == preset("fast").with_changes(epochs=4)


def test_importing_the_cli_is_light() -> None:
    code = (
        "import sys, tui.cli; "
        "heavy = [m for m in ('tensorflow', 'keras', 'textual') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- Ctrl+C -----------------------------------------------------------------------------------
def test_ctrl_c_stops_saves_and_exits_130(shared_data: Path, tmp_path: Path) -> None:
    args = ["train", "--data", str(shared_data / "mnist.npz"), "--epochs", "3",
            "--conv-filters", "8", "--dense-units", "16", "--batch-size", "32",
            "--out", str(tmp_path / "stopped.keras")]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "tui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    seen: list[str] = []
    deadline = time.monotonic() + 90
    try:
        while True:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            assert line is not None, "training ended before any progress line:\n" + "".join(seen)
            seen.append(line)
            if line.startswith("epoch 1/3 step"):
                process.send_signal(signal.SIGINT)
                break
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=10)
    while (line := lines.get_nowait() if not lines.empty() else None) is not None:
        seen.append(line)
    assert process.stderr is not None
    err = process.stderr.read()
    out = "".join(seen)
    assert code == 130, out + err
    assert re.search(r"Stopped by Ctrl\+C during epoch 1 \(step \d+/\d+\); 0 complete epochs", out)
    assert (tmp_path / "stopped.keras").is_file()
    assert "Test accuracy" not in out
    assert_quiet(Run(code, out, err))


def test_app_flags_are_validated_before_the_app_starts(tmp_path: Path) -> None:
    run = cli(tmp_path, "--dropout", "2")
    assert run.code == 2
    assert run.err.strip().startswith("mnist-tui: error: dropout = 2.0 is out of range")
