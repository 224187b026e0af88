"""Tortoise migrations for dripper's models, made by `tortoise makemigrations` (see dripper.db).

`DescribeField` is for a change Tortoise sees but the database does not need: a CharEnumField
whose description lists one more member. Tortoise 1.1 alters a SQLite column by rebuilding the
table, and the rebuild loses the table's unique_together; this operation moves only the
migration state.
"""

from tortoise.migrations import operations as ops


class DescribeField(ops.AlterField):
    """Only the field's description changed: the migration state follows, the table is left
    alone."""

    async def database_forward(self, *args: object, **kwargs: object) -> None:
        return None

    async def database_backward(self, *args: object, **kwargs: object) -> None:
        return None
