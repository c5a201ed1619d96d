"""Hyperparams: bounds and their messages, TOML round trips, and the presets' exact models."""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable
from dataclasses import Field, fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tui.cli import build_parser, resolve_hparams
from tui.core.settings.hyperparams import (
    CHOICES,
    FLOAT_BOUNDS,
    INT_BOUNDS,
    SETTINGS,
    Hyperparams,
)
from tui.core.settings.presets import DEFAULT_PRESET, PRESETS, preset
from tui.core.settings.toml import dump_toml, load_toml, load_toml_with_preset, save_toml

# tmp_path is shared across examples; each example overwrites its own file, which is fine.
_SETTINGS = settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _message(err: pytest.ExceptionInfo[ValueError]) -> str:
    return str(err.value)


def _make(name: str, value: object) -> Hyperparams:
    """Hyperparams with one field set, whatever its type (the point is to see it refused)."""
    values: dict[str, Any] = {name: value}
    return Hyperparams(**values)


# --- bounds -----------------------------------------------------------------------------------
@st.composite
def int_out_of_range(draw: st.DrawFn) -> tuple[str, int]:
    name = draw(st.sampled_from(sorted(INT_BOUNDS)))
    low, high = INT_BOUNDS[name]
    value = draw(st.integers(max_value=low - 1) | st.integers(min_value=high + 1))
    return name, value


@given(int_out_of_range())
def test_int_out_of_range_names_field_value_and_range(case: tuple[str, int]) -> None:
    name, value = case
    low, high = INT_BOUNDS[name]
    with pytest.raises(ValueError) as err:
        _make(name, value)
    message = _message(err)
    assert message.startswith(f"{name} = {value}")
    assert f"from {low} to {high}" in message


@st.composite
def float_out_of_range(draw: st.DrawFn) -> tuple[str, float]:
    name = draw(st.sampled_from(sorted(FLOAT_BOUNDS)))
    low, high, low_open, high_open = FLOAT_BOUNDS[name]
    below = st.floats(max_value=low, exclude_max=not low_open, allow_nan=False)
    above = st.floats(min_value=high, exclude_min=not high_open, allow_nan=False)
    value = draw((below | above).filter(math.isfinite))
    return name, value


@given(float_out_of_range())
def test_float_out_of_range_names_field_value_and_range(case: tuple[str, float]) -> None:
    name, value = case
    low, high, low_open, high_open = FLOAT_BOUNDS[name]
    with pytest.raises(ValueError) as err:
        _make(name, value)
    message = _message(err)
    assert message.startswith(f"{name} = {value!r}")
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    assert interval in message


@pytest.mark.parametrize("name", sorted(FLOAT_BOUNDS))
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"^{name} = .* finite"):
        _make(name, value)


@given(st.sampled_from(sorted(CHOICES)), st.text(max_size=12))
def test_unknown_choice_lists_the_allowed_ones(name: str, value: str) -> None:
    assume(value not in CHOICES[name])
    with pytest.raises(ValueError) as err:
        _make(name, value)
    message = _message(err)
    assert message.startswith(f"{name} = {value!r}")
    assert ", ".join(CHOICES[name]) in message


@given(st.lists(st.integers(1, 512), min_size=5, max_size=8) | st.just([]))
def test_conv_filters_block_count(blocks: list[int]) -> None:
    with pytest.raises(ValueError, match=rf"^conv_filters has {len(blocks)} blocks; use 1 to 4"):
        Hyperparams(conv_filters=tuple(blocks), padding="same")


@given(st.integers(max_value=0) | st.integers(min_value=513))
def test_conv_filters_per_block_range(filters: int) -> None:
    with pytest.raises(ValueError) as err:
        Hyperparams(conv_filters=(32, filters))
    assert _message(err).startswith(f"conv_filters = {filters}")
    assert "from 1 to 512" in _message(err)


@pytest.mark.parametrize(
    ("name", "value"),
    [("epochs", "5"), ("epochs", 2.0), ("epochs", True), ("learning_rate", "0.1"),
     ("batch_norm", 1), ("optimizer", 3), ("conv_filters", ("32",))],
)  # fmt: skip
def test_wrong_types_are_refused_by_name(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"^{name} = "):
        _make(name, value)


def test_too_many_valid_blocks_say_the_image_vanishes() -> None:
    with pytest.raises(ValueError, match="shrink the 28x28 image to nothing"):
        Hyperparams(conv_filters=(8, 8, 8, 8), kernel_size=5, padding="valid")


