"""Assertions on checker results, shared by the tests of utils.checks."""

from __future__ import annotations

from utils.checks import CheckResult


def text(result: CheckResult) -> str:
    """The checker's messages as one string."""
    return "\n".join(result.messages)


def failed(result: CheckResult, *fragments: str) -> str:
    """Assert the result failed and mentions every fragment; return its text."""
    assert isinstance(result, CheckResult)
    assert not result.passed, text(result)
    body = text(result)
    for fragment in fragments:
        assert fragment in body, f"{fragment!r} not in:\n{body}"
    return body
