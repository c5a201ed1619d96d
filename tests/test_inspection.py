"""Tests for tui.core.inspect (views, layer health and its problems) and render_overlay: tiny real
Keras models, no mocks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from rich.style import Style
from rich.text import Text
from tiny import TINY

from tui.core.data.mnist import MnistData, load_sample
from tui.core.inspect.health import LayerHealthProbe, describe_layers
from tui.core.inspect.problems import LayerProblem, find_problems
from tui.core.inspect.views import (
    FeatureMaps,
    pca_2d,
    penultimate_features,
    saliency,
    top_feature_maps,
)
from tui.core.platform.runtime import import_keras
from tui.core.render import SHADES, heat_legend, render_digit, render_overlay
from tui.core.settings.hyperparams import Hyperparams
from tui.core.training.model import build_model

keras = import_keras()

SMALL = TINY.with_changes(epochs=1)
"""conv1 (relu) -> pool1 -> flatten -> hidden (relu) -> output (softmax)."""


@pytest.fixture(scope="module")
def sample() -> MnistData:
    return load_sample()


@pytest.fixture(scope="module")
def digit(sample: MnistData) -> np.ndarray:
    """A real test digit, (28, 28, 1) float32 in [0, 1]."""
    image: np.ndarray = sample.x_test[0]
    return image


def left_half_model() -> Any:
    """A conv net that only ever sees columns 0-13: the right half cannot matter."""
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Cropping2D(((0, 0), (0, 14)))(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", padding="same")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


# --- saliency -------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["gradient", "smoothgrad"])
def test_saliency_lights_only_what_reaches_the_output(method: Any) -> None:
    keras.utils.set_random_seed(1)
    # Speckle rather than a digit: on black background every ReLU sits at 0 and passes no
    # gradient, which would leave the plain gradient dark there for a reason of its own.
    image = np.random.default_rng(1).uniform(size=(28, 28, 1)).astype(np.float32)
    heat = saliency(left_half_model(), image, 3, method=method)

    assert heat.shape == (28, 28) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    assert np.all(heat[:, 14:] == 0)
    assert np.mean(heat[:, :14] > 0) > 0.9


def test_saliency_explains_the_logit_not_the_probability() -> None:
    # A linear model: the logit's gradient is the kernel column, even where softmax saturates.
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(784, 10)).astype(np.float32) * 100  # logits in the thousands
    inputs = keras.Input((28, 28, 1))
    dense = keras.layers.Dense(10, activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.set_weights([kernel, np.zeros(10, np.float32)])
    image = rng.uniform(size=(28, 28)).astype(np.float32)

    heat = saliency(model, image, 4, method="gradient")

    expected = np.abs(kernel[:, 4]).reshape(28, 28)
    np.testing.assert_allclose(heat, expected / expected.max(), rtol=1e-5, atol=1e-6)


def test_saliency_is_repeatable_and_checks_its_arguments(digit: np.ndarray) -> None:
    model = build_model(SMALL, compile_model=False)
    first = saliency(model, digit, 7, seed=3)
    np.testing.assert_array_equal(first, saliency(model, digit[..., 0], 7, seed=3))
    assert not np.array_equal(first, saliency(model, digit, 7, seed=4))
    with pytest.raises(ValueError, match="class_index"):
        saliency(model, digit, 10)
    with pytest.raises(ValueError, match="method"):
        saliency(model, digit, 1, method="occlusion")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="28x28"):
        saliency(model, digit[:20], 1)


# --- feature maps ---------------------------------------------------------------------------------
def test_top_feature_maps_after_batch_norm_and_relu(digit: np.ndarray) -> None:
    hparams = TINY.with_changes(conv_filters=(8, 16), batch_norm=True, dense_units=0)
    model = build_model(hparams, compile_model=False)
    relus = [layer for layer in model.layers if isinstance(layer, keras.layers.Activation)]

    found = top_feature_maps(model, digit, per_layer=3)

    assert [f.layer for f in found] == ["conv1", "conv2"]
    for maps, relu in zip(found, relus, strict=True):
        assert isinstance(maps, FeatureMaps)
        expected = keras.Model(model.inputs[0], relu.output)(digit[np.newaxis], training=False)
        expected = np.asarray(expected)[0]
        means = expected.mean(axis=(0, 1))
        assert maps.channels == tuple(int(c) for c in np.argsort(-means, kind="stable")[:3])
        np.testing.assert_allclose(maps.means, means[list(maps.channels)], rtol=1e-5, atol=1e-6)
        assert list(maps.means) == sorted(maps.means, reverse=True)
        assert maps.maps.shape == (3, *expected.shape[:2]) and maps.maps.dtype == np.float32
        assert maps.maps.min() >= 0 and maps.maps.max() <= 1 and not maps.maps.flags.writeable
        for channel, scaled in zip(maps.channels, maps.maps, strict=True):
            raw = expected[..., channel]
            if raw.max() > 0:
                np.testing.assert_allclose(scaled, raw / raw.max(), rtol=1e-5, atol=1e-6)
    assert found[0].maps.shape[1:] == (26, 26) and found[1].maps.shape[1:] == (11, 11)


def test_top_feature_maps_of_a_relu_conv_and_a_small_layer(digit: np.ndarray) -> None:
    model = build_model(SMALL, compile_model=False)
    (maps,) = top_feature_maps(model, digit, per_layer=20)
    assert maps.layer == "conv1" and sorted(maps.channels) == list(range(8))
    expected = keras.Model(model.inputs[0], model.get_layer("conv1").output)(digit[np.newaxis])
    np.testing.assert_allclose(
        maps.means[0], np.asarray(expected)[0].mean(axis=(0, 1)).max(), rtol=1e-5
    )


# --- the layer table ------------------------------------------------------------------------------
def test_the_layer_table_matches_the_model() -> None:
    model = build_model(Hyperparams(batch_norm=True, augment=True), compile_model=False)
    model.get_layer("conv1").trainable = False

    rows = describe_layers(model)

    assert sum(row.params for row in rows) == model.count_params()
    assert [row.name for row in rows] == [layer.name for layer in model.layers]
    by_name = {row.name: row for row in rows}
    assert by_name["conv1"].kind == "Conv2D" and not by_name["conv1"].trainable
    assert by_name["conv2"].output_shape == (None, 11, 11, 64)
    assert by_name["output"].output_shape == (None, 10) and by_name["output"].params == 1290
    assert by_name["hidden"].params == 1600 * 128 + 128
    assert "BatchNormalization" in {row.kind for row in rows}


# --- layer health ---------------------------------------------------------------------------------
def test_health_probe_update_ratios_dead_units_and_nan(sample: MnistData) -> None:
    model = build_model(SMALL, compile_model=False)
    probe = LayerHealthProbe(model, sample.x_test[:64])

    first = probe.measure()
    assert [row.layer for row in first] == ["conv1", "hidden", "output"]
    assert all(row.update_ratio is None and row.finite for row in first)
    assert first[0].dead_share is not None and first[1].dead_share is not None
    assert first[2].dead_share is None  # softmax, no ReLU
    assert first[2].weight_norm == pytest.approx(
        float(
            np.sqrt(sum((w.astype(np.float64) ** 2).sum() for w in model.layers[-1].get_weights()))
        )
    )

    conv = model.get_layer("conv1")
    conv.set_weights([w * 1.5 for w in conv.get_weights()])
    second = {row.layer: row for row in probe.measure()}
    assert second["conv1"].update_ratio == pytest.approx(0.5, rel=1e-6)
    assert second["hidden"].update_ratio == 0.0
    assert second["conv1"].weight_norm == pytest.approx(first[0].weight_norm * 1.5, rel=1e-6)

    hidden = model.get_layer("hidden")
    kernel, bias = hidden.get_weights()
    hidden.kernel.assign(np.zeros_like(kernel))
    hidden.bias.assign(np.full_like(bias, -10.0))
    conv.set_weights([w * 4 for w in conv.get_weights()])
    third = {row.layer: row for row in probe.measure()}
    assert third["hidden"].dead_share == 1.0
    assert third["conv1"].update_ratio == pytest.approx(3.0, rel=1e-6)
    problems = find_problems(third.values())
    assert LayerProblem("hidden", "dead units", 1.0) in problems
    exploding = next(p for p in problems if p.kind == "exploding updates")
    assert exploding.layer == "conv1" and exploding.figure == pytest.approx(3.0, rel=1e-6)
    assert ("output", "vanishing updates") in {(p.layer, p.kind) for p in problems}  # not moved

    weights = conv.get_weights()
    weights[0][0, 0, 0, 0] = np.nan
    conv.set_weights(weights)
    fourth = {row.layer: row for row in probe.measure()}
    assert not fourth["conv1"].finite and fourth["hidden"].finite
    problems = find_problems(fourth.values())
    assert [p for p in problems if p.kind == "diverged"] == [LayerProblem("conv1", "diverged")]


def test_health_probe_finds_relu_after_batch_norm(sample: MnistData) -> None:
    hparams = TINY.with_changes(conv_filters=(4, 8), batch_norm=True, dense_units=8, dropout=0.2)
    model = build_model(hparams, compile_model=False)
    rows = LayerHealthProbe(model, sample.x_test[:16]).measure()
    assert [row.layer for row in rows] == ["conv1", "conv2", "hidden", "output"]
    assert all(row.dead_share is not None for row in rows[:3])
    assert find_problems(rows) == ()


def test_each_problem_reads_as_the_sentence_the_log_and_the_model_screen_show() -> None:
    assert [
        LayerProblem("conv1", "diverged").text,
        LayerProblem("hidden", "dead units", 0.71).text,
        LayerProblem("conv2", "vanishing updates", 3.2e-7).text,
        LayerProblem("output", "exploding updates", 2.5).text,
    ] == [
        "conv1 has NaN or infinite weights: training has diverged; lower the learning rate and "
        "start again.",
        "hidden: 71% of its ReLU units output zero for every probe image (dead units).",
        "conv2: its weights moved by only 3.2e-07 of their size since the last check (vanishing "
        "updates).",
        "output: its weights moved by 2.5 times their size since the last check (exploding "
        "updates).",
    ]


# --- clusters -------------------------------------------------------------------------------------
def nearest_centroid_accuracy(points: np.ndarray, labels: np.ndarray) -> float:
    """Share of points whose nearest class centroid (Euclidean) is their own class's.

    The centroids come from the same points, so this measures how well the classes separate
    in this space, not how a classifier would generalise.
    """
    data = np.asarray(points, dtype=np.float64)
    classes, index_of = np.unique(np.asarray(labels).reshape(-1), return_inverse=True)
    centroids = np.stack([data[index_of == k].mean(axis=0) for k in range(len(classes))])
    # |p - c|^2 without the (n, k, d) difference array: |p|^2 is the same for every centroid.
    distances = (centroids**2).sum(axis=1) - 2 * data @ centroids.T
    return float(np.mean(np.argmin(distances, axis=1) == index_of))


def test_pca_2d_finds_the_known_axes() -> None:
    rng = np.random.default_rng(7)
    latent = rng.normal(size=(600, 6)) * np.array([10.0, 4.0, 1.0, 0.5, 0.2, 0.1])
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    features = (latent @ rotation.T + 3.0).astype(np.float32)

    points = pca_2d(features)

    assert points.shape == (600, 2) and points.dtype == np.float32
    np.testing.assert_allclose(points.mean(axis=0), 0, atol=1e-3)
    for column in range(2):
        correlation = np.corrcoef(points[:, column], latent[:, column])[0, 1]
        assert abs(correlation) > 0.99
    top_two = np.sort(np.linalg.eigvalsh(np.cov(features.T, bias=True)))[::-1][:2]
    np.testing.assert_allclose(points.var(axis=0), top_two, rtol=1e-3)
    np.testing.assert_array_equal(points, pca_2d(features))
    order = rng.permutation(600)
    np.testing.assert_allclose(pca_2d(features[order]), points[order], atol=1e-3)


def test_pca_2d_with_fewer_points_than_dimensions() -> None:
    rng = np.random.default_rng(2)
    features = rng.normal(size=(5, 40)).astype(np.float32)
    points = pca_2d(features)
    centred = features - features.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    np.testing.assert_allclose(np.sqrt((points**2).sum(axis=0)), singular[:2], rtol=1e-4)
    for column in points.T:
        assert column[np.argmax(np.abs(column))] > 0
    np.testing.assert_array_equal(pca_2d(np.ones((3, 4))), np.zeros((3, 2)))


def test_nearest_centroid_accuracy() -> None:
    points = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 4.9]])
    assert nearest_centroid_accuracy(points, np.array([1, 1, 7, 7])) == 1.0
    assert nearest_centroid_accuracy(points, np.array([1, 7, 1, 7])) == 0.5


def test_training_separates_the_classes(sample: MnistData) -> None:
    untrained = build_model(SMALL)
    trained = build_model(SMALL)  # the same seed: the same starting weights
    trained.fit(sample.x_train, sample.y_train, epochs=3, batch_size=64, verbose=0)  # 282 steps

    features = penultimate_features(trained, sample.x_test, batch_size=256)
    assert features.shape == (len(sample.x_test), 16) and features.dtype == np.float32
    np.testing.assert_allclose(
        features[:300], penultimate_features(trained, sample.x_test[:300]), rtol=1e-5, atol=1e-5
    )

    def separation(model: Any) -> tuple[float, float]:
        """Nearest-centroid accuracy in the 2-D view the screen shows, and in all 16 features."""
        features = penultimate_features(model, sample.x_test)
        return (
            nearest_centroid_accuracy(pca_2d(features), sample.y_test),
            nearest_centroid_accuracy(features, sample.y_test),
        )

    # Measured: 0.29 -> 0.50 in 2-D, 0.43 -> 0.85 in 16-D.
    (flat_before, full_before), (flat_after, full_after) = (
        separation(untrained),
        separation(trained),
    )
    assert flat_after > flat_before + 0.15, (flat_before, flat_after)
    assert full_after > full_before + 0.3, (full_before, full_after)


# --- rendering ------------------------------------------------------------------------------------
def styles(text: Text) -> list[list[Style]]:
    """The style of every cell, line by line (spans in these Texts do not overlap)."""
    per_char: list[Style] = [Style()] * len(text.plain)
    for span in text.spans:
        assert isinstance(span.style, Style)
        for position in range(span.start, span.end):
            per_char[position] = span.style
    rows, offset = [], 0
    for line in text.plain.split("\n"):
        rows.append(per_char[offset : offset + len(line)])
        offset += len(line) + 1
    return rows


def test_render_overlay_shapes(digit: np.ndarray) -> None:
    heat = np.random.default_rng(0).uniform(size=(28, 28))
    for compact, lines, width in ((False, 14, 28), (True, 7, 14)):
        for color in (True, False):
            text = render_overlay(digit, heat, compact=compact, color=color)
            rows = text.plain.split("\n")
            assert len(rows) == lines and {len(row) for row in rows} == {width}


def test_render_overlay_without_heat_is_the_digit(digit: np.ndarray) -> None:
    cold = render_overlay(digit, np.zeros((28, 28)))
    assert cold.plain == render_digit(digit).plain
    assert styles(cold) == styles(render_digit(digit))


def test_render_overlay_hot_and_cold_differ() -> None:
    image = np.full((28, 28), 0.5, dtype=np.float32)
    heat = np.zeros((28, 28), dtype=np.float32)
    heat[:, :14] = 1.0
    cells = styles(render_overlay(image, heat))
    assert cells[5][3] != cells[5][20]
    hot = cells[5][3].bgcolor
    assert hot is not None and hot.triplet is not None
    red, green, blue = hot.triplet
    assert red > green > blue  # warm


def test_render_overlay_plain_uses_shades(digit: np.ndarray) -> None:
    heat = np.zeros((28, 28), dtype=np.float32)
    heat[:, :14] = 1.0
    text = render_overlay(digit, heat, color=False)
    assert set(text.plain) <= set(SHADES) | {"\n"}
    assert not text.spans
    rows = text.plain.split("\n")
    assert {row[0] for row in rows} == {SHADES[-1]}  # all hot on the left
    # On the cold right, only the digit's strokes show, at the faintest shade.
    right = "".join(row[14:] for row in rows)
    assert set(right) == {" ", SHADES[1]}
    strokes = np.maximum(digit[0::2, 14:, 0], digit[1::2, 14:, 0]) >= 0.5
    assert right.count(SHADES[1]) == int(strokes.sum())


def test_heat_legend() -> None:
    legend = heat_legend(30)
    assert legend.cell_len == 30
    assert legend.plain.startswith("low ") and legend.plain.endswith(" high")
    plain = heat_legend(30, color=False)
    assert plain.cell_len == 30 and not plain.spans
    ramp = plain.plain[4:-5]
    assert set(ramp) <= set(SHADES) and ramp[-1] == SHADES[-1]
    assert [SHADES.index(c) for c in ramp] == sorted(SHADES.index(c) for c in ramp)
    assert heat_legend(6).cell_len == 6 and "low" not in heat_legend(6).plain
    colours = [span.style for span in legend.spans]
    assert colours[0] != colours[-1]
    with pytest.raises(ValueError):
        heat_legend(0)
