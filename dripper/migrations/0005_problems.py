from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

from dripper.models import InboundState


class DescribeField(ops.AlterField):
    """Only the field's description changed (it lists the enum's members, and DISMISSED is
    new): the migration state follows, the table is left alone. Tortoise 1.1 alters a SQLite
    column by rebuilding the table, and the rebuild loses the table's unique_together."""

    async def database_forward(self, *args: object, **kwargs: object) -> None:
        return None

    async def database_backward(self, *args: object, **kwargs: object) -> None:
        return None


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
