"""Command line: argparse into typed requests, then the app or a command.

`mnist-tui` starts the app (on a background engine); `train`, `evaluate` and `predict` run
headless; `attach`, `ps` and `stop` reach live engines. Every flag is absent unless typed
(argparse's SUPPRESS), so that a flag given before the subcommand is honoured like one given
after it, and one the subcommand does not take is refused in one line.
"""

from __future__ import annotations

import argparse
import difflib
import gc
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, NoReturn

from tui.core.platform.backend import BACKENDS, select_backend
from tui.core.platform.placement import (
    STRATEGIES,
    DistributeError,
    DistributeOptions,
    parse_devices,
)
from tui.core.settings import presets
from tui.core.settings.hyperparams import SETTINGS, Hyperparams
from tui.core.settings.requests import (
    AppOptions,
    AttachRequest,
    EvaluateRequest,
    PredictRequest,
    Setup,
    StopRequest,
    TrainRequest,
)
from tui.core.settings.toml import load_toml_with_preset
from tui.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    PROG,
    UsageError,
    say_error,
)

SORTS = ("index", "confidence", "loss")
"""`--sort` orders (the values of `PredictionSort`, spelt here so the app's start skips numpy)."""
HYPERPARAMS = tuple(f.name for f in fields(Hyperparams))


# --- argument parsing -------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        say_error(f"{message} (see {self.prog} --help)")
        raise SystemExit(EXIT_BAD_INPUT)


def _converter(name: str, kind: str) -> Callable[[str], Any]:
    """Parse a flag's text into the field's type, with a message naming the field on failure."""

    def whole(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} = {text!r} must be a whole number.") from None

    def number(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} = {text!r} must be a number.") from None

    def filters(text: str) -> tuple[int, ...]:
        try:
            return tuple(int(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} = {text!r} must be whole numbers separated by commas, e.g. 32,64."
            ) from None

    if kind == "int":
        return whole
    if kind == "float":
        return number
    if kind.startswith("tuple"):
        return filters
    return str


_METAVARS = {"int": "N", "float": "X", "str": "TEXT"}


def _flag(parser: argparse.ArgumentParser | Any, *names: str, **options: Any) -> None:
    """`add_argument` with the default left out: an untyped flag leaves no attribute."""
    parser.add_argument(*names, default=argparse.SUPPRESS, **options)