# --- TOML -------------------------------------------------------------------------------------
def _finite(low: float, high: float, low_open: bool, high_open: bool) -> st.SearchStrategy[float]:
    return st.floats(
        min_value=low, max_value=high, exclude_min=low_open, exclude_max=high_open,
        allow_nan=False, allow_infinity=False,
    )  # fmt: skip


def _valid_values(f: Field[Any]) -> st.SearchStrategy[Any]:
    """Any value that field `f` may hold on its own, drawn from its spec."""
    spec, kind = SETTINGS[f.name], str(f.type)
    if spec.choices:
        return st.sampled_from(spec.choices)
    if kind == "bool":
        return st.booleans()
    bounds = spec.bounds
    assert bounds is not None, f"{f.name} has no bounds to draw from"
    if kind == "float":
        return _finite(bounds.low, bounds.high, bounds.low_open, bounds.high_open)
    whole = st.integers(int(bounds.low), int(bounds.high))
    if kind == "int":
        return whole
    assert kind.startswith("tuple") and spec.length is not None, f"{f.name}: {kind}"
    length = spec.length
    return st.lists(whole, min_size=int(length.low), max_size=int(length.high)).map(tuple)


@st.composite
def valid_hparams(draw: st.DrawFn) -> Hyperparams:
    values = {f.name: draw(_valid_values(f)) for f in fields(Hyperparams)}
    try:
        return Hyperparams(**values)
    except ValueError:
        # Only the image-vanishes rule couples fields; everything else was drawn in range.
        assume(False)
        raise


def test_every_field_can_be_drawn_from_its_spec() -> None:
    """So that the round trips below cover a field added to Hyperparams with no change here."""
    for f in fields(Hyperparams):
        assert _valid_values(f) is not None


@_SETTINGS
@given(valid_hparams())
def test_valid_hparams_round_trip_through_toml(tmp_path: Path, hparams: Hyperparams) -> None:
    path = tmp_path / "hp.toml"
    save_toml(hparams, path)
    assert load_toml(path) == hparams


@_SETTINGS
@given(valid_hparams())
def test_valid_hparams_round_trip_through_a_config_file(
    tmp_path: Path, hparams: Hyperparams
) -> None:
    """What `--save-config` writes, `--config` reads back unchanged."""
    path = tmp_path / "config.toml"
    path.write_text(dump_toml(hparams), encoding="utf-8")
    assert load_toml_with_preset(path) == (hparams, None)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_top_level_preset_and_a_hyperparams_table_are_honoured(tmp_path: Path) -> None:
    """The README's wording: the preset on top, the changes to it in the table."""
    path = write_config(tmp_path, 'preset = "fast"\n\n[hyperparams]\nepochs = 3\n')
    assert load_toml_with_preset(path) == (preset("fast").with_changes(epochs=3), "fast")


@pytest.mark.parametrize(
    "text",
    [
        '[hyperparams]\npreset = "seed"\nepochs = 2\n',
        'preset = "seed"\nepochs = 2\n',
    ],
    ids=["in-the-table", "no-table"],
)
def test_the_preset_may_also_sit_in_the_table_or_without_one(tmp_path: Path, text: str) -> None:
    path = write_config(tmp_path, text)
    assert load_toml_with_preset(path) == (preset("seed").with_changes(epochs=2), "seed")


def test_a_preset_chosen_on_the_command_line_wins_over_the_files(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'preset = "fast"\n[hyperparams]\nepochs = 3\n')
    assert load_toml_with_preset(path, "seed") == (preset("seed").with_changes(epochs=3), "fast")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[hyperparam]\nepochs = 3\n", "unknown table [hyperparam]; did you mean 'hyperparams'?"),
        (
            'preset = "fast"\n[hyperparams]\nepochs = 3\n[hyperparam]\nepochs = 4\n',
            "unknown table 'hyperparam'; did you mean 'hyperparams'?",
        ),
        ("[hyperparams]\nepoch = 3\n", "unknown hyperparameter 'epoch'; did you mean 'epochs'?"),
        ("epoch = 3\n", "unknown hyperparameter 'epoch'; did you mean 'epochs'?"),
        (
            'pre_set = "fast"\n[hyperparams]\nepochs = 3\n',
            "unknown key 'pre_set'; did you mean 'preset'?",
        ),
        (
            "epochs = 3\n[hyperparams]\nbatch_size = 32\n",
            "epochs is outside the [hyperparams] table; move it under the table.",
        ),
        (
            '[hyperparams]\nconv_filters = "32,64"\n',
            "conv_filters = '32,64' must be a TOML list of whole numbers, e.g. "
            "conv_filters = [32, 64].",
        ),
        ("[hyperparams]\nwarp_speed = 9\n", "unknown hyperparameter 'warp_speed'; known: "),
        ("[hyperparams]\nepochs = 0\n", "epochs = 0 is out of range"),
        ('preset = "nope"\n', "unknown preset 'nope'; choose one of: default, seed"),
        ("preset = 3\n", "preset = 3 must be a preset name."),
        ("hyperparams = 3\n", "[hyperparams] must be a table."),
        ("epochs = [\n", "is not valid TOML"),
    ],
    ids=[
        "table-typo",
        "second-table-typo",
        "key-typo",
        "key-typo-no-table",
        "top-key-typo",
        "outside-the-table",
        "filters-as-text",
        "unknown-key",
        "out-of-range",
        "unknown-preset",
        "preset-not-text",
        "table-not-a-table",
        "not-toml",
    ],
)
def test_config_file_mistakes_name_the_key_and_the_fix(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ValueError) as err:
        load_toml_with_preset(path)
    message = _message(err)
    assert message.startswith(f"config file {path}")
    assert expected in message
    assert "\n" not in message


