"""Learner import: parsing and validating a learners CSV (pure), then upserting it into the DB.

`parse_learners_csv(data, source)` turns the bytes of a CSV file into validated `LearnerRow`s and
`RowError`s numbered as a spreadsheet shows them (the header is row 1). A problem with the file
as a whole (not UTF-8, empty, no name column, a header that cannot be an attribute name) raises
`LearnerFileError` and nothing is imported.

`import_learners(rows)` is idempotent: a learner is matched by email (case-insensitive), else by
Telegram handle, and only changed fields are written. Emails and handles are stored lowercase,
so the database's unique constraints also hold case-insensitively.

What an import changes on an existing learner: the name always; timezone, language and each
custom attribute only when the file has that column (an empty cell clears it); email and
Telegram handle are set or changed but never cleared by an empty cell, since a learner may have
connected a channel after the roster was exported.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError
from tortoise.functions import Lower
from tortoise.transactions import in_transaction

from dripper.config import canonical_timezone
from dripper.errors import DripperError
from dripper.models import Learner

STANDARD_COLUMNS = ("name", "first_name", "last_name", "email", "telegram", "timezone", "language")

# Headers people write for the standard columns, after normalisation.
COLUMN_ALIASES = {
    "e_mail": "email",
    "email_address": "email",
    "telegram_username": "telegram",
    "telegram_handle": "telegram",
    "full_name": "name",
    "firstname": "first_name",
    "given_name": "first_name",
    "lastname": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "time_zone": "timezone",
    "tz": "timezone",
    "lang": "language",
    "locale": "language",
}

# Lengths the `learner` table accepts.
MAX_NAME = 200
MAX_EMAIL = 320
MAX_LANGUAGE = 16

EMAIL_RE = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]+$")
TELEGRAM_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{4,31}$")
LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]*$")

# Words Jinja parses as operators or literals: an attribute with such a name breaks templates.
TEMPLATE_KEYWORDS = frozenset(
    {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "loop", "self"}
)

# Rows written to the database per transaction.
BATCH_SIZE = 500


class LearnerFileError(DripperError):
    """The learners file cannot be used at all; nothing is imported."""


@dataclass(frozen=True)
class LearnerRow:
    """One valid row: a learner as the file describes it, normalised."""

    row: int  # as a spreadsheet numbers it: the header is row 1
    first_name: str
    last_name: str
    email: str | None  # lowercase
    telegram: str | None  # lowercase, without "@"
    timezone: str | None  # canonical IANA name
    language: str | None  # BCP 47 casing: "pt-BR"
    attributes: dict[str, str]  # non-empty custom cells
    columns: frozenset[str]  # the standard and custom columns the file has

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass(frozen=True)
class RowError:
    """A rejected row and why, printed as `file:row: message`."""

    source: str
    row: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.row}: {self.message}"


@dataclass(frozen=True)
class ParsedLearners:
    source: str
    rows: list[LearnerRow]
    errors: list[RowError]
    warnings: list[str]


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RowError] = field(default_factory=list)  # rows the database refused

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


# --------------------------------------------------------------------------- parsing (pure)


def normalise_column(header: str) -> str:
    """`" Cost Center "` -> `cost_center`: lowercase, spaces and dashes become underscores."""
    name = re.sub(r"[\s\-]+", "_", header.strip().lower())
    return COLUMN_ALIASES.get(name, name)


def parse_learners_csv(data: bytes, source: str) -> ParsedLearners:
    """Validate a learners CSV; see the module docstring for the columns and rules."""
    text = _decode(data, source)
    if not text.strip():
        raise LearnerFileError(
            f"{source}: the file is empty; the first row must name the columns, "
            "e.g. name,email,telegram,timezone,language"
        )
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text)))
    except csv.Error as exc:
        raise LearnerFileError(f"{source}: not a readable CSV file: {exc}") from None
    header_index = next(
        (i for i, cells in enumerate(records) if any(c.strip() for c in cells)), None
    )
    if header_index is None:
        raise LearnerFileError(
            f"{source}: no row names any column (only separators); the first row must name "
            "the columns, e.g. name,email,telegram,timezone,language"
        )
    columns, warnings = _columns(records[header_index], f"{source}:{header_index + 1}")
    present = frozenset(c for c in columns if c is not None)
    rows: list[LearnerRow] = []
    errors: list[RowError] = []
    seen_email: dict[str, int] = {}
    seen_telegram: dict[str, int] = {}
    body = records[header_index + 1 :]
    for number, cells in enumerate(body, start=header_index + 2):
        if not any(cell.strip() for cell in cells):
            continue
        try:
            row = _learner_row(number, columns, present, cells)
        except ValueError as exc:
            errors.append(RowError(source, number, str(exc)))
            continue
        duplicate = _duplicate(row, seen_email, seen_telegram)
        if duplicate:
            errors.append(RowError(source, number, duplicate))
            continue
        if row.email:
            seen_email[row.email] = number
        if row.telegram:
            seen_telegram[row.telegram] = number
        rows.append(row)
    return ParsedLearners(source, rows, errors, warnings)


def _decode(data: bytes, source: str) -> str:
    is_utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))  # Excel's "Unicode text"
    encoding = "utf-16" if is_utf16 else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise LearnerFileError(
            f"{source}:{line}: the file is not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            'save it from your spreadsheet as "CSV UTF-8"'
        ) from None


def _delimiter(text: str) -> str:
    """`;` or tab when the header uses it (spreadsheets in many locales), else `,`."""
    header = text.lstrip("\r\n").splitlines()[0]
    header = re.sub(r'"[^"]*"', "", header)
    counts = {delimiter: header.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _columns(header: list[str], where: str) -> tuple[list[str | None], list[str]]:
    """The normalised name of each column (None for a blank header), and warnings.

    `where` is `file:row` of the header, for messages.
    """
    columns: list[str | None] = []
    warnings: list[str] = []
    first_seen: dict[str, str] = {}
    for raw in header:
        if not raw.strip():
            columns.append(None)
            continue
        name = normalise_column(raw)
        if not IDENTIFIER_RE.match(name) or name in TEMPLATE_KEYWORDS:
            raise LearnerFileError(
                f'{where}: column "{_shown(raw.strip())}" cannot be used as an attribute name '
                "in templates: use letters, digits, spaces or _, start with a letter and avoid "
                "template words such as if, in, not"
            )
        if name in first_seen:
            raise LearnerFileError(
                f'{where}: columns "{_shown(first_seen[name])}" and "{_shown(raw.strip())}" '
                f'both mean "{name}"; keep one'
            )
        first_seen[name] = raw.strip()
        if name not in STANDARD_COLUMNS:
            # Stricter than did_you_mean: "manager" must not suggest "language".
            close = difflib.get_close_matches(name, STANDARD_COLUMNS, n=1, cutoff=0.8)
            if close:
                warnings.append(
                    f'{where}: column "{_shown(raw.strip())}" is imported as a custom '
                    f'attribute (did you mean "{close[0]}"?)'
                )
        columns.append(name)
    present = set(first_seen)
    if not present & {"name", "first_name"}:
        there = ' (there is a "last_name")' if "last_name" in present else ' (or "first_name")'
        column = "first_name" if "last_name" in present else "name"
        raise LearnerFileError(f'{where}: missing column "{column}"{there}')
    if "email" not in present and "telegram" not in present:
        raise LearnerFileError(f'{where}: missing column "email" or "telegram" (one is needed)')
    return columns, warnings


def _learner_row(
    number: int, columns: list[str | None], present: frozenset[str], cells: list[str]
) -> LearnerRow:
    """Validate one record; ValueError carries the reason shown to the user."""
    values: dict[str, str] = {}
    for index, cell in enumerate(cells):
        value = cell.strip()
        column = columns[index] if index < len(columns) else None
        if column is None:
            if value:
                where = f"column {index + 1}"
                raise ValueError(f"{where} has a value but no header: add a header or remove it")
            continue
        if column not in STANDARD_COLUMNS:
            # A multi-line spreadsheet cell is fine in a custom attribute, not in a name.
            value = value.replace("\r\n", "\n")
            checked = value.replace("\n", "").replace("\t", "")
        else:
            checked = value
        if _has_control_characters(checked):
            raise ValueError(f'{column} "{_shown(value)}" contains control characters')
        values[column] = value

    first_name, last_name = _names(values)
    email = _email(values.get("email", ""))
    telegram = _telegram(values.get("telegram", ""))
    if email is None and telegram is None:
        raise ValueError("needs an email or a telegram handle")
    attributes = {
        column: value
        for column, value in values.items()
        if column not in STANDARD_COLUMNS and value
    }
    return LearnerRow(
        row=number,
        first_name=first_name,
        last_name=last_name,
        email=email,
        telegram=telegram,
        timezone=_timezone(values.get("timezone", "")),
        language=_language(values.get("language", "")),
        attributes=attributes,
        columns=present,
    )


def _names(values: dict[str, str]) -> tuple[str, str]:
    first = " ".join(values.get("first_name", "").split())
    last = " ".join(values.get("last_name", "").split())
    if not first:
        full = " ".join(values.get("name", "").split())
        first, _, last = full.partition(" ")
    if not first:
        raise ValueError("needs a name")
    for part in (first, last):
        if len(part) > MAX_NAME:
            raise ValueError(f"name is longer than {MAX_NAME} characters")
    return first, last


def _email(value: str) -> str | None:
    if not value:
        return None
    if len(value) > MAX_EMAIL or not EMAIL_RE.match(value):
        raise ValueError(
            f'invalid email "{_shown(value)}": expected an address like ana@example.com'
        )
    return value.lower()


def _telegram(value: str) -> str | None:
    handle = value.removeprefix("@")
    if not handle:
        return None
    if not TELEGRAM_RE.match(handle):
        raise ValueError(
            f'invalid telegram handle "{_shown(value)}": 5-32 letters, digits or _, '
            "starting with a letter"
        )
    return handle.lower()


def _timezone(value: str) -> str | None:
    if not value:
        return None
    return canonical_timezone(value)


def _language(value: str) -> str | None:
    if not value:
        return None
    tag = value.replace("_", "-")
    if len(tag) > MAX_LANGUAGE or not LANGUAGE_RE.match(tag):
        raise ValueError(f'invalid language "{_shown(value)}": expected a code like en, de, pt-BR')
    language, *subtags = tag.split("-")
    parts = [language.lower()]
    for subtag in subtags:
        if len(subtag) == 2 and subtag.isalpha():
            parts.append(subtag.upper())  # region
        elif len(subtag) == 4 and subtag.isalpha():
            parts.append(subtag.title())  # script
        else:
            parts.append(subtag.lower())
    return "-".join(parts)


def _duplicate(row: LearnerRow, seen_email: dict[str, int], seen_telegram: dict[str, int]) -> str:
    if row.email and row.email in seen_email:
        return f'duplicate email "{row.email}" (also on row {seen_email[row.email]})'
    if row.telegram and row.telegram in seen_telegram:
        return f'duplicate telegram "@{row.telegram}" (also on row {seen_telegram[row.telegram]})'
    return ""


def _has_control_characters(value: str) -> bool:
    return any(unicodedata.category(char) == "Cc" for char in value)


def _shown(value: str, limit: int = 60) -> str:
    """A cell as quoted in a message: control characters made visible, long values cut."""
    visible = "".join(
        f"\\x{ord(char):02x}" if unicodedata.category(char) == "Cc" else char for char in value
    )
    return visible if len(visible) <= limit else visible[: limit - 1] + "…"


# --------------------------------------------------------------------------- database


@dataclass
class _Plan:
    """What one batch will write: new learners, changed learners, and rejected rows."""

    create: list[LearnerRow] = field(default_factory=list)
    update: list[tuple[Learner, dict[str, object]]] = field(default_factory=list)
    unchanged: int = 0
    rejected: list[RowError] = field(default_factory=list)


ProgressCallback = Callable[[int], object]


async def import_learners(
    rows: Sequence[LearnerRow],
    *,
    source: str = "learners",
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Create or update a learner per row, in batches of BATCH_SIZE rows per transaction.

    Needs an open database (`dripper.db.open_db`) in the calling task. `dry_run` reads but writes
    nothing. `progress(n)` is called after each batch with the number of rows it handled. A row
    that would take an email or handle owned by another learner is rejected, not merged.
    """
    result = ImportResult()
    claimed: dict[int, int] = {}  # learner id -> the row that matched it
    for start in range(0, len(rows), BATCH_SIZE):
        batch = rows[start : start + BATCH_SIZE]
        try:
            async with in_transaction():
                plan = await _plan_batch(batch, source, claimed)
                if not dry_run:
                    await _write(plan)
        except IntegrityError as exc:
            # Another process changed the same learners meanwhile; the batch was rolled back.
            rows_span = f"rows {batch[0].row}-{batch[-1].row}"
            raise DripperError(
                f"{source}: the database refused {rows_span} ({exc}); earlier rows were "
                "imported, run the same import again to finish"
            ) from None
        result.created += len(plan.create)
        result.updated += len(plan.update)
        result.unchanged += plan.unchanged
        result.rejected.extend(plan.rejected)
        if progress is not None:
            progress(len(batch))
    return result


