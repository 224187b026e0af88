from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

from dripper.migrations import DescribeField
from dripper.models import InboundState


class Migration(migrations.Migration):
    dependencies = [("models", "0004_unattended")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Delivery",
            name="dismissed_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        DescribeField(
            model_name="InboundItem",
            name="state",
            field=fields.CharEnumField(
                default=InboundState.PENDING,
                description=(
                    "PENDING: pending\nPROCESSED: processed\nFLAGGED: flagged\nDISMISSED: dismissed"
                ),
                enum_type=InboundState,
                max_length=16,
            ),
        ),
        ops.AddIndex(
            model_name="InboundItem",
            index=Index(fields=["state"]),
        ),
    ]
