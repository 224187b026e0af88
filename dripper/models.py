"""Tortoise ORM models: every table dripper stores, with the constraints the database enforces.

Times are stored in UTC. Enumerations are stored as short strings so that SQLite and PostgreSQL
rows read the same in a shell. Uniqueness that guards a business rule (one delivery per
enrollment, step and occurrence; one raw inbound item per external id) lives here as a constraint,
so a double fire is refused by the database, not by hope.

Every model sets `_no_comments`: Tortoise would otherwise read and parse each model's source for
`#:` field comments (about 170 ms, at the start of every command; dripper uses none).
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Channel(StrEnum):
    TELEGRAM = "telegram"
    EMAIL = "email"


class Reachability(StrEnum):
    """Whether a learner can be reached on one channel."""

    UNKNOWN = "unknown"  # an address or handle is known but never used yet
    OK = "ok"
    UNREACHABLE = "unreachable"  # bot blocked, account deactivated, hard bounce


class EnrollmentState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class DeliveryKind(StrEnum):
    STEP = "step"  # a curriculum step, first send
    NUDGE = "nudge"  # a reminder for an unanswered question / check-in
    REASK = "reask"  # spaced repetition of a quiz answered wrongly
    REPLY = "reply"  # a trainer's answer from the inbox
    FEEDBACK = "feedback"  # right/wrong and the explanation, for an answer given by email


class DeliveryState(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"  # outcome unknown twice: not retried again, shown to trainers
    HELD = "held"  # its enrollment is paused; due times move by the pause on resume
    SKIPPED = "skipped"  # by an explicit policy such as expire_after
    CANCELLED = "cancelled"  # step removed, learner opted out, enrollment cancelled


class ConversationStatus(StrEnum):
    OPEN = "open"
    WAITING = "waiting"  # waiting on the learner
    CLOSED = "closed"
    SNOOZED = "snoozed"


class MessageDirection(StrEnum):
    INBOUND = "in"
    OUTBOUND = "out"
    NOTE = "note"  # internal trainer note, never sent
    SYSTEM = "system"  # an event dripper noted (a channel switch), never sent


class InboundState(StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    FLAGGED = "flagged"  # stored but could not be processed; kept for a human
    DISMISSED = "dismissed"  # flagged, then a trainer looked at it and let it be


class Trainer(Model):
    _no_comments = True  # Tortoise would parse this class's source (see above)
    id = fields.IntField(primary_key=True)
    handle = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=200)
    email = fields.CharField(max_length=320, null=True)
    timezone = fields.CharField(max_length=64, default="UTC")
    created_at = fields.DatetimeField(auto_now_add=True)
    # The trainer's own chat with the bot, bound by `dripper trainers invite`: never a learner's.
    telegram_chat_id = fields.BigIntField(null=True, unique=True)
    invite_serial = fields.IntField(
        default=0, db_default=0
    )  # bumped when an invite is used: single use
    # Local "HH:MM" times: no notifications from quiet_start to quiet_end (may span midnight).
    quiet_start = fields.CharField(max_length=5, null=True)
    quiet_end = fields.CharField(max_length=5, null=True)
    # cohort ids; [] = all
    follows: fields.Field[list[int]] = fields.JSONField(default=list, db_default="[]")
    notify = fields.BooleanField(default=True, db_default=True)
    # Learner messages up to this id have been announced (or passed over) for this trainer.
    notified_upto = fields.IntField(default=0, db_default=0)
    last_notice_at = fields.DatetimeField(null=True)
    # The daily digest: the local time it goes out ("08:00", None: no digest), and the local
    # date it last went out (a guarded UPDATE claims each day once).
    digest_at = fields.CharField(max_length=5, null=True, default="08:00", db_default="08:00")
    digest_sent_on = fields.CharField(max_length=10, null=True)

    class Meta:
        table = "trainer"


class TrainerNotice(Model):
    """A message dripper sent (or will send) to a trainer: a notification of learner messages,
    a daily digest, or the bot's answer in the trainer's chat. A Telegram reply to it acts on its
    conversations, so the sent message's id is kept."""

    _no_comments = True  # Tortoise would parse this class's source (see above)

    id = fields.IntField(primary_key=True)
    trainer: fields.ForeignKeyRelation[Trainer] = fields.ForeignKeyField(
        "models.Trainer", related_name="notices", on_delete=fields.CASCADE
    )
    # "notice" (learner messages), "digest", or "answer" (the bot's answer in the trainer chat)
    kind = fields.CharField(max_length=16, default="notice", db_default="notice")
    channel = fields.CharEnumField(Channel, max_length=16)
    body = fields.TextField()  # Markdown
    subject = fields.CharField(max_length=200, default="")
    conversations: fields.Field[list[int]] = fields.JSONField(default=list)
    messages: fields.Field[list[int]] = fields.JSONField(default=list)  # the learner messages
    sent = fields.BooleanField(default=False)
    telegram_message_id = fields.BigIntField(null=True)
    attempts = fields.IntField(default=0)
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "trainer_notice"
        indexes = (("sent",), ("trainer_id", "telegram_message_id"))


