from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from dripper.models import (
    Channel,
    ConversationStatus,
    DeliveryKind,
    DeliveryState,
    EnrollmentState,
    InboundState,
    MessageDirection,
    Reachability,
)
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="ChannelCursor",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "channel",
                    fields.CharEnumField(
                        description="TELEGRAM: telegram\nEMAIL: email",
                        enum_type=Channel,
                        max_length=16,
                    ),
                ),
                ("account", fields.CharField(max_length=255)),
                (
                    "position",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "channel_cursor",
                "app": "models",
                "unique_together": (("channel", "account"),),
                "pk_attr": "id",
                "table_description": "Where an inbound poller stopped: a Telegram offset, or an IMAP UIDVALIDITY and last UID.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Cohort",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("name", fields.CharField(unique=True, max_length=200)),
                ("curriculum_key", fields.CharField(max_length=64)),
                ("course_end", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("paused", fields.BooleanField(default=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={"table": "cohort", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="CurriculumVersion",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("key", fields.CharField(db_index=True, max_length=64)),
                ("content_hash", fields.CharField(max_length=64)),
                ("title", fields.CharField(max_length=200)),
                ("source", fields.TextField(unique=False)),
                ("source_path", fields.CharField(default="", max_length=1024)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "curriculum_version",
                "app": "models",
                "unique_together": (("key", "content_hash"),),
                "pk_attr": "id",
                "table_description": "One content version of a curriculum file. Enrollments pin the version they run.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="InboundItem",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "channel",
                    fields.CharEnumField(
                        description="TELEGRAM: telegram\nEMAIL: email",
                        enum_type=Channel,
                        max_length=16,
                    ),
                ),
                ("account", fields.CharField(max_length=255)),
                ("external_id", fields.CharField(max_length=512)),
                ("payload", fields.BinaryField()),
                (
                    "state",
                    fields.CharEnumField(
                        default=InboundState.PENDING,
                        description="PENDING: pending\nPROCESSED: processed\nFLAGGED: flagged",
                        enum_type=InboundState,
                        max_length=16,
                    ),
                ),
                ("error", fields.TextField(null=True, unique=False)),
                ("received_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                (
                    "processed_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "inbound_item",
                "app": "models",
                "unique_together": (("channel", "account", "external_id"),),
                "pk_attr": "id",
                "table_description": "A raw Telegram update or email, stored before any processing and never deleted.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Learner",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("email", fields.CharField(null=True, unique=True, max_length=320)),
                ("telegram_username", fields.CharField(null=True, unique=True, max_length=64)),
                ("telegram_chat_id", fields.BigIntField(null=True, unique=True)),
                ("first_name", fields.CharField(max_length=200)),
                ("last_name", fields.CharField(default="", max_length=200)),
                ("timezone", fields.CharField(null=True, max_length=64)),
                ("language", fields.CharField(null=True, max_length=16)),
                (
                    "attributes",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "email_status",
                    fields.CharEnumField(
                        default=Reachability.UNKNOWN,
                        description="UNKNOWN: unknown\nOK: ok\nUNREACHABLE: unreachable",
                        enum_type=Reachability,
                        max_length=16,
                    ),
                ),
                (
                    "telegram_status",
                    fields.CharEnumField(
                        default=Reachability.UNKNOWN,
                        description="UNKNOWN: unknown\nOK: ok\nUNREACHABLE: unreachable",
                        enum_type=Reachability,
                        max_length=16,
                    ),
                ),
                ("soft_bounces", fields.IntField(default=0)),
                (
                    "paused_until",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                (
                    "opted_out_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "learner",
                "app": "models",
                "pk_attr": "id",
                "table_description": "A person receiving drips. Identified by email, else by Telegram handle.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Enrollment",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "learner",
                    fields.ForeignKeyField(
                        "models.Learner",
                        source_field="learner_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="enrollments",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "cohort",
                    fields.ForeignKeyField(
                        "models.Cohort",
                        source_field="cohort_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="enrollments",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "curriculum",
                    fields.ForeignKeyField(
                        "models.CurriculumVersion",
                        source_field="curriculum_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="enrollments",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "state",
                    fields.CharEnumField(
                        default=EnrollmentState.ACTIVE,
                        description="ACTIVE: active\nPAUSED: paused\nCOMPLETED: completed\nCANCELLED: cancelled",
                        enum_type=EnrollmentState,
                        max_length=16,
                    ),
                ),
                ("anchor_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "plan_due_at",
                    fields.DatetimeField(
                        null=True, db_index=True, auto_now=False, auto_now_add=False
                    ),
                ),
                ("shift_seconds", fields.BigIntField(default=0)),
                ("paused_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("pause_reason", fields.CharField(null=True, max_length=16)),
                ("resume_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "enrollment",
                "app": "models",
                "unique_together": (("learner", "cohort"),),
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Delivery",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("business_key", fields.CharField(unique=True, max_length=200)),
                (
                    "enrollment",
                    fields.ForeignKeyField(
                        "models.Enrollment",
                        source_field="enrollment_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="deliveries",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "learner",
                    fields.ForeignKeyField(
                        "models.Learner",
                        source_field="learner_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="deliveries",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "kind",
                    fields.CharEnumField(
                        description="STEP: step\nNUDGE: nudge\nREASK: reask\nREPLY: reply",
                        enum_type=DeliveryKind,
                        max_length=16,
                    ),
                ),
                ("step_id", fields.CharField(null=True, max_length=64)),
                ("occurrence", fields.IntField(default=0)),
                ("channel_preference", fields.CharField(default="any", max_length=16)),
                (
                    "channel",
                    fields.CharEnumField(
                        null=True,
                        description="TELEGRAM: telegram\nEMAIL: email",
                        enum_type=Channel,
                        max_length=16,
                    ),
                ),
                ("due_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("available_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("expires_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                (
                    "state",
                    fields.CharEnumField(
                        default=DeliveryState.PENDING,
                        description="PENDING: pending\nCLAIMED: claimed\nSENT: sent\nFAILED: failed\nUNCERTAIN: uncertain\nHELD: held\nSKIPPED: skipped\nCANCELLED: cancelled",
                        enum_type=DeliveryState,
                        max_length=16,
                    ),
                ),
                ("uncertain", fields.BooleanField(default=False)),
                ("attempts", fields.IntField(default=0)),
                (
                    "lease_until",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("claimed_by", fields.CharField(null=True, max_length=64)),
                (
                    "payload",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("provider_message_id", fields.CharField(null=True, max_length=255)),
                ("last_error", fields.TextField(null=True, unique=False)),
                ("sent_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "delivery",
                "app": "models",
                "indexes": [
                    Index(fields=["state", "available_at"]),
                    Index(fields=["enrollment_id", "step_id"]),
                ],
                "pk_attr": "id",
                "table_description": "The outbox: one row per message to send, claimed and recorded by the dispatcher.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Invite",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "learner",
                    fields.ForeignKeyField(
                        "models.Learner",
                        source_field="learner_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="invites",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("used_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("used_by_chat_id", fields.BigIntField(null=True)),
            ],
            options={
                "table": "invite",
                "app": "models",
                "pk_attr": "id",
                "table_description": "A single-use Telegram start link for one learner: the signed token carries this row's id.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="QuizAnswer",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "enrollment",
                    fields.ForeignKeyField(
                        "models.Enrollment",
                        source_field="enrollment_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="quiz_answers",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("step_id", fields.CharField(max_length=64)),
                ("occurrence", fields.IntField(default=0)),
                (
                    "choices",
                    fields.JSONField(
                        encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("correct", fields.BooleanField(null=True)),
                (
                    "channel",
                    fields.CharEnumField(
                        description="TELEGRAM: telegram\nEMAIL: email",
                        enum_type=Channel,
                        max_length=16,
                    ),
                ),
                ("answered_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "quiz_answer",
                "app": "models",
                "unique_together": (("enrollment", "step_id", "occurrence"),),
                "pk_attr": "id",
                "table_description": "A learner's answer to one asking of a quiz or check-in. The first answer wins.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Trainer",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("handle", fields.CharField(unique=True, max_length=64)),
                ("name", fields.CharField(max_length=200)),
                ("email", fields.CharField(null=True, max_length=320)),
                ("timezone", fields.CharField(default="UTC", max_length=64)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={"table": "trainer", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Conversation",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "learner",
                    fields.ForeignKeyField(
                        "models.Learner",
                        source_field="learner_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="conversations",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "enrollment",
                    fields.OneToOneField(
                        "models.Enrollment",
                        source_field="enrollment_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="conversation",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "status",
                    fields.CharEnumField(
                        default=ConversationStatus.OPEN,
                        description="OPEN: open\nWAITING: waiting\nCLOSED: closed\nSNOOZED: snoozed",
                        enum_type=ConversationStatus,
                        max_length=16,
                    ),
                ),
                (
                    "snoozed_until",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                (
                    "assignee",
                    fields.ForeignKeyField(
                        "models.Trainer",
                        source_field="assignee_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="assigned",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "labels",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "last_message_at",
                    fields.DatetimeField(
                        null=True, db_index=True, auto_now=False, auto_now_add=False
                    ),
                ),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "conversation",
                "app": "models",
                "pk_attr": "id",
                "table_description": "The shared-inbox thread for one learner enrollment.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Message",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "conversation",
                    fields.ForeignKeyField(
                        "models.Conversation",
                        source_field="conversation_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="messages",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "direction",
                    fields.CharEnumField(
                        description="INBOUND: in\nOUTBOUND: out\nNOTE: note",
                        enum_type=MessageDirection,
                        max_length=8,
                    ),
                ),
                (
                    "channel",
                    fields.CharEnumField(
                        null=True,
                        description="TELEGRAM: telegram\nEMAIL: email",
                        enum_type=Channel,
                        max_length=16,
                    ),
                ),
                (
                    "author",
                    fields.ForeignKeyField(
                        "models.Trainer",
                        source_field="author_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="messages",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                ("body", fields.TextField(unique=False)),
                ("raw_body", fields.TextField(null=True, unique=False)),
                (
                    "attachments",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("step_id", fields.CharField(null=True, max_length=64)),
                (
                    "in_reply_to",
                    fields.ForeignKeyField(
                        "models.Message",
                        source_field="in_reply_to_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="replies",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "delivery",
                    fields.ForeignKeyField(
                        "models.Delivery",
                        source_field="delivery_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="messages",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "inbound",
                    fields.ForeignKeyField(
                        "models.InboundItem",
                        source_field="inbound_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="messages",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "flags",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "created_at",
                    fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True),
                ),
            ],
            options={
                "table": "message",
                "app": "models",
                "pk_attr": "id",
                "table_description": "One message in a conversation: learner inbound, trainer or drip outbound, or a note.",
            },
            bases=["Model"],
        ),
    ]
