"""The search space of a sweep: which settings vary and over what (choices or a range), read
from a TOML file or made around a preset, checked before anything trains."""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from tui.core.settings.hyperparams import Hyperparams
from tui.core.settings.toml import nearest
from tui.core.training import budget

if TYPE_CHECKING:
    from optuna.trial import BaseTrial

Value: TypeAlias = bool | int | float | str | tuple[int, ...]
"""One setting's value, as `Hyperparams` holds it."""

RANGE_KEYS = ("low", "high", "log", "step")
NUMERIC = ("int", "float")


def _field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in fields(Hyperparams)}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def encode(value: Value) -> bool | int | float | str:
    """What Optuna stores for a choice: it takes scalars only, so a list of filters is text."""
    if isinstance(value, tuple):
        return ",".join(str(n) for n in value)
    return value


def decode(name: str, value: object) -> Value:
    """The setting's value back from what Optuna stored (see `encode`)."""
    if name == "conv_filters" and isinstance(value, str):
        return tuple(int(part) for part in value.split(","))
    assert isinstance(value, bool | int | float | str | tuple)
    return value


def show(value: object) -> str:
    """A value as short as it reads well: 0.00316, 128, 16,32."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, tuple):
        return ",".join(str(n) for n in value)
    return str(value)


@dataclass(frozen=True)
class Choice:
    """A setting that takes one of a few values."""

    name: str
    options: tuple[Value, ...]

    def suggest(self, trial: BaseTrial) -> Value:
        picked = trial.suggest_categorical(self.name, [encode(v) for v in self.options])
        return decode(self.name, picked)

    def extremes(self) -> tuple[Value, ...]:
        return self.options

    def spec(self) -> list[Any]:
        return [list(v) if isinstance(v, tuple) else v for v in self.options]


@dataclass(frozen=True)
class Range:
    """A numeric setting drawn from [low, high], on a log scale or in steps if asked."""

    name: str
    low: int | float
    high: int | float
    integer: bool
    log: bool = False
    step: int | float | None = None

    def suggest(self, trial: BaseTrial) -> Value:
        if self.integer:
            step = int(self.step or 1)
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=step, log=self.log
            )
        return trial.suggest_float(
            self.name, float(self.low), float(self.high), step=self.step, log=self.log
        )

    def extremes(self) -> tuple[Value, ...]:
        return (self.low, self.high)

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"low": self.low, "high": self.high, "log": self.log}
        if self.step is not None:
            out["step"] = self.step
        return out


Dimension: TypeAlias = Choice | Range


@dataclass(frozen=True)
class SearchSpace:
    """The settings a sweep varies (`dimensions`) over the ones it keeps (`base`)."""

    base: Hyperparams
    """Every setting a trial does not draw: the preset's, the config file's, the flags'."""
    dimensions: tuple[Dimension, ...]

    @property
    def varied(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    def suggest(self, trial: BaseTrial) -> Hyperparams:
        """A trial's settings; a `ValueError` when the values drawn do not go together."""
        drawn = {d.name: d.suggest(trial) for d in self.dimensions}
        return self.base.with_changes(**drawn)

    def to_dict(self) -> dict[str, Any]:
        """The space as JSON can hold it; `from_dict` reads it back."""
        return {
            "base": self.base.to_dict(),
            "dimensions": {d.name: d.spec() for d in self.dimensions},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> SearchSpace:
        base = Hyperparams.from_dict(data["base"])
        return parse_space(data["dimensions"], base, where)

    def check(self, where: str, available: int | None) -> None:
        """Refuse, in one sentence, a space with nothing to vary, a value a setting refuses, or
        a largest network that cannot fit in `available` bytes of memory."""
        if not self.dimensions:
            raise ValueError(
                f"{where} varies nothing; give a list of choices or a range for at least one "
                "setting."
            )
        for dimension in self.dimensions:
            for value in dimension.extremes():
                try:
                    self.base.with_changes(**{dimension.name: value})
                except ValueError as err:
                    raise ValueError(f"{where}: {err}") from None
        largest, smallest = self._corner(max), self._corner(min)
        for corner, label in ((smallest, "even at its smallest"), (largest, "at its largest")):
            if corner is None:
                continue
            verdict = budget.check(corner, available)
            if verdict.refuse:
                settings = ", ".join(f"{n} = {show(getattr(corner, n))}" for n in self.varied)
                raise ValueError(f"{where} {label} ({settings}): {verdict.reason}")

    def _corner(self, pick: Any) -> Hyperparams | None:
        """The settings that each, on its own, make the network largest (`max`) or smallest
        (`min`) in memory; None when they do not go together (trials will say so)."""
        chosen: dict[str, Value] = {}
        for dimension in self.dimensions:
            sized = [
                (budget.estimate(self.base.with_changes(**{dimension.name: v})).total_bytes, i)
                for i, v in enumerate(dimension.extremes())
            ]
            chosen[dimension.name] = dimension.extremes()[pick(sized)[1]]
        try:
            return self.base.with_changes(**chosen)
        except ValueError:
            return None


def load_space(path: str | Path, base: Hyperparams, fixed: Collection[str] = ()) -> SearchSpace:
    """Read a space file: `name = value` keeps a setting, `name = [a, b]` chooses among
    values, `name = {low = 1e-4, high = 1e-2, log = true}` draws from a range.

    Args:
        path: the TOML file.
        base: the settings the space does not vary.
        fixed: settings typed on the command line, which the file may not vary.

    Raises:
        ValueError: one sentence naming the file and what is wrong.
    """
    path = Path(path)
    where = f"space file {path}"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{where} does not exist.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{where} cannot be read: {err}.") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{where} is not valid TOML: {err}.") from None
    space = parse_space(raw, base, where)
    for name in space.varied:
        if name in fixed:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{where} varies {name}, which {flag} fixes; drop one of the two.")
    return space


def parse_space(raw: Mapping[str, Any], base: Hyperparams, where: str) -> SearchSpace:
    """The space from a mapping as `load_space` reads it (see there); checked, but not
    against memory (`SearchSpace.check` does that)."""
    types = _field_types()
    known = sorted(types)
    kept: dict[str, Any] = {}
    dimensions: list[Dimension] = []
    for name, value in raw.items():
        if name not in types:
            raise ValueError(f"{where}: unknown setting {name!r}{nearest(name, known)}")
        kind = types[name]
        if isinstance(value, dict):
            dimensions.append(_range(name, value, kind, where))
        elif isinstance(value, list) and (
            name != "conv_filters" or any(isinstance(v, list) for v in value)
        ):
            dimensions.append(_choice(name, value, where))
        else:
            kept[name] = value
    try:
        base = Hyperparams.from_dict(kept, base)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    return SearchSpace(base, tuple(dimensions))


def _range(name: str, spec: Mapping[str, Any], kind: str, where: str) -> Range:
    for key in spec:
        if key not in RANGE_KEYS:
            hint = nearest(key, list(RANGE_KEYS))
            raise ValueError(f"{where}: the range for {name} has an unknown key {key!r}{hint}")
    if kind not in NUMERIC:
        raise ValueError(
            f"{where}: {name} is not a number, so it cannot take a range; give a list of "
            "choices instead."
        )
    if "low" not in spec or "high" not in spec:
        raise ValueError(
            f"{where}: the range for {name} needs both low and high, e.g. "
            f"{name} = {{low = 1, high = 4}}."
        )
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    if not _number(low) or not _number(high) or (step is not None and not _number(step)):
        raise ValueError(f"{where}: the range for {name} needs numbers for low, high and step.")
    integer = kind == "int"
    if integer and not all(isinstance(v, int) for v in (low, high, step or 1)):
        raise ValueError(
            f"{where}: {name} takes whole numbers, so its range's low, high and step must be "
            "whole numbers too."
        )
    if not isinstance(log, bool):
        raise ValueError(f"{where}: log in the range for {name} must be true or false.")
    if low == high:
        raise ValueError(
            f"{where}: the range for {name} is empty (low = high = {low}); give a fixed value "
            f"instead ({name} = {low})."
        )
    if low > high:
        raise ValueError(
            f"{where}: the range for {name} is reversed (low {low} is above high {high}); "
            "swap them."
        )
    if log and low <= 0:
        raise ValueError(
            f"{where}: a log range must stay above 0, but {name}'s starts at {low}; raise low "
            "or drop log."
        )
    if step is not None and (step <= 0 or log):
        raise ValueError(
            f"{where}: the step of {name}'s range must be above 0 and cannot go with log."
        )
    return Range(name, low, high, integer, log, step)


def _choice(name: str, values: list[Any], where: str) -> Choice:
    if not values:
        raise ValueError(f"{where}: {name} = [] has no choices; give at least one.")
    options: list[Value] = []
    for value in values:
        option: Value
        if name == "conv_filters":
            if not isinstance(value, list) or not all(
                isinstance(n, int) and not isinstance(n, bool) for n in value
            ):
                raise ValueError(
                    f"{where}: conv_filters choices are lists of whole numbers, e.g. "
                    "conv_filters = [[16, 32], [32, 64]]."
                )
            option = tuple(value)
        elif isinstance(value, bool | int | float | str):
            option = value
        else:
            raise ValueError(f"{where}: {name}'s choice {value!r} is not a single value.")
        if option in options:
            raise ValueError(f"{where}: {name} lists {show(option)} twice.")
        options.append(option)
    return Choice(name, tuple(options))


def default_space(base: Hyperparams, fixed: Collection[str] = ()) -> SearchSpace:
    """The space without `--space`: the learning rate from a fifth to five times the preset's
    (log), the batch size halved, kept and doubled, and dropout from 0 to 0.5 (or around a
    larger preset value). Settings in `fixed` (typed on the command line) stay as typed."""
    rate = base.learning_rate
    batches = sorted(
        {max(1, base.batch_size // 2), base.batch_size, min(8192, base.batch_size * 2)}
    )
    top_dropout = 0.5 if base.dropout <= 0.4 else min(0.9, base.dropout + 0.2)
    dimensions: dict[str, Any] = {
        "learning_rate": {"low": rate / 5, "high": min(rate * 5, 1.0), "log": True},
        "batch_size": batches,
        "dropout": {"low": 0.0, "high": top_dropout},
    }
    left = {name: spec for name, spec in dimensions.items() if name not in fixed}
    if not left:
        raise ValueError(
            "the flags fix every setting the default space varies (learning_rate, batch_size, "
            "dropout); pass --space FILE to vary others."
        )
    return parse_space(left, base, "the default space")