class Learner(Model):
    """A person receiving drips. Identified by email, else by Telegram handle."""

    _no_comments = True  # Tortoise would parse this class's source (see above)

    id = fields.IntField(primary_key=True)
    email = fields.CharField(max_length=320, null=True, unique=True)
    telegram_username = fields.CharField(max_length=64, null=True, unique=True)
    telegram_chat_id = fields.BigIntField(null=True, unique=True)
    first_name = fields.CharField(max_length=200)
    last_name = fields.CharField(max_length=200, default="")
    timezone = fields.CharField(max_length=64, null=True)
    language = fields.CharField(max_length=16, null=True)
    attributes: fields.Field[dict[str, str]] = fields.JSONField(default=dict)
    email_status = fields.CharEnumField(Reachability, max_length=16, default=Reachability.UNKNOWN)
    telegram_status = fields.CharEnumField(
        Reachability, max_length=16, default=Reachability.UNKNOWN
    )
    soft_bounces = fields.IntField(default=0)
    media_bytes = fields.BigIntField(
        default=0, db_default=0
    )  # downloaded attachments kept, for the cap
    paused_until = fields.DatetimeField(null=True)
    opted_out_at = fields.DatetimeField(null=True)
    # `dripper learners erase`: personal data deleted, the row kept for anonymous counts.
    erased_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "learner"

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class CurriculumVersion(Model):
    """One content version of a curriculum file. Enrollments pin the version they run."""

    _no_comments = True  # Tortoise would parse this class's source (see above)

    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=64, db_index=True)  # the `id:` in the YAML
    content_hash = fields.CharField(max_length=64)  # sha256 of the source bytes
    title = fields.CharField(max_length=200)
    source = fields.TextField()
    source_path = fields.CharField(max_length=1024, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "curriculum_version"
        unique_together = (("key", "content_hash"),)


class Cohort(Model):
    _no_comments = True  # Tortoise would parse this class's source (see above)
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=200, unique=True)
    curriculum_key = fields.CharField(max_length=64)
    course_end = fields.DatetimeField()
    paused = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "cohort"


class Enrollment(Model):
    _no_comments = True  # Tortoise would parse this class's source (see above)
    id = fields.IntField(primary_key=True)
    learner: fields.ForeignKeyRelation[Learner] = fields.ForeignKeyField(
        "models.Learner", related_name="enrollments", on_delete=fields.CASCADE
    )
    cohort: fields.ForeignKeyRelation[Cohort] = fields.ForeignKeyField(
        "models.Cohort", related_name="enrollments", on_delete=fields.CASCADE
    )
    curriculum: fields.ForeignKeyRelation[CurriculumVersion] = fields.ForeignKeyField(
        "models.CurriculumVersion", related_name="enrollments", on_delete=fields.RESTRICT
    )
    state = fields.CharEnumField(EnrollmentState, max_length=16, default=EnrollmentState.ACTIVE)
    anchor_at = fields.DatetimeField()  # the course end, or the enrollment time
    # The earliest due time of a step not yet in the outbox (None: every step is planned).
    plan_due_at = fields.DatetimeField(null=True, db_index=True)
    shift_seconds = fields.BigIntField(default=0)  # time spent paused: later steps move by it
    paused_at = fields.DatetimeField(null=True)
    pause_reason = fields.CharField(max_length=16, null=True)  # "learner", "cohort", "trainer"
    resume_at = fields.DatetimeField(null=True)
    # Why the planner could not plan this enrollment (a curriculum it cannot schedule); shown
    # to trainers, retried hourly, cleared once it plans again.
    plan_error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "enrollment"
        unique_together = (("learner", "cohort"),)


