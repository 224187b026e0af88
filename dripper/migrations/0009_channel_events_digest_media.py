from tortoise import migrations
from tortoise.migrations import operations as ops
from dripper.models import MessageDirection
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("models", "0008_trainers_on_telegram")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Learner",
            name="media_bytes",
            field=fields.BigIntField(default=0, db_default=0),
        ),
        ops.AlterField(
            model_name="Message",
            name="direction",
            field=fields.CharEnumField(
                description="INBOUND: in\nOUTBOUND: out\nNOTE: note\nSYSTEM: system",
                enum_type=MessageDirection,
                max_length=8,
            ),
        ),
        ops.AddField(
            model_name="Trainer",
            name="digest_at",
            field=fields.CharField(null=True, default="08:00", db_default="08:00", max_length=5),
        ),
        ops.AddField(
            model_name="Trainer",
            name="digest_sent_on",
            field=fields.CharField(null=True, max_length=10),
        ),
        ops.AddField(
            model_name="TrainerNotice",
            name="kind",
            field=fields.CharField(default="notice", db_default="notice", max_length=16),
        ),
    ]
