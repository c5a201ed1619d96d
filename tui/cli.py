"""Command line: argparse into typed requests, then the app or a command.

`mnist-tui` starts the app (on a background engine); `train`, `evaluate`, `predict` and
`audit` run headless; `attach`, `ps` and `stop` reach live engines. The flags themselves are built
in `tui.flags`. Every flag is absent unless typed (argparse's SUPPRESS), so that a flag given
before the subcommand is honoured like one given after it, and one the subcommand does not take is
refused in one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import gc
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from tui import records, sweep_args
from tui.core.platform.backend import select_backend
from tui.core.platform.placement import (
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
from tui.flags import (
    add_app_flags,
    add_backend_flag,
    add_data_flag,
    add_hyperparam_flags,
    add_runs_dir_flag,
    add_setup_flags,
    add_tta_flag,
    converter,
    flag,
)

SORTS = ("index", "confidence", "loss")
"""`--sort` orders (the values of `PredictionSort`, spelt here so the app's start skips numpy)."""


# --- argument parsing -------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        say_error(f"{message} (see {self.prog} --help)")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: the app's flags plus the subcommands."""
    parser = _Parser(
        prog=PROG,
        description="Train a Keras CNN on MNIST and watch and steer it live in the terminal. "
        "Without a command, starts the app; training there goes on in the background when the "
        "terminal closes (`mnist-tui attach` comes back to it).",
    )
    add_setup_flags(parser)
    add_app_flags(parser)
    add_hyperparam_flags(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    train = commands.add_parser(
        "train", help="train headless with a progress bar and a metrics table"
    )
    add_setup_flags(train)
    flag(
        train,
        "--out",
        metavar="PATH",
        help="where to save the model (default: ./models/<preset>-<timestamp>.keras); "
        "a path ending in .keras names the file itself",
    )
    flag(train, "--overwrite", action="store_true", help="replace an existing --out file")
    flag(train, "--save-config", metavar="FILE.toml", help="write the hyperparameters used")
    flag(
        train,
        "--resume",
        metavar="RUN_DIR",
        help="continue a run from its last completed epoch; --epochs sets a new target",
    )
    flag(
        train,
        "--from",
        dest="branch_from",
        metavar="RUN[@EPOCH]",
        help="train a branch: a new run from that epoch's checkpoint of RUN (a run directory "
        "or its name; no epoch: the last), with the settings typed changed",
    )
    flag(
        train,
        "--keep-checkpoints",
        type=converter("keep-checkpoints", "int"),
        metavar="N",
        help="keep the checkpoints of the newest N epochs, and of the best and the last "
        "(default: every epoch while they take under 1 GiB together)",
    )
    flag(
        train,
        "--detach",
        action="store_true",
        help="train in a background engine and return at once; `mnist-tui attach` follows it",
    )
    flag(
        train,
        "--exclude-file",
        metavar="FILE",
        help="leave out these training digits: indices one a line or separated by commas "
        "(`mnist-tui audit --write-exclude` writes one); the run records them",
    )
    add_tta_flag(train)
    add_hyperparam_flags(train)
    sweep_args.add_sweep_command(commands)
    records.add_audit_command(commands)

    evaluate = commands.add_parser("evaluate", help="test loss and accuracy of a saved model")
    evaluate.add_argument("--model", required=True, metavar="PATH")
    add_data_flag(evaluate)
    add_backend_flag(evaluate)
    add_tta_flag(evaluate)

    predict = commands.add_parser("predict", help="show test digits with the model's guesses")
    predict.add_argument("--model", required=True, metavar="PATH")
    add_data_flag(predict)
    add_backend_flag(predict)
    flag(predict, "--index", type=int, metavar="I", help="first test image (default: 0)")
    flag(predict, "--count", type=int, metavar="N", help="how many digits (default: 8)")
    flag(predict, "--misclassified", action="store_true", help="only digits the model got wrong")
    flag(predict, "--true", type=int, metavar="K", help="only digits of true class K")
    flag(predict, "--pred", type=int, metavar="K", help="only digits predicted as K")
    flag(
        predict,
        "--sort",
        choices=SORTS,
        help="index (default), confidence (least confident first) or loss (highest first)",
    )
    flag(predict, "--compact", action="store_true", help="half-size digits")
    flag(predict, "--no-color", action="store_true", help="plain characters, no colour")

    attach = commands.add_parser(
        "attach",
        help="open the app on a live training (the newest, or RUN's), or a sweep's screen (with "
        "no RUN and no live training: the newest live sweep's)",
    )
    attach.add_argument(
        "run", nargs="?", metavar="RUN", help="a run or sweep directory, or its name"
    )
    add_runs_dir_flag(attach)

    commands.add_parser(
        "ps", help="list live trainings (run, phase, epoch, accuracy, ETA, pid) and sweeps"
    )
    records.add_record_commands(commands)

    stop = commands.add_parser(
        "stop", help="stop a live training after its epoch, or a sweep after its trial (or --now)"
    )
    stop.add_argument("run", nargs="?", metavar="RUN", help="a run or sweep directory, or its name")
    flag(stop, "--now", action="store_true", help="stop within a group of batches")
    add_runs_dir_flag(stop)
    return parser


def _exclusion(args: argparse.Namespace) -> tuple[int, ...]:
    """The indices `--exclude-file` names (none without it); raises UsageError."""
    file = getattr(args, "exclude_file", None)
    if file is None:
        return ()
    for name in ("resume", "detach"):
        if getattr(args, name, False):
            raise UsageError(
                f"--exclude-file cannot be used with --{name}: "
                + (
                    "a resumed run keeps leaving out the digits it recorded."
                    if name == "resume"
                    else "train it in the foreground (a background engine does not take it yet)."
                )
            )
    from tui.core.data.exclusion import read_exclude_file
    from tui.core.data.mnist import DataError

    try:
        indices = read_exclude_file(file)
    except DataError as err:
        raise UsageError(f"{err}.") from None
    if not indices:
        raise UsageError(f"exclude file {file} names no training digits.")
    return indices


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
    typed = {name: getattr(args, name) for name in SETTINGS if hasattr(args, name)}
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
        keep_checkpoints=getattr(args, "keep_checkpoints", None),
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
    typed = sorted(name for name in SETTINGS if hasattr(args, name))
    keep = getattr(args, "keep_checkpoints", None)
    if keep is not None and keep < 0:
        raise UsageError(f"--keep-checkpoints must be 0 or more, not {keep}.")
    branch_from = getattr(args, "branch_from", None)
    if branch_from is not None:
        return _branch_request(args, branch_from, typed)
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
    exclude = _exclusion(args)
    setup = dataclasses.replace(setup_from(args), exclude=exclude)
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


def _branch_request(args: argparse.Namespace, branch_from: str, typed: list[str]) -> TrainRequest:
    """`train --from`: the typed settings go over the parent's, not over a preset."""
    from tui.core.experiments.branch import refused_changes

    for name in ("resume", "config", "preset", "detach"):
        if hasattr(args, name):
            raise UsageError(
                f"--{name} cannot be combined with --from: a branch starts from its parent's "
                "checkpoint and settings, with only the settings typed changed."
            )
    if getattr(args, "strategy", None) == "multiworker":
        raise UsageError("--from cannot be combined with --strategy multiworker yet.")
    refused = refused_changes(typed)
    if refused is not None:
        raise UsageError(refused)
    setup = Setup(
        hparams=presets.preset(presets.DEFAULT_PRESET),  # the parent's, once it is read
        data_path=getattr(args, "data", None),
        runs_dir=getattr(args, "runs_dir", None),
        tensorboard=getattr(args, "tensorboard", False),
        distribute=distribute_options(args),
        keep_checkpoints=getattr(args, "keep_checkpoints", None),
    )
    return TrainRequest(
        setup,
        out=getattr(args, "out", None),
        overwrite=getattr(args, "overwrite", False),
        save_config=getattr(args, "save_config", None),
        tta=getattr(args, "tta", False),
        branch_from=branch_from,
        branch_changes=tuple((name, getattr(args, name)) for name in typed),
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
    if command in ("compare", "note"):
        return records.run_record_command(command, args)
    if command == "train" and getattr(args, "detach", False):
        from tui.engine import commands

        return commands.run_detached(train_request(args))
    return _headless(command, args)


def _headless(command: str, args: argparse.Namespace) -> int:
    request: Any
    if command == "train":
        request = train_request(args)
    elif command == "sweep":
        request = sweep_args.sweep_request(args, setup_from(args))
    elif command == "audit":
        request = records.audit_request(args)
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
    if command == "audit":
        from tui.audit import run_audit

        runners["audit"] = run_audit
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