def plan_without_database(rows: Sequence[LearnerRow]) -> ImportResult:
    """What importing `rows` into an empty database would do (a dry run with no database yet)."""
    return ImportResult(created=len(rows))


async def _plan_batch(batch: Sequence[LearnerRow], source: str, claimed: dict[int, int]) -> _Plan:
    emails = [row.email for row in batch if row.email]
    handles = [row.telegram for row in batch if row.telegram]
    by_email: dict[str, Learner] = {}
    by_telegram: dict[str, Learner] = {}
    if emails:
        query = Learner.annotate(email_lower=Lower("email")).filter(email_lower__in=emails)
        by_email = {str(learner.email).lower(): learner for learner in await query}
    if handles:
        query = Learner.annotate(telegram_lower=Lower("telegram_username")).filter(
            telegram_lower__in=handles
        )
        by_telegram = {str(t.telegram_username).lower(): t for t in await query}

    plan = _Plan()
    for row in batch:
        by_row_email = by_email.get(row.email) if row.email else None
        by_row_telegram = by_telegram.get(row.telegram) if row.telegram else None
        learner = by_row_email or by_row_telegram
        if by_row_email and by_row_telegram and by_row_email.id != by_row_telegram.id:
            plan.rejected.append(
                RowError(
                    source,
                    row.row,
                    f'email "{row.email}" and telegram "@{row.telegram}" belong to two '
                    f"different learners ({_shown(by_row_email.name)}, "
                    f"{_shown(by_row_telegram.name)}); fix the row or merge them first",
                )
            )
            continue
        if learner is None:
            plan.create.append(row)
            continue
        if learner.id in claimed:
            plan.rejected.append(
                RowError(
                    source,
                    row.row,
                    f"matches the same learner as row {claimed[learner.id]} "
                    f"({_shown(learner.name)})",
                )
            )
            continue
        claimed[learner.id] = row.row
        changes = _changes(learner, row)
        if changes:
            plan.update.append((learner, changes))
        else:
            plan.unchanged += 1
    return plan


