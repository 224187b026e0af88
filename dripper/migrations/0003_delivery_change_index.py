from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [("models", "0002_inbox_and_budget")]

    initial = False

    operations = [
        ops.AddIndex(
            model_name="Delivery",
            index=Index(fields=["updated_at"]),
        ),
    ]
