from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    initial = False

    operations = [
        ops.CreateModel(
            name="ConversationLabel",
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
                        related_name="label_links",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("label", fields.CharField(db_index=True, max_length=64)),
            ],
            options={
                "table": "conversation_label",
                "app": "models",
                "unique_together": (("conversation", "label"),),
                "pk_attr": "id",
                "table_description": 'A label a trainer put on a conversation, such as "question" or "follow-up".',
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="RateBucket",
            fields=[
                (
                    "key",
                    fields.CharField(primary_key=True, unique=True, db_index=True, max_length=200),
                ),
                ("next_at", fields.FloatField(default=0.0)),
                ("paused_until", fields.FloatField(default=0.0)),
            ],
            options={
                "table": "rate_bucket",
                "app": "models",
                "pk_attr": "key",
                "table_description": "A send budget shared by every worker: the next free slot of one bot token or one chat.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ReadMark",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "trainer",
                    fields.ForeignKeyField(
                        "models.Trainer",
                        source_field="trainer_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="read_marks",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "conversation",
                    fields.ForeignKeyField(
                        "models.Conversation",
                        source_field="conversation_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="read_marks",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("last_read_message_id", fields.IntField(default=0)),
            ],
            options={
                "table": "read_mark",
                "app": "models",
                "unique_together": (("trainer", "conversation"),),
                "pk_attr": "id",
                "table_description": "How far one trainer has read one conversation: unread means a newer learner message.",
            },
            bases=["Model"],
        ),
        ops.AddField(
            model_name="Conversation",
            name="last_inbound_id",
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name="Conversation",
            name="last_message_id",
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name="Conversation",
            name="updated_at",
            field=fields.DatetimeField(null=True, db_index=True, auto_now=True, auto_now_add=False),
        ),
        # Written by hand: fill the new columns of conversations that existed before.
        ops.RunSQL(
            "UPDATE conversation SET updated_at = COALESCE(last_message_at, created_at), "
            "last_message_id = (SELECT MAX(m.id) FROM message m "
            "WHERE m.conversation_id = conversation.id), "
            "last_inbound_id = (SELECT MAX(m.id) FROM message m "
            "WHERE m.conversation_id = conversation.id AND m.direction = 'in')"
        ),
        ops.RemoveField(model_name="Conversation", name="labels"),
        ops.AddIndex(
            model_name="Delivery",
            index=Index(fields=["learner_id", "state", "sent_at"]),
        ),
        ops.AddIndex(
            model_name="Message",
            index=Index(fields=["conversation_id", "id"]),
        ),
        ops.AddIndex(
            model_name="Message",
            index=Index(fields=["inbound_id"]),
        ),
    ]