def _add_hyperparam_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Hyperparams field, generated so the field list lives only in the core.

    Range and choice checks are left to Hyperparams, whose sentences name the field, the value
    and what is allowed.
    """
    group = parser.add_argument_group(
        "hyperparameters", "each overrides --config, which overrides --preset"
    )
    base = presets.preset(presets.DEFAULT_PRESET)
    for f in fields(Hyperparams):
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        default = getattr(base, f.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        text = f"{SETTINGS[f.name].help} (default: {shown})".replace("%", "%%")
        if kind == "bool":
            _flag(group, flag, dest=f.name, action=argparse.BooleanOptionalAction, help=text)
            continue
        choices = SETTINGS[f.name].choices
        metavar = "{" + ",".join(choices) + "}" if choices else _METAVARS.get(kind, "N,...")
        _flag(group, flag, dest=f.name, type=_converter(f.name, kind), metavar=metavar, help=text)


def _add_setup_flags(parser: argparse.ArgumentParser) -> None:
    """--preset, --config, --data, the devices and the runs: what the app and `train` share."""
    _flag(
        parser,
        "--preset",
        metavar="{" + ",".join(presets.PRESETS) + "}",
        help=f"starting hyperparameters (default: {presets.DEFAULT_PRESET})",
    )
    _flag(parser, "--config", metavar="FILE.toml", help="hyperparameters from a TOML file")
    _add_data_flag(parser)
    _add_runs_dir_flag(parser)
    _flag(
        parser,
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard logs into the run directory's tensorboard/ folder "
        "(needs `pip install tensorboard`)",
    )
    group = parser.add_argument_group("devices", "where training runs (not hyperparameters)")
    _add_backend_flag(group)
    _flag(
        group,
        "--strategy",
        choices=STRATEGIES,
        help="default: one device; mirrored: every local GPU (or two logical CPUs without one); "
        "multiworker: several processes described by $TF_CONFIG (default: default)",
    )
    _flag(
        group,
        "--devices",
        metavar="LIST",
        help="for --strategy mirrored, the devices to use, e.g. gpu:0,gpu:1 or cpu:0,cpu:1",
    )
    _flag(
        group,
        "--mixed-precision",
        action="store_true",
        help="compute in float16 with float32 weights and output (faster on recent GPUs)",
    )


def _add_backend_flag(parser: argparse.ArgumentParser | Any) -> None:
    _flag(
        parser,
        "--backend",
        choices=BACKENDS,
        help="the Keras backend that trains: tensorflow, jax or torch (default: $KERAS_BACKEND, "
        "else tensorflow); an engine started from here runs on it too",
    )


def _add_data_flag(parser: argparse.ArgumentParser) -> None:
    _flag(
        parser,
        "--data",
        metavar="PATH",
        help="mnist.npz or a folder of IDX files (default: $MNIST_TUI_DATA, the Keras cache, "
        "a download, then the bundled sample)",
    )


def _add_tta_flag(parser: argparse.ArgumentParser) -> None:
    _flag(
        parser,
        "--tta",
        action="store_true",
        help="also the test accuracy with test-time augmentation: each digit's probabilities "
        "averaged with those of its 8 one-pixel shifts (8 more predictions a digit)",
    )


def _add_runs_dir_flag(parser: argparse.ArgumentParser) -> None:
    _flag(
        parser,
        "--runs-dir",
        metavar="DIR",
        help="where run directories go (default: $MNIST_TUI_RUNS, else ./runs)",
    )


def _add_app_flags(parser: argparse.ArgumentParser) -> None:
    _flag(
        parser,
        "--resume",
        metavar="RUN_DIR",
        help="open a run directory: its curves, hyperparameters and model; t continues it",
    )
    _flag(
        parser,
        "--model",
        metavar="PATH",
        help="open a saved .keras model to browse its predictions (v, c) and draw (d)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: the app's flags plus the subcommands."""
    parser = _Parser(
        prog=PROG,
        description="Train a Keras CNN on MNIST and watch and steer it live in the terminal. "
        "Without a command, starts the app; training there goes on in the background when the "
        "terminal closes (`mnist-tui attach` comes back to it).",
    )
    _add_setup_flags(parser)
    _add_app_flags(parser)
    _add_hyperparam_flags(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    train = commands.add_parser(
        "train", help="train headless with a progress bar and a metrics table"
    )
    _add_setup_flags(train)
    _flag(
        train,
        "--out",
        metavar="PATH",
        help="where to save the model (default: ./models/<preset>-<timestamp>.keras); "
        "a path ending in .keras names the file itself",
    )
    _flag(train, "--overwrite", action="store_true", help="replace an existing --out file")
    _flag(train, "--save-config", metavar="FILE.toml", help="write the hyperparameters used")
    _flag(
        train,
        "--resume",
        metavar="RUN_DIR",
        help="continue a run from its last completed epoch; --epochs sets a new target",
    )
    _flag(
        train,
        "--detach",
        action="store_true",
        help="train in a background engine and return at once; `mnist-tui attach` follows it",
    )
    _add_tta_flag(train)
    _add_hyperparam_flags(train)
    _add_sweep_command(commands)

    evaluate = commands.add_parser("evaluate", help="test loss and accuracy of a saved model")
    evaluate.add_argument("--model", required=True, metavar="PATH")
    _add_data_flag(evaluate)
    _add_backend_flag(evaluate)
    _add_tta_flag(evaluate)

    predict = commands.add_parser("predict", help="show test digits with the model's guesses")
    predict.add_argument("--model", required=True, metavar="PATH")
    _add_data_flag(predict)
    _add_backend_flag(predict)
    _flag(predict, "--index", type=int, metavar="I", help="first test image (default: 0)")
    _flag(predict, "--count", type=int, metavar="N", help="how many digits (default: 8)")
    _flag(predict, "--misclassified", action="store_true", help="only digits the model got wrong")
    _flag(predict, "--true", type=int, metavar="K", help="only digits of true class K")
    _flag(predict, "--pred", type=int, metavar="K", help="only digits predicted as K")
    _flag(
        predict,
        "--sort",
        choices=SORTS,
        help="index (default), confidence (least confident first) or loss (highest first)",
    )
    _flag(predict, "--compact", action="store_true", help="half-size digits")
    _flag(predict, "--no-color", action="store_true", help="plain characters, no colour")

    attach = commands.add_parser(
        "attach", help="open the app on a live training (the newest, or RUN's)"
    )
    attach.add_argument("run", nargs="?", metavar="RUN", help="a run directory or its name")
    _add_runs_dir_flag(attach)

    commands.add_parser("ps", help="list live trainings: run, phase, epoch, accuracy, ETA, pid")

    stop = commands.add_parser("stop", help="stop a live training after its epoch (or --now)")
    stop.add_argument("run", nargs="?", metavar="RUN", help="a run directory or its name")
    _flag(stop, "--now", action="store_true", help="stop within a group of batches")
    _add_runs_dir_flag(stop)
    return parser


def _add_sweep_command(commands: Any) -> None:
    sweep = commands.add_parser(
        "sweep", help="search for the best settings: many runs, chosen by Optuna"
    )
    _add_setup_flags(sweep)
    group = sweep.add_argument_group("sweep", "what to search and for how long")
    _flag(
        group,
        "--space",
        metavar="FILE.toml",
        help="the settings to vary: `name = [a, b]` choices, `name = {low = 1e-4, high = 1e-2, "
        "log = true}` a range, `name = value` fixed (default: learning rate, batch size and "
        "dropout around the preset)",
    )
    _flag(group, "--trials", type=int, metavar="N", help="trials to finish (default: 10)")
    _flag(group, "--timeout", type=float, metavar="SECONDS", help="start no trial after this")
    _flag(
        group,
        "--trial-budget",
        type=float,
        metavar="SECONDS",
        help="stop each trial after this much training; it scores the accuracy reached by then",
    )
    _flag(
        group,
        "--workers",
        type=int,
        metavar="N",
        help="run N trial processes on this machine, sharing the study (default: 1)",
    )
    _flag(
        group,
        "--storage",
        metavar="URL",
        help="a database Optuna's RDB storage takes (sqlite:///file.db, postgresql://...), so "
        "that several machines share one study (default: a journal file in the sweep's folder)",
    )
    _flag(group, "--study", metavar="NAME", help="the study's name in --storage")
    _flag(
        group, "--out", metavar="DIR", help="the sweep's folder (default: sweeps/<time>-<preset>)"
    )
    _flag(group, "--resume", metavar="SWEEP_DIR", help="carry on an interrupted sweep")
    _flag(
        group,
        "--save-config",
        metavar="FILE.toml",
        help="write the best trial's settings, for --config",
    )
    _add_hyperparam_flags(sweep)


def _accepted(parser: argparse.ArgumentParser, command: str | None) -> set[str]:
    """The attribute names the (sub)command's parser can set."""
    chosen = parser
    if command is not None:
        for action in parser._actions:  # argparse keeps its subparsers only here
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices[command]
    return {action.dest for action in chosen._actions} - {"help"}


def _every_flag(parser: argparse.ArgumentParser) -> list[str]:
    """The long flags of the parser and of all its subcommands."""
    flags: list[str] = []
    for action in parser._actions:
        flags += [flag for flag in action.option_strings if flag.startswith("--")]
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags += _every_flag(sub)
    return sorted(set(flags))


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """`parser.parse_args`, except that a mistyped flag is named with the nearest real one, as
    a config file's mistyped key is: "unknown option --epocs; did you mean --epochs?"."""
    typed = list(sys.argv[1:] if argv is None else argv)
    known = _every_flag(parser)
    for word in typed[: typed.index("--")] if "--" in typed else typed:
        flag = word.split("=")[0]
        # argparse takes any unambiguous start of a flag, so only a word that starts none is
        # certainly a mistake.
        if flag.startswith("--") and not any(k.startswith(flag) for k in known):
            close = difflib.get_close_matches(flag, known, n=1)
            if close:
                parser.error(f"unknown option {flag}; did you mean {close[0]}?")
    return parser.parse_args(typed)


def _refuse_foreign(args: argparse.Namespace, accepted: set[str]) -> None:
    """Refuse an option that was typed before the subcommand but means nothing to it."""
    foreign = sorted(set(vars(args)) - accepted - {"command"})
    if foreign:
        flags = ", ".join("--" + name.replace("_", "-") for name in foreign)
        raise UsageError(f"{flags} does not apply to `{PROG} {args.command}`.")


# --- namespace to requests --------------------------------------------------------------------
def resolve_hparams(args: argparse.Namespace) -> Hyperparams:
    """Preset, then the config file, then the flags typed; raises ValueError on bad values."""
    chosen = getattr(args, "preset", None)
    file = getattr(args, "config", None)
    if file is not None:
        hparams, from_file = load_toml_with_preset(file, preset_name=chosen)
        chosen = chosen or from_file
    else:
        hparams = presets.preset(chosen or presets.DEFAULT_PRESET)
    typed = {name: getattr(args, name) for name in HYPERPARAMS if hasattr(args, name)}
    return Hyperparams.from_dict(typed, base=hparams)


def preset_name(args: argparse.Namespace) -> str:
    """The preset that names runs: the flag, else the config file's, else the default."""
    chosen = getattr(args, "preset", None)
    if chosen is None and getattr(args, "config", None) is not None:
        chosen = load_toml_with_preset(args.config)[1]
    name = chosen or presets.DEFAULT_PRESET
    presets.preset(name)  # an unknown name is a ValueError listing the presets
    return name


def distribute_options(args: argparse.Namespace) -> DistributeOptions:
    """The strategy flags, checked without importing TensorFlow; raises UsageError."""
    try:
        return DistributeOptions(
            strategy=getattr(args, "strategy", "default"),
            devices=parse_devices(getattr(args, "devices", None)),
            mixed_precision=getattr(args, "mixed_precision", False),
        )
    except DistributeError as err:
        raise UsageError(str(err)) from None


def setup_from(args: argparse.Namespace) -> Setup:
    return Setup(
        hparams=resolve_hparams(args),
        preset=preset_name(args),
        data_path=getattr(args, "data", None),
        runs_dir=getattr(args, "runs_dir", None),
        tensorboard=getattr(args, "tensorboard", False),
        distribute=distribute_options(args),
    )


def app_options(args: argparse.Namespace) -> AppOptions:
    setup = setup_from(args)
    if setup.distribute.strategy == "multiworker":
        # Every worker would need its own app and the same key presses at the same moment.
        raise UsageError(
            "the app trains on one machine; for several hosts use "
            f"`{PROG} train --strategy multiworker`."
        )
    resume, model = getattr(args, "resume", None), getattr(args, "model", None)
    if resume is not None and model is not None:
        raise UsageError("pass --resume or --model, not both.")
    return AppOptions(setup, resume=resume, model=model)


def train_request(args: argparse.Namespace) -> TrainRequest:
    resume = getattr(args, "resume", None)
    typed = sorted(name for name in HYPERPARAMS if hasattr(args, name))
    if resume is not None:
        changed = [name for name in typed if name != "epochs"]
        if changed or hasattr(args, "config") or hasattr(args, "preset"):
            flags = [f"--{name.replace('_', '-')}" for name in changed]
            flags += [f"--{name}" for name in ("config", "preset") if hasattr(args, name)]
            raise UsageError(
                f"{', '.join(flags)} cannot change a run being resumed; only --epochs can "
                "(start a new run to train with other hyperparameters)."
            )
    detach = getattr(args, "detach", False)
    if detach and hasattr(args, "tta"):
        raise UsageError(
            "--tta cannot be used with --detach: a background training prints no result; "
            f"afterwards, `{PROG} evaluate --model RUN_DIR/last.keras --tta` does."
        )
    kept = [flag for flag in ("out", "overwrite", "save_config") if hasattr(args, flag)]
    if detach and kept:
        named = ", ".join(f"--{name.replace('_', '-')}" for name in kept)
        raise UsageError(
            f"{named} cannot be used with --detach: a background training keeps its model in "
            "the run directory (last.keras, best.keras); S in `mnist-tui attach` saves a copy."
        )
    setup = setup_from(args)
    return TrainRequest(
        setup,
        resume=resume,
        resume_epochs=getattr(args, "epochs", None) if resume is not None else None,
        out=getattr(args, "out", None),
        overwrite=getattr(args, "overwrite", False),
        save_config=getattr(args, "save_config", None),
        detach=detach,
        tta=getattr(args, "tta", False),
    )


def sweep_request(args: argparse.Namespace) -> Any:
    """The `SweepRequest` for `mnist-tui sweep`; raises UsageError."""
    from tui.sweep import SweepRequest  # Optuna: for this command only

    for flag in ("trials", "workers", "timeout", "trial_budget"):
        value = getattr(args, flag, None)
        if value is not None and not value > 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be above 0, not {value:g}.")
    resume = getattr(args, "resume", None)
    typed = tuple(name for name in HYPERPARAMS if hasattr(args, name))
    if resume is not None:
        kept = ("config", "preset", "space", "storage", "study", "out", "trial_budget", "data")
        changed = [f"--{name.replace('_', '-')}" for name in (*typed, *kept) if hasattr(args, name)]
        if changed:
            raise UsageError(
                f"{', '.join(changed)} cannot change a sweep being resumed; only --trials, "
                "--timeout, --workers and --save-config can."
            )
    return SweepRequest(
        setup=setup_from(args),
        space=getattr(args, "space", None),
        fixed=typed,
        trials=getattr(args, "trials", None),
        timeout=getattr(args, "timeout", None),
        trial_budget=getattr(args, "trial_budget", None),
        workers=getattr(args, "workers", 1),
        storage=getattr(args, "storage", None),
        study=getattr(args, "study", None),
        resume=resume,
        out=getattr(args, "out", None),
        save_config=getattr(args, "save_config", None),
    )


def predict_request(args: argparse.Namespace) -> PredictRequest:
    return PredictRequest(
        model=args.model,
        data_path=getattr(args, "data", None),
        index=getattr(args, "index", 0),
        count=getattr(args, "count", 8),
        misclassified=getattr(args, "misclassified", False),
        true=getattr(args, "true", None),
        predicted=getattr(args, "pred", None),
        sort=getattr(args, "sort", "index"),
        compact=getattr(args, "compact", False),
        color=not getattr(args, "no_color", False),
    )


# --- entry point ------------------------------------------------------------------------------
def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command is None:
        from tui.launch import run_app  # Textual only when the app is wanted

        return run_app(app_options(args))
    if command == "attach":
        from tui.launch import run_attached

        request = AttachRequest(getattr(args, "run", None), getattr(args, "runs_dir", None))
        return run_attached(request)
    if command in ("ps", "stop"):
        from tui.engine import commands

        if command == "ps":
            return commands.run_ps()
        runs_dir = getattr(args, "runs_dir", None)
        return commands.run_stop(StopRequest(args.run, getattr(args, "now", False), runs_dir))
    if command == "train" and getattr(args, "detach", False):
        from tui.engine import commands

        return commands.run_detached(train_request(args))
    return _headless(command, args)


def _headless(command: str, args: argparse.Namespace) -> int:
    request: Any
    if command == "train":
        request = train_request(args)
    elif command == "sweep":
        request = sweep_request(args)
    elif command == "evaluate":
        request = EvaluateRequest(
            args.model, getattr(args, "data", None), getattr(args, "tta", False)
        )
    else:
        request = predict_request(args)
    from rich.console import Console

    from tui import headless  # numpy and rich progress: commands only
    from tui.core.data.mnist import DataError
    from tui.core.platform.quiet import quiet_runtime, tensorflow_log_path
    from tui.core.runs.layout import RunError

    runners: dict[str, Callable[[Any, Console], int]] = {
        "train": headless.run_train,
        "evaluate": headless.run_evaluate,
        "predict": headless.run_predict,
    }
    if command == "sweep":
        from tui.sweep import run_sweep  # Optuna: for this command only

        runners["sweep"] = run_sweep
    with quiet_runtime(tensorflow_log_path()):
        # Created inside so that its stderr is the terminal, not the log.
        console = Console(highlight=False, soft_wrap=True)
        try:
            return runners[command](request, console)
        except (DataError, RunError) as err:
            raise UsageError(str(err)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parse(parser, argv)
    except SystemExit as exit_:  # --help, or a usage error already reported in one line
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    try:
        _refuse_foreign(args, _accepted(parser, args.command))
        if hasattr(args, "backend"):
            # Before anything imports Keras; an engine started later inherits the environment.
            select_backend(args.backend)
        return _dispatch(args)
    except (UsageError, ValueError) as err:
        say_error(str(err))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        say_error("interrupted; nothing saved.")
        return EXIT_INTERRUPTED
    except OSError as err:
        say_error(f"{err.strerror or err}: {err.filename}" if err.filename else str(err))
        return EXIT_FAILED


def entry() -> NoReturn:
    """The `mnist-tui` command and `python -m tui`: `main`, then exit."""
    status = main()
    # A command that trained or loaded a model leaves TensorFlow's and Keras's objects by the
    # hundred thousand, and the interpreter's last garbage collection over them took 1.0 s of an
    # 18 s `train` (2-core CPU, 2026-12-02). Everything is written and closed by now: moved out
    # of the collector's reach, they are simply released with the process.
    gc.freeze()
    sys.exit(status)


if __name__ == "__main__":
    entry()
