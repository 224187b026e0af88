"""Written by hand: SQLite databases lost the indexes of `conversation` and `message`.

Tortoise applies an AlterField on SQLite by copying the table, and the copy has none of the
table's indexes (RemoveField likewise): 0002's removal of `conversation.labels` dropped its
unique enrollment and its last_message_at index, and 0009's change to `message.direction`
dropped all three of `message`'s. PostgreSQL alters in place and kept them; there this migration does nothing.

The unique index on conversation.enrollment_id is created after merging any duplicates the
missing constraint let in (the oldest conversation keeps the messages, labels and read marks).
"""

from tortoise import migrations
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor
from tortoise.migrations.schema_generator.state_apps import StateApps

INDEXES = (
    "CREATE INDEX IF NOT EXISTS idx_conversatio_last_me_79c661 ON conversation (last_message_at)",
    "CREATE INDEX IF NOT EXISTS idx_message_convers_a186fa ON message (conversation_id, id)",
    "CREATE INDEX IF NOT EXISTS idx_message_created_e537a8 ON message (created_at)",
    "CREATE INDEX IF NOT EXISTS idx_message_inbound_046d48 ON message (inbound_id)",
)
UNIQUE = (
    "CREATE UNIQUE INDEX IF NOT EXISTS conversation_enrollment_id_key "
    "ON conversation (enrollment_id)"
)


async def merge_duplicate_conversations(client: BaseDBAsyncClient) -> int:
    """Fold every later conversation of one enrollment into its oldest; how many went."""
    rows = await client.execute_query_dict(
        "SELECT enrollment_id, MIN(id) AS keep FROM conversation "
        "WHERE enrollment_id IS NOT NULL GROUP BY enrollment_id HAVING COUNT(*) > 1"
    )
    merged = 0
    for row in rows:
        keep, enrollment = row["keep"], row["enrollment_id"]
        dupes = [
            r["id"]
            for r in await client.execute_query_dict(
                "SELECT id FROM conversation WHERE enrollment_id = ? AND id <> ?",
                [enrollment, keep],
            )
        ]
        for dupe in dupes:
            await client.execute_query(
                "UPDATE message SET conversation_id = ? WHERE conversation_id = ?", [keep, dupe]
            )
            await client.execute_query(
                "DELETE FROM conversation_label WHERE conversation_id = ? AND label IN "
                "(SELECT label FROM conversation_label WHERE conversation_id = ?)",
                [dupe, keep],
            )
            await client.execute_query(
                "UPDATE conversation_label SET conversation_id = ? WHERE conversation_id = ?",
                [keep, dupe],
            )
            await client.execute_query("DELETE FROM read_mark WHERE conversation_id = ?", [dupe])
            await client.execute_query("DELETE FROM conversation WHERE id = ?", [dupe])
            merged += 1
        await client.execute_query(
            "UPDATE conversation SET "
            "last_message_id = (SELECT MAX(id) FROM message WHERE conversation_id = ?), "
            "last_inbound_id = (SELECT MAX(id) FROM message WHERE conversation_id = ? "
            "AND direction = 'in') WHERE id = ?",
            [keep, keep, keep],
        )
    return merged


async def restore(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    client = schema_editor.client
    if client.capabilities.dialect != "sqlite":
        return
    await merge_duplicate_conversations(client)
    await client.execute_script(";\n".join([*INDEXES, UNIQUE]) + ";")


class Migration(migrations.Migration):
    dependencies = [("models", "0009_channel_events_digest_media")]

    initial = False

    operations = [ops.RunPython(restore, reverse_code=ops.RunPython.noop)]
