"""Checkers for the course's inline code exercises.

A reader writes a function in a notebook cell and hands it to a checker::

    check_attention(my_attention)

The checker runs the function on seeded reference cases and returns a :class:`CheckResult`,
which displays itself in a notebook: a green tick when every case passes, otherwise the first
failing case with what was expected, what came back, and a hint. Checkers never raise (except
``KeyboardInterrupt``) and never show the reference solution. Outputs are compared by value,
with tolerances, so any correct implementation passes.

Every checker applies the same rules:

- the function must return one ``torch.Tensor`` of the expected shape;
- float outputs keep the dtype of the float input (``float32`` in, ``float32`` out; a
  ``float64`` result for ``float32`` input fails), masks are ``torch.bool``;
- no NaN or Inf, and values within the case's tolerance;
- the inputs are left unmodified (no in-place operations on them).

To add a checker, build a list of ``_Case`` objects (inputs, expected output, tolerance, a hint,
and known wrong outputs with the hint each deserves) and pass them to ``_run_check``.
"""

from __future__ import annotations

import functools
import html
import inspect
import math
import os
import sysconfig
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "CheckResult",
    "answered",
    "check_attention",
    "check_causal_mask",
    "check_multihead_split",
    "check_rope",
    "check_softmax",
    "check_top_p",
]

_SEED = 1234


@dataclass
class CheckResult:
    """The outcome of one checker; displays itself in notebooks and terminals.

    Attributes:
        name: The checker's name, e.g. ``"check_attention"``.
        passed: True when every case passed.
        messages: Human-readable lines: a summary first, then the details of the first failing
            case (inputs, what went wrong, a hint).
    """

    name: str
    passed: bool
    messages: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        icon = "✅" if self.passed else "❌"
        head, *rest = self.messages or [""]
        lines = [f"{icon} {self.name}: {head}"]
        for message in rest:
            lines.extend("  " + line for line in message.splitlines())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        border, background, color = (
            ("#2e7d32", "#e8f5e9", "#1b5e20") if self.passed else ("#c62828", "#ffebee", "#b71c1c")
        )
        icon = "✅" if self.passed else "❌"
        head, *rest = self.messages or [""]
        body = "".join(
            f'<div style="white-space: pre-wrap; margin-top: 4px">{html.escape(m)}</div>'
            for m in rest
        )
        return (
            f'<div style="border-left: 5px solid {border}; background: {background}; '
            f'padding: 8px 12px; margin: 4px 0; font-family: sans-serif; color: #212121">'
            f'<div style="color: {color}">{icon} <b>{html.escape(self.name)}</b>: '
            f"{html.escape(head)}</div>{body}</div>"
        )


# ---------------------------------------------------------------------------------------------
# The small framework every checker is built on.
# ---------------------------------------------------------------------------------------------


@dataclass
class _Case:
    """One reference case: call ``fn(*args.values(), **kwargs)`` and compare with ``expected``.

    ``mistakes`` pairs known *wrong* outputs (e.g. attention without the 1/sqrt(d_k) scale)
    with the hint a reader who produced exactly that output needs.
    """

    name: str
    args: dict[str, Any]
    expected: Tensor
    kwargs: dict[str, Any] = field(default_factory=dict)
    atol: float = 1e-5
    rtol: float = 1e-4
    hint: str = ""
    mistakes: list[tuple[Tensor, str]] = field(default_factory=list)
    shape_hints: dict[tuple[int, ...], str] = field(default_factory=dict)


