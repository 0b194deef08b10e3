"""Tests for utils/interactive.py: one figure, a live widget and a kernel-free rendering."""

from __future__ import annotations

import base64
import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from utils import interactive  # noqa: E402
from utils.interactive import (  # noqa: E402
    MAX_FRAMES,
    WIDGET_VIEW_MIME,
    interactive_figure,
    render_png,
)


def line_plot(slope: float, colour: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, slope], color=colour)
    ax.set_ylim(-3, 3)
    return fig


def drawn_on_current_figure(slope: float) -> None:
    plt.figure(figsize=(2, 2))
    plt.plot([0, 1], [0, slope])


def _data(html: str) -> dict:
    match = re.search(r'<script type="application/json" class="course-figure-data">(.*?)</script>',
                      html)
    assert match, "no frame data in the static HTML"
    return json.loads(match.group(1))


def test_one_frame_per_combination_in_row_major_order() -> None:
    fig = interactive_figure(line_plot, slope=[-2.0, 0.0, 2.0], colour=["red", "blue"])
    assert len(fig.frames) == 6
    assert len(set(fig.frames)) == 6, "different parameter values gave identical frames"
    # the frame at an index is exactly what plot draws for those values (PNG is deterministic)
    assert fig.frames[fig.frame_index({"slope": 2.0, "colour": "blue"})] == render_png(
        line_plot(2.0, "blue"))
    assert fig.frame_index({"slope": 0.0, "colour": "red"}) == 2


def test_static_html_has_a_slider_per_parameter_and_starts_at_the_initial_frame() -> None:
    fig = interactive_figure(line_plot, slope=[-2.0, 0.0, 2.0], colour=["red", "blue"],
                             initial={"slope": 0.0, "colour": "blue"})
    html = fig.static_html()
    sliders = re.findall(r'<input type="range" min="0" max="(\d+)" step="1" value="(\d+)" '
                         r'data-param="(\w+)"', html)
    assert sliders == [("2", "1", "slope"), ("1", "1", "colour")]
    data = _data(html)
    assert data["sizes"] == [3, 2] and data["labels"] == [["-2", "0", "2"], ["red", "blue"]]
    assert [base64.b64decode(f) for f in data["frames"]] == fig.frames
    shown = re.search(r'class="course-figure-frame" alt="[^"]*" '
                      r'src="data:image/png;base64,([^"]+)"', html).group(1)
    assert base64.b64decode(shown) == fig.frames[fig.frame_index(fig.initial)]


def test_a_plot_that_draws_on_the_current_figure_is_accepted() -> None:
    fig = interactive_figure(drawn_on_current_figure, slope=[1.0, 2.0])
    assert len(set(fig.frames)) == 2
    assert not plt.get_fignums(), "frames must not leave figures open"


def test_outside_a_kernel_only_the_static_rendering_is_offered() -> None:
    bundle = interactive_figure(line_plot, slope=[1.0], colour=["red"])._repr_mimebundle_()
    assert WIDGET_VIEW_MIME not in bundle
    assert 'class="course-figure"' in bundle["text/html"]


def test_in_a_live_kernel_the_widget_recomputes_the_figure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []

    def counting_plot(slope: float, colour: str) -> plt.Figure:
        calls.append((slope, colour))
        return line_plot(slope, colour)

    monkeypatch.setattr(interactive, "_live_kernel", lambda: True)
    fig = interactive_figure(counting_plot, slope=[-2.0, 2.0], colour=["red", "blue"])
    bundle = fig._repr_mimebundle_()
    assert bundle[WIDGET_VIEW_MIME]["model_id"]
    assert 'class="course-figure"' in bundle["text/html"], "the static rendering must stay"
    box = fig.widget()
    sliders, image = box.children[0].children, box.children[1]
    assert image.value == fig.frames[0]
    calls.clear()
    sliders[0].value = 2.0  # the reader moves the slope slider
    assert calls == [(2.0, "red")], "moving a slider must call the plot function again"
    assert image.value == render_png(line_plot(2.0, "red"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one parameter"),
        ({"slope": []}, "has no values"),
        ({"slope": [1.0], "initial": {"slope": 5.0}}, "not one of"),
        ({"slope": [1.0], "initial": {"tilt": 5.0}}, "unknown parameters"),
        ({"slope": list(range(MAX_FRAMES + 1))}, "more than"),
    ],
)
def test_bad_arguments_get_a_clear_message(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        interactive_figure(drawn_on_current_figure, **kwargs)


def test_a_plot_that_draws_nothing_is_reported() -> None:
    with pytest.raises(ValueError, match="neither returned a Figure"):
        interactive_figure(lambda slope: None, slope=[1.0])
    with pytest.raises(TypeError, match="must return a matplotlib Figure"):
        interactive_figure(lambda slope: 42, slope=[1.0])
