from tortoise import migrations
from tortoise import fields

from dripper.migrations import DescribeField
from dripper.models import DeliveryKind


class Migration(migrations.Migration):
    """FEEDBACK deliveries (dripper's answer to a quiz answered by email): only the kind's
    description changes, the column stays as it is."""

    dependencies = [("models", "0005_problems")]

    initial = False

    operations = [
        DescribeField(
            model_name="Delivery",
            name="kind",
            field=fields.CharEnumField(
                description=(
                    "STEP: step\nNUDGE: nudge\nREASK: reask\nREPLY: reply\nFEEDBACK: feedback"
                ),
                enum_type=DeliveryKind,
                max_length=16,
            ),
        ),
    ]
