from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from dripper.models import Channel
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [("models", "0007_learner_erased")]

    initial = False

    operations = [
        ops.CreateModel(
            name="TrainerNotice",
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
                        related_name="notices",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "channel",
                    fields.CharEnumField(
                        description="TELEGRAM: telegram\nEMAIL: email",
                        enum_type=Channel,
                        max_length=16,
                    ),
                ),
                ("body", fields.TextField(unique=False)),
                ("subject", fields.CharField(default="", max_length=200)),
                (
                    "conversations",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "messages",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("sent", fields.BooleanField(default=False)),
                ("telegram_message_id", fields.BigIntField(null=True)),
                ("attempts", fields.IntField(default=0)),
                ("last_error", fields.TextField(null=True, unique=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("sent_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "trainer_notice",
                "app": "models",
                "indexes": [
                    Index(fields=["sent"]),
                    Index(fields=["trainer_id", "telegram_message_id"]),
                ],
                "pk_attr": "id",
                "table_description": "A message dripper sent (or will send) to a trainer: a notification of learner messages,",
            },
            bases=["Model"],
        ),
        ops.AddField(
            model_name="Trainer",
            name="follows",
            field=fields.JSONField(
                default=list,
                db_default="[]",
                encoder=functools.partial(dumps, separators=(",", ":")),
                decoder=loads,
            ),
        ),
        ops.AddField(
            model_name="Trainer",
            name="invite_serial",
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name="Trainer",
            name="last_notice_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name="Trainer",
            name="notified_upto",
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name="Trainer",
            name="notify",
            field=fields.BooleanField(default=True, db_default=True),
        ),
        ops.AddField(
            model_name="Trainer",
            name="quiet_end",
            field=fields.CharField(null=True, max_length=5),
        ),
        ops.AddField(
            model_name="Trainer",
            name="quiet_start",
            field=fields.CharField(null=True, max_length=5),
        ),
        ops.AddField(
            model_name="Trainer",
            name="telegram_chat_id",
            field=fields.BigIntField(null=True, unique=True),
        ),
    ]
