"""The machinery every checker shares: cases, running them safely, describing failures."""

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


def _call_reader(fn: Callable[..., Any], args: dict, kwargs: dict, case: _Case,
                 call: str) -> tuple[Any, list[str]]:
    """Call the reader's function: ``(output, [])``, or ``(None, problems)`` if it cannot be
    called with these arguments or raises."""
    bind_error = _signature_problem(fn, args, kwargs)
    if bind_error is not None:
        return None, [f"Your function cannot be called as {call}: {bind_error}."]
    try:
        return fn(*args.values(), **kwargs), []
    except Exception as exc:
        return None, _describe_exception(exc) + ([f"Hint: {case.hint}"] if case.hint else [])


def _run_case(fn: Callable[..., Any], case: _Case, call: str) -> list[str]:
    """Problems found in one case (empty list = passed)."""
    # The reader's function gets copies, so the originals stay pristine for the in-place check.
    args = {k: _clone(v) for k, v in case.args.items()}
    kwargs = {k: _clone(v) for k, v in case.kwargs.items()}
    out, call_problems = _call_reader(fn, args, kwargs, case, call)
    if call_problems:
        return call_problems

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


def answered(*values: Any) -> bool:
    """True once no value is None or ``...`` (a lab's placeholder): demo cells wait on it.

    Example: ``if answered(attention(q, k, v)): plot(...)`` runs the demonstration only after
    the reader has filled in ``attention``.
    """
    return all(v is not None and v is not Ellipsis for v in values)


def _number_case_problems(fn: Callable[..., Any], case: _Case, call: str) -> list[str]:
    """Problems found in one case of a number-valued exercise (empty list = passed)."""
    args, kwargs = dict(case.args), dict(case.kwargs)
    out, call_problems = _call_reader(fn, args, kwargs, case, call)
    if call_problems:
        return call_problems
    if out is None:
        return ["Your function returned None. Did you forget the return statement?"]
    if isinstance(out, Tensor):
        if out.numel() != 1:
            return [f"Your function returned a tensor of shape {_shape(out)}; expected one"
                    " number (an int or a float)."]
        out = out.item()
    if isinstance(out, bool) or not isinstance(out, (int, float)) and not hasattr(out, "__float__"):
        return [f"Your function returned {_type_name(out)}; expected one number (an int or a"
                " float)."]
    value, expected = float(out), float(case.expected)
    if not math.isfinite(value):
        return [f"Your function returned {value}; expected a finite number."]
    if math.isclose(value, expected, rel_tol=case.rtol, abs_tol=case.atol):
        return []
    ratio = f" ({value / expected:.3g} times the expected value)" if expected else ""
    problems = [f"Expected {expected:.6g}, got {value:.6g}{ratio}."]
    hint = next((h for wrong, h in case.mistakes
                 if math.isclose(value, float(wrong), rel_tol=case.rtol, abs_tol=case.atol)),
                None)
    if hint or case.hint:
        problems.append(f"Hint: {hint or case.hint}")
    return problems


def _run_number_check(name: str, fn: Any, cases: list[_Case], call: str) -> CheckResult:
    """Like ``_run_check``, for exercises whose answer is a single number."""
    if not callable(fn):
        return CheckResult(name, False, _not_callable(name, fn, call))
    failures = [(case, problems) for case in cases
                if (problems := _number_case_problems(fn, case, call))]
    if not failures:
        return CheckResult(name, True, [f"All {len(cases)} cases passed."])
    case, problems = failures[0]
    messages = [
        f"Case '{case.name}' failed ({len(cases) - len(failures)} of {len(cases)} cases passed).",
        "Inputs: " + ", ".join(f"{k} = {v:,}" if isinstance(v, int) else f"{k} = {v:g}"
                               for k, v in _all_args(case).items()),
        *problems,
    ]
    if len(failures) > 1:
        others = ", ".join(f"'{c.name}'" for c, _ in failures[1:])
        messages.append(f"Also failing: {others}. Fix the first case, then run the check again.")
    return CheckResult(name, False, messages)


def _number(value: float) -> Tensor:
    return torch.tensor(float(value), dtype=torch.float64)