class Delivery(Model):
    """The outbox: one row per message to send, claimed and recorded by the dispatcher.

    `business_key` makes a double fire harmless: "<enrollment>:<step>:<occurrence>" for drip steps,
    "reply:<message id>" for trainer replies. `due_at` is when it should arrive, `available_at`
    when it may next be tried (later after a retryable error). `uncertain` records that an
    earlier attempt had an unknown outcome, so the message may arrive twice.
    """

    _no_comments = True  # Tortoise would parse this class's source (see above)

    id = fields.IntField(primary_key=True)
    business_key = fields.CharField(max_length=200, unique=True)
    enrollment: fields.ForeignKeyNullableRelation[Enrollment] = fields.ForeignKeyField(
        "models.Enrollment", related_name="deliveries", null=True, on_delete=fields.CASCADE
    )
    learner: fields.ForeignKeyRelation[Learner] = fields.ForeignKeyField(
        "models.Learner", related_name="deliveries", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(DeliveryKind, max_length=16)
    step_id = fields.CharField(max_length=64, null=True)
    occurrence = fields.IntField(default=0)
    channel_preference = fields.CharField(max_length=16, default="any")  # telegram/email/any
    channel = fields.CharEnumField(Channel, max_length=16, null=True)  # the one it went out on
    due_at = fields.DatetimeField()
    available_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(null=True)
    state = fields.CharEnumField(DeliveryState, max_length=16, default=DeliveryState.PENDING)
    uncertain = fields.BooleanField(default=False)
    attempts = fields.IntField(default=0)
    lease_until = fields.DatetimeField(null=True)
    claimed_by = fields.CharField(max_length=64, null=True)
    # Set (in small batches) just before the current claim's request is written: recovery
    # gives a dead worker's claims without it back untouched, and only these may be uncertain.
    attempted_at = fields.DatetimeField(null=True)
    payload: fields.Field[dict[str, object]] = fields.JSONField(default=dict)
    provider_message_id = fields.CharField(max_length=255, null=True)
    last_error = fields.TextField(null=True)
    sent_at = fields.DatetimeField(null=True)
    # A trainer saw this failed, uncertain or skipped delivery and let it be: no longer a problem.
    dismissed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "delivery"
        indexes = (
            ("state", "available_at"),
            ("enrollment_id", "step_id"),
            ("learner_id", "state", "sent_at"),
            ("updated_at",),  # the dashboard's change stamp reads MAX(updated_at)
        )


class Conversation(Model):
    """The shared-inbox thread for one learner enrollment."""

    _no_comments = True  # Tortoise would parse this class's source (see above)

    id = fields.IntField(primary_key=True)
    learner: fields.ForeignKeyRelation[Learner] = fields.ForeignKeyField(
        "models.Learner", related_name="conversations", on_delete=fields.CASCADE
    )
    enrollment: fields.OneToOneNullableRelation[Enrollment] = fields.OneToOneField(
        "models.Enrollment", related_name="conversation", null=True, on_delete=fields.SET_NULL
    )
    status = fields.CharEnumField(
        ConversationStatus, max_length=16, default=ConversationStatus.OPEN
    )
    snoozed_until = fields.DatetimeField(null=True)
    assignee: fields.ForeignKeyNullableRelation[Trainer] = fields.ForeignKeyField(
        "models.Trainer", related_name="assigned", null=True, on_delete=fields.SET_NULL
    )
    last_message_at = fields.DatetimeField(null=True, db_index=True)
    # The newest message, and the newest learner message: the inbox list shows a preview of the
    # first and compares the second with each trainer's read mark, without scanning messages.
    last_message_id = fields.IntField(null=True)
    last_inbound_id = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Every change (a message, a status, an assignment) moves this, so an open dashboard notices
    # another process's work by asking for the newest value. Null only on rows from before it.
    updated_at = fields.DatetimeField(auto_now=True, null=True, db_index=True)

    class Meta:
        table = "conversation"


class ConversationLabel(Model):
    """A label a trainer put on a conversation, such as "question" or "follow-up"."""

    _no_comments = True  # Tortoise would parse this class's source (see above)

    id = fields.IntField(primary_key=True)
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="label_links", on_delete=fields.CASCADE
    )
    label = fields.CharField(max_length=64, db_index=True)

    class Meta:
        table = "conversation_label"
        unique_together = (("conversation", "label"),)


class ReadMark(Model):
    """How far one trainer has read one conversation: unread means a newer learner message."""

    _no_comments = True  # Tortoise would parse this class's source (see above)

    id = fields.IntField(primary_key=True)
    trainer: fields.ForeignKeyRelation[Trainer] = fields.ForeignKeyField(
        "models.Trainer", related_name="read_marks", on_delete=fields.CASCADE
    )
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="read_marks", on_delete=fields.CASCADE
    )
    last_read_message_id = fields.IntField(default=0)

    class Meta:
        table = "read_mark"
        unique_together = (("trainer", "conversation"),)


