"""The shapes Docker prints, which users' scripts parse."""
import datetime as dt

import pytest

from lamina.cli.format import human_duration, human_size, since, table
from lamina.cli.template import Template, render_rows
from lamina.errors import UsageError


@pytest.mark.parametrize("size, text", [
    (0, "0B"), (999, "999B"), (1000, "1kB"), (4_261_000, "4.26MB"), (77_800_000, "77.8MB"),
    (1_240_000_000, "1.24GB"), (123_456, "123kB"),
])
def test_sizes_are_decimal_with_three_digits(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize("seconds, text", [
    (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (3599, "59 minutes"), (3600, "About an hour"), (5400, "2 hours"), (47 * 3600, "47 hours"),
    (48 * 3600, "2 days"), (13 * 86400, "13 days"), (14 * 86400, "2 weeks"),
    (59 * 86400, "8 weeks"), (60 * 86400, "2 months"), (729 * 86400, "24 months"),
    (730 * 86400, "2 years"),
])
def test_durations_read_like_docker(seconds, text):
    assert human_duration(seconds) == text


def test_since_parses_go_timestamps_with_nanoseconds():
    now = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.timezone.utc)
    assert since("2026-11-28T10:59:00.123456789Z", now) == "About an hour ago"
    assert since("2026-11-14T12:00:00+00:00", now) == "2 weeks ago"
    assert since(None, now) == "N/A"
    assert since("1970-01-01T00:00:00Z", now) == "N/A"
    assert since("garbage", now) == "N/A"


def test_table_pads_columns_like_tabwriter():
    out = table([["busybox", "latest", "4.26MB"]], ["REPOSITORY", "TAG", "SIZE"])
    assert out == ("REPOSITORY   TAG       SIZE\n"
                   "busybox      latest    4.26MB\n")


ROWS = [{"Repository": "busybox", "Tag": "latest", "Labels": {"a": "b"}, "Env": ["A=1", "B=2"]}]
HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG"}


def test_custom_format_renders_each_row():
    assert render_rows("{{.Repository}}:{{.Tag}}", ROWS, "", HEADERS) == "busybox:latest\n"


def test_table_format_prints_header_from_fields():
    out = render_rows("table {{.Repository}}\\t{{.Tag}}", ROWS, "", HEADERS)
    assert out.splitlines() == ["REPOSITORY   TAG", "busybox      latest"]


def test_json_format_prints_one_object_per_line():
    assert render_rows("json", ROWS * 2, "", HEADERS).count("\n") == 2


@pytest.mark.parametrize("fmt, expected", [
    ("{{json .Labels}}", '{"a":"b"}'),
    ('{{join .Env ","}}', "A=1,B=2"),
    ('{{index .Labels "a"}}', "b"),
    ("{{upper .Tag}}", "LATEST"),
    ("{{truncate .Repository 4}}", "busy"),
    ("{{.Env}}", "[A=1 B=2]"),
])
def test_docker_template_functions(fmt, expected):
    assert Template(fmt).render(ROWS[0]) == expected


@pytest.mark.parametrize("fmt, message", [
    ("{{.Nope}}", "can't evaluate field Nope"),
    ("{{frob .Tag}}", "function 'frob' not defined"),
    ("{{.Tag", "unclosed action"),
])
def test_bad_formats_are_usage_errors(fmt, message):
    with pytest.raises(UsageError) as info:
        Template(fmt).render(ROWS[0])
    assert message in str(info.value)


def test_a_bare_table_format_is_the_commands_own_table():
    from lamina.cli.template import render_rows

    rows = [{"ID": "abc", "Name": "web"}]
    default = "table {{.ID}}\t{{.Name}}"
    headers = {"ID": "CONTAINER ID", "Name": "NAMES"}
    own = render_rows(None, rows, default, headers)
    assert "CONTAINER ID" in own and "web" in own
    assert render_rows("table", rows, default, headers) == own
    assert render_rows(" table ", rows, default, headers) == own
    assert render_rows("{{.Name}}", rows, default, headers) == "web\n"