def _changes(learner: Learner, row: LearnerRow) -> dict[str, object]:
    """The learner fields the row changes, by column name."""
    wanted: dict[str, object] = {"first_name": row.first_name, "last_name": row.last_name}
    if row.email:
        wanted["email"] = row.email
    if row.telegram:
        wanted["telegram_username"] = row.telegram
    if "timezone" in row.columns:
        wanted["timezone"] = row.timezone
    if "language" in row.columns:
        wanted["language"] = row.language
    stored_attributes: dict[str, str] = dict(learner.attributes or {})
    custom_columns = row.columns.difference(STANDARD_COLUMNS)
    attributes = {k: v for k, v in stored_attributes.items() if k not in custom_columns}
    attributes.update(row.attributes)
    wanted["attributes"] = attributes
    return {
        name: value
        for name, value in wanted.items()
        if (getattr(learner, name) if name != "attributes" else stored_attributes) != value
    }


async def _write(plan: _Plan) -> None:
    if plan.create:
        await Learner.bulk_create([_new_learner(row) for row in plan.create])
    now = datetime.now(UTC)
    # bulk_update writes the same columns for every object: group learners by what changed.
    by_fields: dict[tuple[str, ...], list[Learner]] = {}
    for learner, changes in plan.update:
        for name, value in changes.items():
            setattr(learner, name, value)
        learner.updated_at = now
        by_fields.setdefault(tuple(sorted(changes)), []).append(learner)
    for fields, learners in by_fields.items():
        await Learner.bulk_update(learners, fields=[*fields, "updated_at"])


