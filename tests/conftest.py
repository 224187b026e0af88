"""The shared fixtures, as plugins: databases (SQLite files, PostgreSQL), IMAP mailboxes and
the Telegram and SMTP sandboxes. See each module under tests/fixtures/ for what it offers; the
plain helper modules there (test data, `waiting`) are imported by the tests that use them."""

import pytest

# The helper modules under tests/fixtures/ assert too: pytest explains their failures as well.
pytest.register_assert_rewrite("tests.fixtures")

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.mail",
]
