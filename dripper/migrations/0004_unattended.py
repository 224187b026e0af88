from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("models", "0003_delivery_change_index")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Delivery",
            name="attempted_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name="Enrollment",
            name="plan_error",
            field=fields.TextField(null=True, unique=False),
        ),
    ]
