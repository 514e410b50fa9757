"""The Warning header a response carries for each warning, as Kubernetes' NewWarningHeader
builds it (and refuses it)."""

from __future__ import annotations

import pytest

from setpoint.api.handlers import warning_header


def test_a_warning_is_quoted_with_code_299_and_no_agent() -> None:
    assert warning_header('unknown field "spec.x"') == '299 - "unknown field \\"spec.x\\""'


@pytest.mark.parametrize("text", ["a\r\nb", "tab\there", "bell\x07", "del\x7f", "c1\x85", "\ud800"])
def test_text_with_a_control_character_or_not_utf8_has_no_header(text: str) -> None:
    assert warning_header(text) is None


def test_text_beyond_ascii_is_kept() -> None:
    assert warning_header("champ inconnu «é»") == '299 - "champ inconnu «é»"'
