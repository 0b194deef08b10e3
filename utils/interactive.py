"""Interactive figures that work both in a live notebook and on the static website.

``interactive_figure(plot, d_k=[16, 64, 256], scale=["none", "√d_k"])`` calls ``plot`` once per
combination of the parameter values and shows:

- in a live kernel (JupyterLab, Colab): ipywidgets sliders that call ``plot`` again on every
  move, so an edited ``plot`` function is what the reader sees;
- everywhere else (the website, ``nbconvert --to html``): the same sliders in plain HTML and
  JavaScript over frames rendered in advance, with no kernel.

Both come in one output (a MIME bundle): a frontend that runs widgets shows the live one, the
website and nbconvert show the static one (nbconvert drops a widget view whose state was not
saved; the book's ``nb_mime_priority_overrides`` drops it on the website).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
MAX_FRAMES = 64

# Runs once per figure on the website: maps the slider positions to a frame index.
_SCRIPT = """
(function () {
  var root = document.getElementById("%(id)s");
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";
  var data = JSON.parse(root.querySelector("script.course-figure-data").textContent);
  var sliders = root.querySelectorAll("input[type=range]");
  var img = root.querySelector("img.course-figure-frame");
  function update() {
    var index = 0;
    sliders.forEach(function (s, i) {
      index = index * data.sizes[i] + Number(s.value);
      s.parentNode.querySelector("output").textContent = data.labels[i][Number(s.value)];
    });
    img.src = "data:image/png;base64," + data.frames[index];
  }
  sliders.forEach(function (s) { s.addEventListener("input", update); });
  update();
})();
"""


def render_png(fig: Figure, dpi: int = 80) -> bytes:
    """Render ``fig`` to PNG bytes and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _call(plot: Callable[..., Figure | None], values: dict[str, Any]) -> Figure:
    """Call ``plot`` with ``values``; it may return its figure or draw on the current one."""
    before = set(plt.get_fignums())
    fig = plot(**values)
    if fig is None:
        new = [n for n in plt.get_fignums() if n not in before]
        if not new:
            raise ValueError("the plot function neither returned a Figure nor drew a new one")
        fig = plt.figure(new[-1])
    if not isinstance(fig, Figure):
        raise TypeError(f"the plot function must return a matplotlib Figure or None, "
                        f"got {type(fig).__name__}")
    return fig