class InboundItem(Model):
    """A raw Telegram update or email, stored before any processing and never deleted."""

    _no_comments = True  # Tortoise would parse this class's source (see above)

    id = fields.IntField(primary_key=True)
    channel = fields.CharEnumField(Channel, max_length=16)
    account = fields.CharField(max_length=255)  # bot id or mailbox
    external_id = fields.CharField(max_length=512)  # update_id, or normalised Message-ID / hash
    payload = fields.BinaryField()  # the bytes as received
    state = fields.CharEnumField(InboundState, max_length=16, default=InboundState.PENDING)
    error = fields.TextField(null=True)
    received_at = fields.DatetimeField(auto_now_add=True)
    processed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "inbound_item"
        unique_together = (("channel", "account", "external_id"),)
        indexes = (("state",),)  # pending ones to process, flagged ones to show


class Message(Model):
    """One message in a conversation: learner inbound, trainer or drip outbound, or a note."""

    _no_comments = True  # Tortoise would parse this class's source (see above)

    id = fields.IntField(primary_key=True)
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="messages", on_delete=fields.CASCADE
    )
    direction = fields.CharEnumField(MessageDirection, max_length=8)
    channel = fields.CharEnumField(Channel, max_length=16, null=True)
    author: fields.ForeignKeyNullableRelation[Trainer] = fields.ForeignKeyField(
        "models.Trainer", related_name="messages", null=True, on_delete=fields.SET_NULL
    )
    body = fields.TextField()
    raw_body = fields.TextField(null=True)  # e.g. an email before quote stripping
    attachments: fields.Field[list[dict[str, object]]] = fields.JSONField(default=list)
    step_id = fields.CharField(max_length=64, null=True)  # the drip step this answers
    in_reply_to: fields.ForeignKeyNullableRelation[Message] = fields.ForeignKeyField(
        "models.Message", related_name="replies", null=True, on_delete=fields.SET_NULL
    )
    delivery: fields.ForeignKeyNullableRelation[Delivery] = fields.ForeignKeyField(
        "models.Delivery", related_name="messages", null=True, on_delete=fields.SET_NULL
    )
    inbound: fields.ForeignKeyNullableRelation[InboundItem] = fields.ForeignKeyField(
        "models.InboundItem", related_name="messages", null=True, on_delete=fields.SET_NULL
    )
    flags: fields.Field[list[str]] = fields.JSONField(default=list)  # e.g. "unverified-sender"
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "message"
        indexes = (("conversation_id", "id"), ("inbound_id",))


class QuizAnswer(Model):
    """A learner's answer to one asking of a quiz or check-in. The first answer wins."""

    _no_comments = True  # Tortoise would parse this class's source (see above)

    id = fields.IntField(primary_key=True)
    enrollment: fields.ForeignKeyRelation[Enrollment] = fields.ForeignKeyField(
        "models.Enrollment", related_name="quiz_answers", on_delete=fields.CASCADE
    )
    step_id = fields.CharField(max_length=64)
    occurrence = fields.IntField(default=0)
    choices: fields.Field[list[int]] = fields.JSONField()
    correct = fields.BooleanField(null=True)  # None for a check-in, which has no right answer
    channel = fields.CharEnumField(Channel, max_length=16)
    answered_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "quiz_answer"
        unique_together = (("enrollment", "step_id", "occurrence"),)


class ChannelCursor(Model):
    """Where an inbound poller stopped: a Telegram offset, or an IMAP UIDVALIDITY and last UID."""

    _no_comments = True  # Tortoise would parse this class's source (see above)

    id = fields.IntField(primary_key=True)
    channel = fields.CharEnumField(Channel, max_length=16)
    account = fields.CharField(max_length=255)
    position: fields.Field[dict[str, int]] = fields.JSONField(default=dict)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "channel_cursor"
        unique_together = (("channel", "account"),)


class Invite(Model):
    """A single-use Telegram start link for one learner: the signed token carries this row's id.

    The first chat that opens the link is recorded in `used_by_chat_id` and binds the learner.
    The same chat opening it again is harmless, any other chat is refused.
    """

    _no_comments = True  # Tortoise would parse this class's source (see above)

    id = fields.IntField(primary_key=True)
    learner: fields.ForeignKeyRelation[Learner] = fields.ForeignKeyField(
        "models.Learner", related_name="invites", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    used_at = fields.DatetimeField(null=True)
    used_by_chat_id = fields.BigIntField(null=True)

    class Meta:
        table = "invite"


class RateBucket(Model):
    """A send budget shared by every worker: the next free slot of one bot token or one chat.

    Times are Unix seconds, so that reserving slots is one arithmetic UPDATE in SQL.
    """

    _no_comments = True  # Tortoise would parse this class's source (see above)

    key = fields.CharField(max_length=200, primary_key=True)
    next_at = fields.FloatField(default=0.0)  # the earliest time the next send may start
    paused_until = fields.FloatField(default=0.0)  # a 429 retry_after pause for everyone

    class Meta:
        table = "rate_bucket"