def _new_learner(row: LearnerRow) -> Learner:
    return Learner(
        first_name=row.first_name,
        last_name=row.last_name,
        email=row.email,
        telegram_username=row.telegram,
        timezone=row.timezone,
        language=row.language,
        attributes=row.attributes,
    )


def learner_as_dict(learner: Learner) -> dict[str, object]:
    """A learner as `dripper learners list --json` prints it."""
    return {
        "id": learner.id,
        "name": learner.name,
        "first_name": learner.first_name,
        "last_name": learner.last_name,
        "email": learner.email,
        "telegram": learner.telegram_username,
        "timezone": learner.timezone,
        "language": learner.language,
        "attributes": learner.attributes,
    }


EXAMPLE_CSV = """\
Name,Email,Telegram,Timezone,Language,Department,Manager
Zoë Fischer,zoe.fischer@example.com,@zoe_fischer,Europe/Berlin,de,Sales,Anna Weber
José García,jose.garcia@example.com,,America/Mexico_City,es,Customer Support,María López
Łukasz Nowak,,@lukasz_nowak,Europe/Warsaw,pl,Engineering,Ewa Kowalska
Priya Raman,priya.raman@example.com,priya_raman,Asia/Kolkata,en,Engineering,Ewa Kowalska
Aiko Tanaka,aiko.tanaka@example.com,,Asia/Tokyo,ja,Marketing,Anna Weber
Liam O'Connor,liam.oconnor@example.com,liam_oconnor,America/New_York,en,Sales,Anna Weber
Ana Beatriz Souza,ana.souza@example.com,,America/Sao_Paulo,pt-BR,Customer Support,María López
"""
"""The learners.csv `dripper init` writes: names with accents, a Telegram-only and mixed rows."""