def _label(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class InteractiveFigure:
    """A figure with one slider per parameter; display it (or make it a cell's last value).

    Args:
        plot: ``plot(**values)`` draws one frame and returns its Figure (or draws on a new
            current figure and returns None).
        params: For each keyword argument of ``plot``, the values its slider steps through.
        initial: Starting value per parameter (default: the first value of each).
        dpi: Resolution of the pre-rendered frames.

    Raises:
        ValueError: No parameter, an empty value list, an initial value not in its list, or
            more than ``MAX_FRAMES`` combinations.
    """

    def __init__(self, plot: Callable[..., Figure | None], params: dict[str, Sequence[Any]],
                 initial: dict[str, Any] | None = None, dpi: int = 80) -> None:
        if not params:
            raise ValueError("give at least one parameter, e.g. interactive_figure(f, x=[1, 2])")
        self.plot = plot
        self.params = {name: list(values) for name, values in params.items()}
        for name, values in self.params.items():
            if not values:
                raise ValueError(f"parameter {name!r} has no values")
        n_frames = 1
        for values in self.params.values():
            n_frames *= len(values)
        if n_frames > MAX_FRAMES:
            raise ValueError(f"{n_frames} combinations of values is more than {MAX_FRAMES} "
                             "frames; give fewer values")
        initial = dict(initial or {})
        unknown = set(initial) - set(self.params)
        if unknown:
            raise ValueError(f"initial values for unknown parameters: {sorted(unknown)}")
        self.initial = {}
        for name, values in self.params.items():
            value = initial.get(name, values[0])
            if value not in values:
                raise ValueError(f"initial {name}={value!r} is not one of {values}")
            self.initial[name] = value
        self.dpi = dpi
        names = list(self.params)
        self.frames = [
            render_png(_call(plot, dict(zip(names, combo, strict=True))), dpi)
            for combo in itertools.product(*self.params.values())
        ]

    def frame_index(self, values: dict[str, Any]) -> int:
        """Index in ``frames`` of the frame drawn with ``values`` (row-major over params)."""
        index = 0
        for name, options in self.params.items():
            index = index * len(options) + options.index(values[name])
        return index

    def static_html(self) -> str:
        """The kernel-free rendering: HTML sliders over the pre-rendered frames."""
        encoded = [base64.b64encode(f).decode("ascii") for f in self.frames]
        fig_id = "course-figure-" + hashlib.sha1("".join(encoded).encode()).hexdigest()[:12]
        data = {"sizes": [len(v) for v in self.params.values()],
                "labels": [[_label(v) for v in values] for values in self.params.values()],
                "frames": encoded}
        controls = []
        for name, values in self.params.items():
            position = values.index(self.initial[name])
            controls.append(
                f'<label style="display:inline-block;margin-right:1.5em">'
                f'<code>{html.escape(name)}</code> '
                f'<input type="range" min="0" max="{len(values) - 1}" step="1" '
                f'value="{position}" data-param="{html.escape(name)}" '
                f'aria-label="{html.escape(name)}" style="vertical-align:middle"> '
                f'<output>{html.escape(_label(self.initial[name]))}</output></label>')
        first = encoded[self.frame_index(self.initial)]
        return (
            f'<div class="course-figure" id="{fig_id}">'
            f'<div class="course-figure-controls">{"".join(controls)}</div>'
            f'<img class="course-figure-frame" alt="interactive figure" '
            f'src="data:image/png;base64,{first}">'
            f'<script type="application/json" class="course-figure-data">'
            f"{json.dumps(data)}</script>"
            f"<script>{_SCRIPT % {'id': fig_id}}</script></div>"
        )

    def widget(self) -> Any:
        """The live rendering: ipywidgets sliders that call ``plot`` again on every move."""
        import ipywidgets as widgets

        first = self.frames[self.frame_index(self.initial)]
        width = int.from_bytes(first[16:20], "big")  # the PNG header's width, in pixels
        image = widgets.Image(value=first, format="png", layout=widgets.Layout(width=f"{width}px"))
        sliders = {
            name: widgets.SelectionSlider(options=[(_label(v), v) for v in values],
                                          value=self.initial[name], description=name,
                                          continuous_update=False)
            for name, values in self.params.items()
        }

        def redraw(_: Any = None) -> None:
            values = {name: s.value for name, s in sliders.items()}
            image.value = render_png(_call(self.plot, values), self.dpi)

        for slider in sliders.values():
            slider.observe(redraw, names="value")
        return widgets.VBox([widgets.HBox(list(sliders.values())), image])

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {
            "text/html": self.static_html(),
            "text/plain": f"<interactive figure over {', '.join(self.params)}>",
        }
        if _live_kernel():
            box = self.widget()
            bundle[WIDGET_VIEW_MIME] = {"model_id": box.model_id, "version_major": 2,
                                        "version_minor": 0}
        return bundle


def _live_kernel() -> bool:
    """True inside a Jupyter kernel with ipywidgets installed."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def interactive_figure(plot: Callable[..., Figure | None], *, initial: dict[str, Any] | None = None,
                       dpi: int = 80, **params: Sequence[Any]) -> InteractiveFigure:
    """Make an interactive figure: ``plot(**values)`` with one slider per keyword.

    Example: ``interactive_figure(draw, d_k=[16, 64, 256], scale=["none", "√d_k"])``.
    See :class:`InteractiveFigure` for the arguments and errors.
    """
    return InteractiveFigure(plot, params, initial=initial, dpi=dpi)