def _never_raises(checker: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
    """A bug in a checker must not break the reader's notebook: report it instead."""

    @functools.wraps(checker)
    def wrapper(fn: Any) -> CheckResult:
        try:
            return checker(fn)
        except Exception as exc:
            return CheckResult(
                checker.__name__,
                False,
                [
                    f"The checker itself failed ({type(exc).__name__}: {exc}).",
                    "This is a bug in the course, not in your code: please report it.",
                ],
            )

    return wrapper


def _run_check(name: str, fn: Any, cases: list[_Case], call: str) -> CheckResult:
    """Run ``fn`` on every case and summarise: all passed, or the first failure in detail."""
    if not callable(fn):
        return CheckResult(name, False, _not_callable(name, fn, call))
    failures = []
    for case in cases:
        problems = _run_case(fn, case, call)
        if problems:
            failures.append((case, problems))
    if not failures:
        return CheckResult(name, True, [f"All {len(cases)} cases passed."])
    case, problems = failures[0]
    n_passed = len(cases) - len(failures)
    messages = [
        f"Case '{case.name}' failed ({n_passed} of {len(cases)} cases passed).",
        "Inputs: " + ", ".join(f"{k} {_describe(v)}" for k, v in _all_args(case).items()),
        *problems,
    ]
    if len(failures) > 1:
        others = ", ".join(f"'{c.name}'" for c, _ in failures[1:])
        messages.append(f"Also failing: {others}. Fix the first case, then run the check again.")
    return CheckResult(name, False, messages)


def _run_case(fn: Callable[..., Any], case: _Case, call: str) -> list[str]:
    """Problems found in one case (empty list = passed)."""
    # The reader's function gets copies, so the originals stay pristine for the in-place check.
    args = {k: _clone(v) for k, v in case.args.items()}
    kwargs = {k: _clone(v) for k, v in case.kwargs.items()}
    bind_error = _signature_problem(fn, args, kwargs)
    if bind_error is not None:
        return [f"Your function cannot be called as {call}: {bind_error}."]
    try:
        out = fn(*args.values(), **kwargs)
    except Exception as exc:
        problems = _describe_exception(exc)
        return problems + ([f"Hint: {case.hint}"] if case.hint else [])

    problems = []
    for arg_name, value in {**args, **kwargs}.items():
        original = _all_args(case)[arg_name]
        if isinstance(original, Tensor) and not _same_tensor(original, value):
            problems.append(
                f"Your function modified its input '{arg_name}' in place. Leave inputs untouched:"
                " use out-of-place operations (x = x - m instead of x -= m, masked_fill instead"
                " of masked_fill_)."
            )
    try:
        compare_problems, hint = _compare(out, case)
    except Exception as exc:  # e.g. an exotic tensor type that cannot be compared
        compare_problems = [f"Your output could not be compared ({type(exc).__name__})."]
        hint = None
    problems += compare_problems
    if compare_problems and (hint or case.hint):
        problems.append(f"Hint: {hint or case.hint}")
    return problems


def _compare(out: Any, case: _Case) -> tuple[list[str], str | None]:
    """Compare the reader's output with the expected one: (problems, specific hint or None)."""
    expected = case.expected
    if out is None:
        return ["Your function returned None. Did you forget the return statement?"], None
    if not isinstance(out, Tensor):
        return [_describe_non_tensor(out)], None
    out = out.detach().cpu()
    if tuple(out.shape) != tuple(expected.shape):
        hint = case.shape_hints.get(tuple(out.shape))
        if hint is None and out.numel() == expected.numel():
            hint = "The number of elements is right but they are arranged differently."
        return [f"Wrong shape: expected {_shape(expected)}, got {_shape(out)}."], hint

    problems = []
    if out.dtype != expected.dtype:
        wanted = "a torch.bool mask" if expected.dtype == torch.bool else (
            f"{expected.dtype} (the dtype of the input)"
        )
        problems.append(f"Wrong dtype: expected {wanted}, got {out.dtype}.")
        if out.is_complex() and not expected.is_complex():
            return problems, "Convert the complex result back to real numbers."
        out = out.to(expected.dtype)
        if _matches(out, expected, case):
            dtype_hint = (
                "Build the mask with dtype=torch.bool (or convert it with .bool())."
                if expected.dtype == torch.bool
                else "Keep the input's dtype: no .double()/.float(), and give new tensors"
                " dtype=x.dtype."
            )
            return [*problems, "The values are right: only the dtype differs."], dtype_hint
    problems += _value_problems(out, expected, case)
    if not problems:
        return [], None
    hint = next((h for wrong, h in case.mistakes if _matches(out, wrong, case)), None)
    return problems, hint


def _value_problems(out: Tensor, expected: Tensor, case: _Case) -> list[str]:
    """Wrong entries of a bool mask; NaN/Inf; or the largest error beyond the tolerance."""
    if expected.dtype == torch.bool:
        wrong = out != expected
        if not wrong.any():
            return []
        idx = _first_index(wrong)
        return [
            f"{int(wrong.sum())} of {wrong.numel()} entries are wrong; first at {_at(idx)}:"
            f" expected {bool(expected[idx])}, got {bool(out[idx])}."
        ]
    problems = [
        f"Your output contains {label} in {int(bad.sum())} of {bad.numel()} entries"
        f" (first at {_at(_first_index(bad))})."
        for label, bad in (("NaN", torch.isnan(out)), ("Inf", torch.isinf(out)))
        if bad.any()
    ]
    if problems:
        return problems
    close = torch.isclose(out, expected, rtol=case.rtol, atol=case.atol)
    if close.all():
        return []
    error = (out - expected).abs()
    idx = _first_index(error == error.max())
    tolerance = f" (tolerance atol={case.atol:g}, rtol={case.rtol:g})" if case.atol else ""
    return [
        f"Values differ in {int((~close).sum())} of {close.numel()} entries. Largest error"
        f" {float(error[idx]):.3g} at {_at(idx)}: expected {float(expected[idx]):.4g}, got"
        f" {float(out[idx]):.4g}{tolerance}."
    ]


def _matches(out: Tensor, reference: Tensor, case: _Case) -> bool:
    if out.shape != reference.shape or out.dtype != reference.dtype:
        return False
    if reference.dtype == torch.bool:
        return bool(torch.equal(out, reference))
    return bool(torch.allclose(out, reference, rtol=case.rtol, atol=case.atol, equal_nan=True))


def _all_args(case: _Case) -> dict[str, Any]:
    return {**case.args, **case.kwargs}


def _clone(value: Any) -> Any:
    return value.clone() if isinstance(value, Tensor) else value


def _same_tensor(original: Tensor, now: Tensor) -> bool:
    if original.shape != now.shape or original.dtype != now.dtype:
        return False
    return bool(torch.equal(original, now))


def _signature_problem(fn: Callable[..., Any], args: dict, kwargs: dict) -> str | None:
    """Why ``fn`` cannot take these arguments, or None (also None when it can't be inspected)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*args.values(), **kwargs)
    except TypeError as exc:
        return str(exc)
    return None


def _not_callable(name: str, fn: Any, call: str) -> list[str]:
    messages = [f"This checker needs your function, but got {_type_name(fn)}."]
    if fn is None:
        messages.append("Did you run the cell that defines your function?")
    else:
        messages.append(
            f"Pass the function itself, without calling it: {name}(my_function), not"
            f" {name}(my_function(...)). It will be called as {call}."
        )
    return messages


def _describe_non_tensor(out: Any) -> str:
    if isinstance(out, (tuple, list)):
        return (
            f"Your function returned a {type(out).__name__} of {len(out)} items; expected a"
            " single torch.Tensor (return only the result asked for, no extra values)."
        )
    message = f"Your function returned {_type_name(out)}; expected a torch.Tensor."
    if type(out).__module__.startswith("numpy"):
        message += " Stay in torch: torch.from_numpy converts an array, but torch ops are simpler."
    return message


def _describe_exception(exc: Exception) -> list[str]:
    """The exception's type and message, and the line of the reader's code that raised it."""
    try:
        text = " ".join(str(exc).split())
    except Exception:  # an exception whose __str__ itself fails
        text = "(message could not be shown)"
    if len(text) > 300:
        text = text[:297] + "..."
    messages = [f"Your function raised {type(exc).__name__}" + (f": {text}" if text else ".")]
    frame = _reader_frame(exc)
    if frame is not None:
        where = f"{_location(frame.filename)}, line {frame.lineno}, in {frame.name}"
        line = (frame.line or "").strip()
        messages.append(f"It happened at {where}" + (f":\n    {line}" if line else "."))
    return messages


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(torch.__file__)]
    roots += [paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths]
    return tuple(os.path.abspath(root) + os.sep for root in roots)


def _reader_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame outside the checker, torch and the standard library: the reader's."""
    roots = _library_roots()
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if not os.path.abspath(frame.filename).startswith(roots):
            return frame
    return None


def _location(filename: str) -> str:
    """'Cell In[3]' for a notebook cell (IPython >= 8), else the file's base name."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            name = shell.compile.format_code_name(filename)
            if name:
                return " ".join(name)
    except Exception:
        pass
    return os.path.basename(filename)


def _type_name(obj: Any) -> str:
    cls = type(obj)
    if obj is None:
        return "None"
    name = cls.__qualname__ if cls.__module__ == "builtins" else (
        f"{cls.__module__.split('.')[0]}.{cls.__qualname__}"
    )
    return ("an " if name[0] in "aeiou" else "a ") + name


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        text = f"{_shape(value)} {str(value.dtype).removeprefix('torch.')}"
        if value.ndim == 1 and value.numel() <= 8:
            values = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in value.tolist()]
            text += " [" + ", ".join(values) + "]"
        return text
    return f"= {value!r}"


def _shape(t: Tensor) -> str:
    return str(tuple(t.shape))


def _first_index(mask: Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in mask.nonzero()[0])


def _at(index: tuple[int, ...]) -> str:
    return "out[" + ", ".join(map(str, index)) + "]"


def _randn(g: torch.Generator, *shape: int, scale: float = 1.0) -> Tensor:
    return torch.randn(*shape, generator=g) * scale


def _generator() -> torch.Generator:
    # A private generator: checking must not change the reader's global random state.
    return torch.Generator().manual_seed(_SEED)


# ---------------------------------------------------------------------------------------------
# Independent float64 references (and the known wrong variants) for the checkers.
# ---------------------------------------------------------------------------------------------


def _attention_ref(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    *,
    scale: float | None = None,
    dim: int = -1,
    fill: float = float("-inf"),
) -> Tensor:
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q.double() @ k.double().transpose(-2, -1)) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, fill)
    weights = _softmax_ref(scores, dim)
    return (weights @ v.double()).to(q.dtype)


def _softmax_ref(x: Tensor, dim: int) -> Tensor:
    x64 = x.double()
    e = torch.exp(x64 - x64.amax(dim=dim, keepdim=True))
    return (e / e.sum(dim=dim, keepdim=True)).to(x.dtype)


def _rope_ref(
    x: Tensor,
    positions: Tensor,
    theta: float = 10000.0,
    *,
    interleaved: bool = False,
    direction: float = 1.0,
    exponent: float = 2.0,
) -> Tensor:
    """Rotate feature pairs as complex numbers: pair i is (i, i + D/2) (or (2i, 2i+1))."""
    half = x.shape[-1] // 2
    x64 = x.double()
    inv_freq = theta ** (-exponent * torch.arange(half, dtype=torch.float64) / x.shape[-1])
    angles = direction * positions.double()[:, None] * inv_freq[None, :]  # (T, D/2)
    rotation = torch.polar(torch.ones_like(angles), angles)
    if interleaved:
        z = torch.complex(x64[..., 0::2], x64[..., 1::2]) * rotation
        out = torch.stack([z.real, z.imag], dim=-1).flatten(-2)
    else:
        z = torch.complex(x64[..., :half], x64[..., half:]) * rotation
        out = torch.cat([z.real, z.imag], dim=-1)
    return out.to(x.dtype)


def _top_p_ref(probs: Tensor, p: float) -> Tensor:
    """Keep the most likely tokens one by one until their mass reaches p."""
    keep = torch.zeros(probs.shape, dtype=torch.bool)
    mass = 0.0
    for i in sorted(range(len(probs)), key=lambda j: -float(probs[j])):
        keep[i] = True
        mass += float(probs[i])
        if mass >= p:
            break
    return keep


# ---------------------------------------------------------------------------------------------
# The checkers.
# ---------------------------------------------------------------------------------------------


def answered(*values: Any) -> bool:
    """True once no value is None or ``...`` (a lab's placeholder): demo cells wait on it.

    Example: ``if answered(attention(q, k, v)): plot(...)`` runs the demonstration only after
    the reader has filled in ``attention``.
    """
    return all(v is not None and v is not Ellipsis for v in values)


@_never_raises
def check_attention(fn: Callable[..., Tensor]) -> CheckResult:
    """Check ``fn(q, k, v, mask=None) -> out``, scaled dot-product attention.

    q is ``(..., Tq, d_k)``, k ``(..., Tk, d_k)``, v ``(..., Tk, d_v)``; mask is a bool tensor
    broadcastable to ``(..., Tq, Tk)`` with True = may attend. The output is ``(..., Tq, d_v)``
    in the dtype of q. Cases: 2-D, batched with heads, causal mask, padding mask, Tq != Tk,
    d_v != d_k and large-magnitude inputs (numerical stability).

    Args:
        fn: The reader's attention function.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    pad = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    pad[1, ..., 3:] = False  # the second sequence has two padding tokens at the end
    specs = [  # name, (q, k, v) shapes, mask, scale of the inputs, hint
        ("unmasked 2-D (T, d)", [(4, 8)] * 3, None, 1.0,
         "Scores are q @ k^T / sqrt(d_k); softmax over the keys; then weights @ v."),
        ("batched 4-D (B, H, T, d)", [(2, 3, 5, 8)] * 3, None, 1.0,
         "Use k.transpose(-2, -1) rather than k.T, which also flips the batch and head dims."),
        ("boolean causal mask", [(2, 2, 6, 8)] * 3, torch.ones(6, 6, dtype=torch.bool).tril(),
         1.0, "Scores where the mask is False must become -inf before the softmax."),
        ("padding mask (B, 1, 1, Tk)", [(2, 2, 5, 8)] * 3, pad, 1.0,
         "The mask (B, 1, 1, Tk) broadcasts over heads and queries; False = never attend."),
        ("Tq != Tk (cross-attention)", [(2, 3, 8), (2, 7, 8), (2, 7, 8)], None, 1.0,
         "The scores are (..., Tq, Tk): one row per query, one column per key."),
        ("d_v != d_k", [(2, 4, 8), (2, 4, 8), (2, 4, 3)], None, 1.0,
         "The output has v's last size (..., Tq, d_v); the scale uses d_k."),
        ("large-magnitude inputs", [(2, 6, 16)] * 3, None, 30.0,
         "exp() of large scores overflows: subtract each row's max before exponentiating"
         " (torch.softmax does this for you)."),
    ]
    cases = []
    for name, shapes, mask, magnitude, hint in specs:
        q, k, v = (_randn(g, *shape, scale=magnitude) for shape in shapes)
        d_k, d_v = q.shape[-1], v.shape[-1]
        mistakes = [
            (_attention_ref(q, k, v, mask, scale=1.0), "Did you divide the scores by sqrt(d_k)?"),
            (_attention_ref(q, k, v, mask, scale=1 / d_k), "Divide by sqrt(d_k), not by d_k."),
            (_attention_ref(q, k, v, mask, dim=-2),
             "Take the softmax over the keys (the last dim), so each query's weights sum to 1."),
        ]
        if d_v != d_k:
            mistakes.append((_attention_ref(q, k, v, scale=d_v**-0.5),
                             "Scale by sqrt(d_k), the query/key size, not sqrt(d_v)."))
        if mask is not None:
            inverted = "The mask is inverted: True means 'may attend', so fill where it is False."
            mistakes += [
                (_attention_ref(q, k, v), "Did you apply the mask? It seems to be ignored."),
                (_attention_ref(q, k, v, ~mask), inverted),
                (_attention_ref(q, k, v, ~mask, fill=-1e9), inverted),
            ]
        weights_shape = (*q.shape[:-1], k.shape[-2])
        cases.append(_Case(
            name, {"q": q, "k": k, "v": v}, _attention_ref(q, k, v, mask),
            kwargs={} if mask is None else {"mask": mask},
            atol=1e-4 if magnitude > 1 else 1e-5, hint=hint, mistakes=mistakes,
            shape_hints={weights_shape: "This is the shape of the attention weights: multiply"
                         " them by v."},
        ))
    return _run_check("check_attention", fn, cases, "fn(q, k, v, mask=None)")


@_never_raises
def check_causal_mask(fn: Callable[[int], Tensor]) -> CheckResult:
    """Check ``fn(n) -> mask``: a ``(n, n)`` bool tensor, True where query i may attend key j.

    Args:
        fn: The reader's mask builder.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    cases = []
    for n in (4, 7, 1):  # n = 1 last: every wrong mask looks alike there
        i = torch.arange(n)
        expected = i[None, :] <= i[:, None]  # key j is not in query i's future
        cases.append(_Case(
            f"n = {n}", {"n": n}, expected,
            hint="Entry (i, j) is True exactly when key j is not in the future of query i"
            " (j <= i).",
            mistakes=[
                (~expected, "The mask is inverted: True must mean 'may attend'."),
                (expected.T, "Rows are queries and columns are keys: query i sees keys 0..i,"
                             " so True sits in the lower triangle."),
                (expected & ~torch.eye(n, dtype=torch.bool),
                 "Every position may attend to itself: the diagonal must be True."),
            ],
        ))
    return _run_check("check_causal_mask", fn, cases, "fn(n)")


@_never_raises
def check_softmax(fn: Callable[..., Tensor]) -> CheckResult:
    """Check ``fn(x, dim=-1) -> softmax(x)`` along ``dim``, stable for inputs around +-1000.

    Args:
        fn: The reader's softmax.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    large = torch.stack([1000 + _randn(g, 5), -1000 + _randn(g, 5),
                         torch.tensor([1000.0, -1000.0, 0.0, 999.0, 998.0])])
    basic = "Exponentiate, then divide by the sum along dim (keepdim=True)."
    use_dim = "Use the dim argument: the entries along dim must sum to 1."
    specs = [  # name, x, dim (None = not passed, i.e. the default -1), hint
        ("1-D vector", _randn(g, 6), None, basic),
        ("2-D, default dim=-1", _randn(g, 3, 5), None, basic),
        ("2-D, dim=0", _randn(g, 4, 3), 0, use_dim),
        ("3-D, dim=1", _randn(g, 2, 3, 4), 1, use_dim),
        ("large inputs (about +-1000)", large, None, "exp(1000) overflows: subtract the max"
         " along dim before exponentiating; softmax(x) = softmax(x - c) for any c."),
        ("float64 input", _randn(g, 3, 4).double(), None, "Keep the dtype of x."),
    ]
    cases = []
    for name, x, dim, hint in specs:
        d = -1 if dim is None else dim
        e = torch.exp(x - x.max())
        mistakes = [
            (e / e.sum(), "You normalised over the whole tensor: sum only along dim."),
            (torch.exp(x), "Divide the exponentials by their sum along dim."),
            (e / e.sum(dim=d, keepdim=True),
             "Subtract the max along dim (keepdim=True), not the max of the whole tensor."),
        ]
        mistakes += [(_softmax_ref(x, other), f"Normalise along dim={d}, not dim={other}.")
                     for other in range(x.ndim) if other != d % x.ndim]
        cases.append(_Case(
            name, {"x": x}, _softmax_ref(x, d), kwargs={} if dim is None else {"dim": dim},
            hint=hint, mistakes=mistakes,
        ))
    return _run_check("check_softmax", fn, cases, "fn(x, dim=-1)")


