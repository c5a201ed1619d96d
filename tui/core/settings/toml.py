"""Hyperparameters in TOML: config files (`--config`, `--save-config`) and a run's hparams.toml."""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import tomli_w

from tui.core.settings.hyperparams import Hyperparams
from tui.core.settings.presets import DEFAULT_PRESET, preset

TOML_TABLE = "hyperparams"
TOML_TOP_KEYS = ("preset",)
"""Keys a config file may have outside the `[hyperparams]` table."""


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"config file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"config file {path} cannot be read: {err}.") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"config file {path} is not valid TOML: {err}.") from None


def nearest(name: str, known: list[str]) -> str:
    """ "; did you mean 'x'?" for the closest of `known`, else the list of them."""
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}."


def load_toml_with_preset(
    path: str | Path, preset_name: str | None = None
) -> tuple[Hyperparams, str | None]:
    """Read a config file: `preset = "name"` (top level or in the table) and a
    `[hyperparams]` table (or the same keys at the top level).

    Args:
        path: the TOML file.
        preset_name: a preset chosen elsewhere (`--preset`), which wins over the file's.

    Returns:
        The hyperparameters (the preset's, changed by the file's keys) and the file's preset.

    Raises:
        ValueError: an unreadable file, an unknown table or key (the nearest valid one named),
            or a value out of range; each names the file.
    """
    path = Path(path)
    raw = _read_toml(path)
    known = sorted(f.name for f in fields(Hyperparams))
    table: dict[str, Any]
    if TOML_TABLE in raw:
        table = raw[TOML_TABLE]
        if not isinstance(table, dict):
            raise ValueError(f"config file {path}: [{TOML_TABLE}] must be a table.")
        table = dict(table)
        for key in raw:
            if key in known:
                raise ValueError(
                    f"config file {path}: {key} is outside the [{TOML_TABLE}] table; move it "
                    "under the table."
                )
            if key not in (TOML_TABLE, *TOML_TOP_KEYS):
                where = "table" if isinstance(raw[key], dict) else "key"
                hint = nearest(key, [TOML_TABLE, *TOML_TOP_KEYS, *known])
                raise ValueError(f"config file {path}: unknown {where} {key!r}{hint}")
        top = {key: raw[key] for key in TOML_TOP_KEYS if key in raw}
    else:
        table, top = dict(raw), {}
        for key, value in table.items():
            if isinstance(value, dict):
                hint = nearest(key, [TOML_TABLE])
                raise ValueError(f"config file {path}: unknown table [{key}]{hint}")
    file_preset = table.pop("preset", None) or top.get("preset")
    if file_preset is not None and not isinstance(file_preset, str):
        raise ValueError(f"config file {path}: preset = {file_preset!r} must be a preset name.")
    for key in table:
        if key not in known:
            raise ValueError(
                f"config file {path}: unknown hyperparameter {key!r}{nearest(key, known)}"
            )
    filters = table.get("conv_filters")
    if isinstance(filters, str):
        raise ValueError(
            f"config file {path}: conv_filters = {filters!r} must be a TOML list of whole "
            "numbers, e.g. conv_filters = [32, 64]."
        )
    try:
        base = preset(preset_name or file_preset or DEFAULT_PRESET)
        return Hyperparams.from_dict(table, base), file_preset
    except ValueError as err:
        raise ValueError(f"config file {path}: {err}") from None


def load_toml(path: str | Path, base: Hyperparams | None = None) -> Hyperparams:
    """Read hyperparameters written by `dump_toml` (a run's hparams.toml), missing keys from
    `base`. Errors are `ValueError` naming the file."""
    path = Path(path)
    raw = _read_toml(path)
    table = raw.get(TOML_TABLE, raw)
    if not isinstance(table, dict):
        raise ValueError(f"config file {path}: [{TOML_TABLE}] must be a table.")
    try:
        return Hyperparams.from_dict(table, base)
    except ValueError as err:
        raise ValueError(f"config file {path}: {err}") from None


def dump_toml(hparams: Hyperparams) -> str:
    """TOML text of the hyperparameters under a `[hyperparams]` table."""
    return tomli_w.dumps({TOML_TABLE: hparams.to_dict()})


def save_toml(hparams: Hyperparams, path: str | Path) -> None:
    """Write the hyperparameters as TOML."""
    Path(path).write_text(dump_toml(hparams), encoding="utf-8")
