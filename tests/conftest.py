"""The shared fixtures, as plugins: databases (SQLite files, PostgreSQL), IMAP mailboxes and
the Telegram and SMTP sandboxes. See each module under tests/fixtures/ for what it offers."""

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.mail",
]
