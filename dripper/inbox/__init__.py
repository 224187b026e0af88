"""The shared inbox: learner messages filed by conversation, and the trainers' work on them.

No UI code and no channel code. One conversation per learner enrollment; statuses open /
waiting on the learner / closed / snoozed until a time (a learner message reopens); assignment
to a trainer; unread state per trainer; internal notes; labels; canned replies; search; and for
every message the drip step it answers. Trainer replies become outbound deliveries that go out
through the dispatcher on the learner's own channel.

- `filing`: where a learner's message lands (receivers call it)
- `replies`: trainer replies and notes
- `workflow`: trainers, assignment, status, snooze, labels, read marks
- `views`: the list with its folders and filters, one thread, the learner panel, search
- `canned`: the team's canned replies file
- `problems`: what needs a look (failed and uncertain deliveries, items not filed, plans that
  fail) and the trainer's actions on it
"""

from dripper.inbox.canned import CannedRepliesError, CannedReply, load_canned_replies
from dripper.inbox.filing import (
    PROMPT_KINDS,
    AnsweredPrompt,
    IncomingMessage,
    latest_prompt_in,
    record_learner_message,
    record_learner_messages,
)
from dripper.inbox.replies import (
    EmptyMessageError,
    ReplyContext,
    add_note,
    email_thread,
    reply_context,
    reply_to_learner,
)
from dripper.inbox.views import (
    ConversationRow,
    ConversationSummary,
    EntryKind,
    Folder,
    InboxQuery,
    LearnerPanel,
    ThreadEntry,
    conversation_summary,
    count_conversations,
    learner_panel,
    list_conversations,
    thread,
)
from dripper.inbox.workflow import (
    InboxError,
    add_label,
    assign,
    close,
    ensure_trainer,
    mark_read,
    mark_unread,
    remove_label,
    reopen,
    snooze,
    trainer_handle,
    trainers,
    wait_on_learner,
)
from dripper.store.conversations import (
    change_stamp,
    cohort_names,
    known_labels,
    unread_count,
)

__all__ = [
    "PROMPT_KINDS",
    "AnsweredPrompt",
    "CannedRepliesError",
    "CannedReply",
    "ConversationRow",
    "ConversationSummary",
    "EmptyMessageError",
    "EntryKind",
    "Folder",
    "InboxError",
    "InboxQuery",
    "IncomingMessage",
    "LearnerPanel",
    "ReplyContext",
    "ThreadEntry",
    "add_label",
    "add_note",
    "assign",
    "change_stamp",
    "close",
    "cohort_names",
    "conversation_summary",
    "count_conversations",
    "email_thread",
    "ensure_trainer",
    "known_labels",
    "latest_prompt_in",
    "learner_panel",
    "list_conversations",
    "load_canned_replies",
    "mark_read",
    "mark_unread",
    "record_learner_message",
    "record_learner_messages",
    "remove_label",
    "reopen",
    "reply_context",
    "reply_to_learner",
    "snooze",
    "thread",
    "trainer_handle",
    "trainers",
    "unread_count",
    "wait_on_learner",
]