def test_a_run_hparams_file_misses_keys_from_the_base(tmp_path: Path) -> None:
    path = tmp_path / "hparams.toml"
    path.write_text("[hyperparams]\nepochs = 2\n", encoding="utf-8")
    assert load_toml(path) == Hyperparams(epochs=2)
    assert load_toml(path, preset("seed")) == preset("seed").with_changes(epochs=2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("epochs = 3\nwarp_speed = 9\n", r"unknown hyperparameter warp_speed"),
        ("epochs = [\n", r"is not valid TOML"),
        ("epochs = 0\n", r"epochs = 0 is out of range"),
        ("hyperparams = 3\n", r"\[hyperparams\] must be a table"),
    ],
)
def test_bad_run_hparams_files_name_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^config file .*bad\.toml.*{expected}"):
        load_toml(path)


@pytest.mark.parametrize("load", [load_toml, load_toml_with_preset])
def test_missing_toml_file(tmp_path: Path, load: Callable[[Path], object]) -> None:
    with pytest.raises(ValueError, match=r"config file .*missing.toml does not exist"):
        load(tmp_path / "missing.toml")


# --- presets ----------------------------------------------------------------------------------
def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as err:
        preset("turbo")
    assert "'turbo'" in _message(err)
    for name in PRESETS:
        assert name in _message(err)


def test_unknown_keys_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown hyperparameter colour, speed; known: "):
        Hyperparams.from_dict({"speed": 1, "colour": "red", "epochs": 2})


def test_seed_preset_hyperparameters_match_the_original_script() -> None:
    hp = preset("seed")
    assert (hp.batch_size, hp.epochs, hp.optimizer, hp.learning_rate) == (32, 5, "adam", 1e-3)
    assert hp.validation_split == 0.0
    assert hp.output_activation == "sigmoid"
    assert hp.architecture_summary() == "Conv32-Pool-Conv64-Pool-Flatten-Dense64-Dense10(sigmoid)"


def _layers(model: Any) -> list[tuple[str, Any]]:
    """(class name, the figure that matters) per layer."""
    out: list[tuple[str, Any]] = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            out.append((kind, (layer.filters, tuple(layer.kernel_size), layer.activation.__name__)))
        elif kind == "Dense":
            out.append((kind, (layer.units, layer.activation.__name__)))
        else:
            out.append((kind, None))
    return out


def test_seed_preset_builds_the_original_network() -> None:
    from tui.core.training.model import build_model

    model = build_model(preset("seed"))
    assert _layers(model) == [
        ("Conv2D", (32, (3, 3), "relu")),
        ("MaxPooling2D", None),
        ("Conv2D", (64, (3, 3), "relu")),
        ("MaxPooling2D", None),
        ("Flatten", None),
        ("Dense", (64, "relu")),
        ("Dense", (10, "sigmoid")),
    ]
    assert model.count_params() == 121_930
    assert type(model.optimizer).__name__ == "Adam"


def test_keras_example_preset_parameter_count() -> None:
    from tui.core.training.model import build_model

    model = build_model(preset("keras-example"))
    assert model.count_params() == 34_826
    assert [kind for kind, _ in _layers(model)].count("Dropout") == 1
    assert re.fullmatch(r"Conv32-Pool-Conv64-Pool-Flatten-Dense10\(softmax\)",
                        preset("keras-example").architecture_summary())  # fmt: skip


def test_every_preset_is_valid_and_described() -> None:
    assert DEFAULT_PRESET in PRESETS
    for name, entry in PRESETS.items():
        assert entry.name == name
        assert entry.description
        assert isinstance(entry.hparams, Hyperparams)