@_never_raises
def check_multihead_split(fn: Callable[[Tensor, int], Tensor]) -> CheckResult:
    """Check ``fn(x, n_heads)``: ``(B, T, C) -> (B, n_heads, T, C // n_heads)``.

    Head h holds the channels ``h * head_dim`` to ``(h + 1) * head_dim - 1``.

    Args:
        fn: The reader's head-splitting function.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    cases = []
    for B, T, C, H in ((2, 5, 12, 3), (3, 7, 16, 4), (2, 1, 12, 4), (1, 4, 8, 1)):
        x, D = _randn(g, B, T, C), C // H
        cases.append(_Case(
            f"(B, T, C) = {(B, T, C)}, n_heads = {H}", {"x": x, "n_heads": H},
            x.view(B, T, H, D).permute(0, 2, 1, 3), atol=0.0, rtol=0.0,
            hint="Split the channels into (n_heads, head_dim), then swap the T and head dims.",
            mistakes=[
                (x.reshape(B, H, T, D), "Reshaping straight to (B, n_heads, T, head_dim) mixes"
                 " tokens across heads: view as (B, T, n_heads, head_dim) first, then swap."),
                (x.view(B, T, D, H).permute(0, 3, 1, 2), "Head h takes a contiguous block of"
                 " channels: h * head_dim to (h + 1) * head_dim - 1."),
            ],
            shape_hints={(B, T, H, D): "Almost there: now swap the T and head dims."},
        ))
    return _run_check("check_multihead_split", fn, cases, "fn(x, n_heads)")


@_never_raises
def check_rope(fn: Callable[[Tensor, Tensor], Tensor]) -> CheckResult:
    """Check ``fn(x, positions)``: RoPE in the rotate-half convention, theta = 10000.

    x is ``(..., T, D)`` with D even, positions ``(T,)`` integers; feature pair i is
    ``(i, i + D/2)`` and rotates by ``positions * theta ** (-2 i / D)``. The output has the
    shape and dtype of x.

    Args:
        fn: The reader's RoPE function.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    specs = [  # name, x shape, positions, hint
        ("(T, D) = (5, 8), positions 0..4", (5, 8), torch.arange(5),
         "Pair feature i with feature i + D/2 and rotate the pair by position * theta^(-2i/D)."),
        ("batched (B, H, T, D)", (2, 3, 6, 16), torch.arange(6),
         "Broadcast the (T, D) cos/sin tables over the leading batch and head dims."),
        ("positions 10..13 (decoding with a KV cache)", (1, 2, 4, 8), torch.arange(10, 14),
         "Rotate by the given positions, not by 0..T-1."),
        ("head_dim 64", (8, 64), torch.arange(8),
         "The inverse frequencies are theta^(-2i/D) for i = 0 .. D/2 - 1."),
    ]
    cases = []
    for name, shape, positions, hint in specs:
        x = _randn(g, *shape)
        T, D = shape[-2], shape[-1]
        cases.append(_Case(
            name, {"x": x, "positions": positions}, _rope_ref(x, positions), atol=1e-5,
            rtol=1e-4, hint=hint,
            mistakes=[
                (_rope_ref(x, positions, interleaved=True), "This course pairs feature i with"
                 " i + D/2 (rotate-half, as in Llama), not neighbours (2i, 2i + 1)."),
                (_rope_ref(x, positions, direction=-1.0), "You rotate the wrong way: the first"
                 " half becomes x1 cos - x2 sin, the second half x2 cos + x1 sin."),
                (_rope_ref(x, positions, exponent=1.0), "The exponent is -2i/D, not -i/D."),
                (_rope_ref(x, positions, exponent=-2.0), "The exponent is negative: -2i/D."),
                (_rope_ref(x, torch.arange(T)), "Use the positions argument, not arange(T)."),
                (x, "You returned x unchanged."),
            ],
            shape_hints={(*shape[:-1], D // 2): "The output has the same shape as x: both"
                         " halves of the features, real tensors."},
        ))
    return _run_check("check_rope", fn, cases, "fn(x, positions)")


@_never_raises
def check_top_p(fn: Callable[[Tensor, float], Tensor]) -> CheckResult:
    """Check ``fn(probs, p) -> keep``: the nucleus (top-p) mask over a ``(V,)`` distribution.

    keep is a ``(V,)`` bool tensor marking the smallest set of most likely tokens whose total
    probability is at least p; the most likely token is always kept.

    Args:
        fn: The reader's top-p function.

    Returns:
        A :class:`CheckResult` that displays itself.
    """
    g = _generator()
    ten = torch.tensor([0.05, 0.30, 0.02, 0.15, 0.07, 0.25, 0.012, 0.10, 0.03, 0.018])
    specs = [  # name, probs, p, hint
        ("p = 0.9 (V = 10)", ten, 0.9,
         "Keep the most likely tokens, in order, until their total probability reaches p."),
        ("p = 0.6: keep the token that crosses p", torch.tensor([0.1, 0.4, 0.2, 0.3]), 0.6,
         "Keep the token that takes the total past p: the kept set's mass must reach p."),
        ("p = 0.1: the top token is always kept", ten, 0.1,
         "The most likely token is always kept, even when its probability alone exceeds p."),
        ("p = 1.0 keeps every token", torch.tensor([0.3, 0.05, 0.25, 0.1, 0.2, 0.1]), 1.0,
         "With p = 1 every token is needed to reach the full mass."),
        ("V = 1000, p = 0.9", _softmax_ref(_randn(g, 1000, scale=2.5), 0), 0.9,
         "Sort the probabilities (descending) before accumulating them."),
    ]
    cases = []
    for name, probs, p, hint in specs:
        expected = _top_p_ref(probs, p)
        order = torch.argsort(probs, descending=True)
        in_order = probs[order].cumsum(0) <= p  # forgets the token that crosses p
        scattered = torch.zeros_like(in_order).scatter(0, order, in_order)
        mistakes = [
            (~expected, "The mask is inverted: True must mean 'keep this token'."),
            (torch.arange(len(probs)) < int(expected.sum()), "Return the mask in the original"
             " token order: entry i says whether token i is kept."),
            (probs.cumsum(0) - probs < p, "Sort the probabilities (descending) before"
             " accumulating them."),
            (scattered, "Keep the token that takes the total past p: the kept set's mass"
             " must reach p."),
        ]
        cases.append(_Case(name, {"probs": probs, "p": p}, expected, hint=hint,
                           mistakes=mistakes))
    return _run_check("check_top_p", fn, cases, "fn(probs, p)")
