"""The console's formatting of API values: what the screens show for good values and for odd ones
(the API's JSON is data from elsewhere; a string where a number belongs must not crash a screen)."""

from __future__ import annotations

import time

import pytest

from logmail.tui import formatting
from logmail.tui.widgets.mail_list import recipients, row_cells


def test_times_today_and_earlier():
    now = int(time.time() * 1000)
    assert formatting.when(now, now).count(":") == 2
    assert formatting.when(now - 400 * 86_400_000, now)[-4:].isdigit()  # another year: the year shows
    assert formatting.when(None) == formatting.when(0) == "—"


@pytest.mark.parametrize("value", ["1700", [1], {"a": 1}, True, 10**30, -(10**30), float("nan")])
def test_odd_times_are_shown_not_obeyed(value):
    assert isinstance(formatting.when(value), str)
    assert isinstance(formatting.when_full(value), str)


def test_sizes():
    assert formatting.size(0) == "0 B"
    assert formatting.size(2048) == "2.0 KB"
    assert formatting.size(5 * 1024**3) == "5.0 GB"
    assert formatting.size(None) == "—"
    assert formatting.size("12kB") == "12kB"
    assert formatting.size(True) == "True"


def test_one_line_strips_control_characters_and_fits():
    assert formatting.one_line("a\x1b[31mb\nc\td") == "a [31mb c d"
    assert formatting.one_line("abcdefgh", 5) == "abcd…"


def test_a_message_summary_with_odd_fields_still_makes_a_row():
    odd = {"id": "x", "to": "not a list", "envelope": ["not", "a dict"], "receivedAt": "soon", "size": "big",
           "from": 42, "subject": None}
    widths = {"mark": 3, "time": 9, "from": 14, "to": 14, "subject": 20, "size": 8}
    assert recipients(odd) == []
    assert len(row_cells(odd, widths)) == len(widths)
    assert recipients({"to": [], "envelope": {"rcptTo": ["dev@example.com", "\x1b[2Jx@y"]}}) == \
        ["dev@example.com", " [2Jx@y"]