# --- the first stride ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"first_stride": 2, "kernel_size": 5},
        {"first_stride": 2, "kernel_size": 5, "padding": "same", "conv_filters": (32, 64, 128)},
        {"first_stride": 2, "padding": "valid", "batch_norm": True, "dense_units": 0},
    ],
    ids=["default", "stride2-valid-k5", "stride2-same-3blocks", "stride2-bn-no-dense"],
)
def test_a_strided_network_is_what_the_memory_estimate_and_summary_say(
    changes: dict[str, Any],
) -> None:
    from tui.core.training.budget import estimate
    from tui.core.training.model import build_model

    hp = Hyperparams(**changes)
    model = build_model(hp, compile_model=False)
    assert estimate(hp).params == model.count_params()
    first = model.get_layer("conv1")
    side = 14 if hp.padding == "same" and hp.first_stride == 2 else None
    if side is not None:
        assert first.output.shape[1:3] == (side, side)
    assert tuple(first.strides) == (hp.first_stride, hp.first_stride)
    last_pool = [layer for layer in model.layers if layer.name.startswith("pool")][-1]
    assert last_pool.output.shape[1] == hp.feature_map_size()
    assert hp.architecture_summary().startswith(
        "Conv32/2-Pool" if hp.first_stride == 2 else "Conv32-Pool"
    )


def test_a_stride_that_leaves_nothing_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"after a first stride of 2 .* or a first stride of 1"):
        Hyperparams(first_stride=2, kernel_size=7, conv_filters=(32, 64, 64))
    # With same padding only the pools shrink the image: a smaller kernel would not help.
    with pytest.raises(ValueError, match=r"nothing; use fewer blocks or a first stride of 1\.$"):
        Hyperparams(first_stride=2, padding="same", conv_filters=(8, 8, 8, 8))
    with pytest.raises(ValueError, match=r"first_stride = 3 is out of range"):
        Hyperparams(first_stride=3)


# --- blocks of several convolutions --------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "summary"),
    [
        (
            {"convs_per_block": 2, "padding": "same", "batch_norm": True},
            "Conv32x2-Pool-Conv64x2-Pool",
        ),
        ({"convs_per_block": 2, "padding": "valid"}, "Conv32x2-Pool-Conv64x2-Pool"),
        (
            {"convs_per_block": 3, "first_stride": 2, "padding": "same", "conv_filters": (16,)},
            "Conv16/2-Conv16-Conv16-Pool",
        ),
    ],
    ids=["pairs-same-bn", "pairs-valid", "triple-stride2"],
)
def test_a_block_of_several_convs_is_what_the_estimate_and_summary_say(
    changes: dict[str, Any], summary: str
) -> None:
    from tui.core.training.budget import estimate
    from tui.core.training.model import build_model

    hp = Hyperparams(**changes)
    model = build_model(hp, compile_model=False)
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert len(convs) == hp.convs_per_block * len(hp.conv_filters)
    # Only a block's first convolution strides; the rest keep its side.
    strides = [c.strides[0] for c in convs[: hp.convs_per_block]]
    assert strides == [hp.first_stride] + [1] * (hp.convs_per_block - 1)
    assert estimate(hp).params == model.count_params()
    last_pool = [layer for layer in model.layers if layer.name.startswith("pool")][-1]
    assert last_pool.output.shape[1] == hp.feature_map_size()
    assert hp.architecture_summary().startswith(summary + "-Flatten")


def test_convs_that_leave_nothing_are_refused_naming_the_remedy() -> None:
    # Two valid 5x5 convs per block take 8 pixels off before each pool: 28 -> 20 -> 10 -> 2 -> 1.
    with pytest.raises(ValueError, match=r"3 blocks of 2 convs .* fewer convs per block"):
        Hyperparams(convs_per_block=2, kernel_size=5, conv_filters=(8, 8, 8))
    with pytest.raises(ValueError, match=r"convs_per_block = 4 is out of range"):
        Hyperparams(convs_per_block=4)


def readme_preset_commands() -> dict[str, list[str]]:
    """The README's `mnist-tui train ... # = --preset NAME` lines, continuations joined."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    found = re.findall(r"^mnist-tui (train .*?)\s+# = --preset ([\w-]+)$", joined, re.MULTILINE)
    return {name: shlex.split(command) for command, name in found}


def test_the_tuned_presets_are_what_the_readme_spells_out() -> None:
    commands = readme_preset_commands()
    assert sorted(commands) == ["best", "fast", "fast-gpu"]
    for name, argv in commands.items():
        assert resolve_hparams(build_parser().parse_args(argv)) == preset(name), name
