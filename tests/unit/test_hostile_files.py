"""Learner CSVs and CSV output with hostile content: clear errors, no formulas, fuzz."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dripper.csvout import csv_text, safe_cell
from dripper.db import redact_url
from dripper.learners.roster import LearnerFileError, ParsedLearners, parse_learners_csv


@pytest.mark.parametrize("data", [b",,,\n", b",,,\n,,\n", b"\n\n,\n", b'"",""\n'])
def test_a_csv_of_only_separators_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(LearnerFileError, match="no row names any column"):
        parse_learners_csv(data, "learners.csv")


@settings(max_examples=400, deadline=None)
@given(
    data=st.binary(max_size=200)
    | st.text(alphabet=st.sampled_from(list(',;\t"\n\r =@+-x1éa:')), max_size=120).map(str.encode)
)
def test_any_learners_file_parses_or_is_a_learner_file_error(data: bytes) -> None:
    try:
        parsed = parse_learners_csv(data, "learners.csv")
    except LearnerFileError as exc:
        assert str(exc).startswith("learners.csv")
        return
    assert isinstance(parsed, ParsedLearners)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://evil/","x")', '\'=HYPERLINK("http://evil/","x")'),
        ("+1 555", "'+1 555"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTAB", "'\tTAB"),
        ("plain\x1b[31mred", "plain[31mred"),
        ("two\nlines", "two\nlines"),
        (3, 3),
    ],
)
def test_csv_cells_are_never_formulas(value: object, cell: object) -> None:
    assert safe_cell(value) == cell


@given(st.lists(st.lists(st.text(max_size=12), min_size=2, max_size=2), max_size=5))
def test_csv_text_reads_back_without_a_formula(rows: list[list[str]]) -> None:
    back = list(csv.reader(io.StringIO(csv_text(["a", "b"], rows))))
    assert back[0] == ["a", "b"]
    for cell in (cell for row in back[1:] for cell in row):
        assert not cell.startswith(("=", "+", "-", "@"))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://u@h/db?password=s3cret&sslmode=require",
            "postgresql://u@h/db?password=***&sslmode=require",
        ),
        (
            "postgresql://h/db?sslpassword=x&application_name=dripper",
            "postgresql://h/db?sslpassword=***&application_name=dripper",
        ),
        ("postgresql://u:p@h/db?api_token=t", "postgresql://u:***@h/db?api_token=***"),
        ("sqlite:///tmp/a.sqlite3?busy_timeout=100", "sqlite:///tmp/a.sqlite3?busy_timeout=100"),
    ],
)
def test_secrets_in_the_query_string_are_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown
