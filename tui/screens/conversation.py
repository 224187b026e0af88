"""One conversation: the thread in both directions, the learner panel and the composer.

The thread has the focus when the screen opens, and the single-letter keys act on the
conversation (r reply, n note, a assign, c close, z snooze...). The composer is a multi-line
editor: it takes every printable key, so while it has the focus only ctrl and function keys act
(ctrl+s or f5 sends, ctrl+n switches reply/note, ctrl+t inserts a canned reply) and Escape
gives the focus back to the thread; a second Escape goes back to the inbox.

Changes made elsewhere (another trainer, `dripper run`) arrive as `DataChanged`: the header,
thread and panel are read again and the composer keeps its text and focus.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static

from dripper.errors import DripperError
from dripper.inbox import (
    CannedRepliesError,
    CannedReply,
    ConversationSummary,
    EntryKind,
    LearnerPanel,
    ThreadEntry,
    add_label,
    add_note,
    assign,
    close,
    conversation_summary,
    learner_panel,
    mark_read,
    mark_unread,
    remove_label,
    reopen,
    reply_to_learner,
    snooze,
    thread,
    trainers,
    wait_on_learner,
)
from dripper.inbox.canned import context_for
from dripper.media.folder import MediaFolder
from tui.files import SentFile, default_saves_folder, open_or_save, sent_files
from tui.keymap import keys_for
from tui.messages import DataChanged, Edited
from tui.screens.pickers import Ask, Choose
from tui.session import session_of
from tui.widgets.conversation import (
    Composer,
    LearnerPanelView,
    ThreadView,
    render_entry,
    render_header,
)

WIDE = 110  # from this width on, the learner panel sits beside the thread by default
PANEL_TICK_S = 30.0  # the learner's local time in the panel moves on by itself


def snooze_choices(now: datetime, zone: ZoneInfo) -> list[tuple[str, datetime]]:
    """1 hour, 4 hours, tomorrow 09:00 and next Monday 09:00, in the trainer's zone."""
    local = now.astimezone(zone)
    tomorrow = datetime.combine(local.date() + timedelta(days=1), time(9), tzinfo=zone)
    days_to_monday = (7 - local.weekday()) % 7 or 7
    monday = datetime.combine(local.date() + timedelta(days=days_to_monday), time(9), tzinfo=zone)

    hour, four = now + timedelta(hours=1), now + timedelta(hours=4)

    def shown(moment: datetime, fmt: str) -> str:
        return moment.astimezone(zone).strftime(fmt)

    return [
        (f"1 hour (until {shown(hour, '%H:%M')})", hour),
        (f"4 hours (until {shown(four, '%a %H:%M')})", four),
        (f"Tomorrow 09:00 ({shown(tomorrow, '%a %d %b')})", tomorrow),
        (f"Next Monday 09:00 ({shown(monday, '%a %d %b')})", monday),
    ]


class ConversationScreen(Screen[None]):
    """The thread of one learner enrollment, and everything a trainer does with it."""

    AUTO_FOCUS = "#thread"
    BINDINGS = [
        Binding("escape", "back", "Back", id="conversation.back"),
        Binding("r", "reply", "Reply", id="conversation.reply"),
        Binding("n", "note", "Note", show=False, id="conversation.note"),
        Binding("ctrl+s,f5", "send", "Send", show=False, id="conversation.send"),
        Binding(
            "ctrl+n", "toggle_note_mode", "Reply/note mode", show=False, id="conversation.mode"
        ),
        Binding("ctrl+t", "canned", "Insert canned reply", show=False, id="conversation.canned"),
        Binding("a", "assign", "Assign", id="conversation.assign"),
        Binding("m", "assign_me", "Assign to me", show=False, id="conversation.assign_me"),
        Binding("c", "close_conversation", "Close", id="conversation.close"),
        Binding(
            "o", "open_file", "Open a file the learner sent", show=False, id="conversation.open"
        ),
        Binding("O", "reopen", "Reopen", show=False, id="conversation.reopen"),
        Binding("w", "wait_on_learner", "Waiting on learner", show=False, id="conversation.wait"),
        Binding("z", "snooze", "Snooze", id="conversation.snooze"),
        Binding("l", "add_label", "Add label", show=False, id="conversation.label"),
        Binding("L", "remove_label", "Remove label", show=False, id="conversation.unlabel"),
        Binding(
            "u", "mark_unread", "Mark unread, back to inbox", show=False, id="conversation.unread"
        ),
        Binding("p", "toggle_panel", "Learner panel", id="conversation.panel"),
        Binding("j", "thread_down", "Scroll down", show=False, id="conversation.down"),
        Binding("k", "thread_up", "Scroll up", show=False, id="conversation.up"),
    ]

    def __init__(self, conversation_id: int) -> None:
        super().__init__()
        self.conversation_id = conversation_id
        self.summary: ConversationSummary | None = None
        self._panel: LearnerPanel | None = None
        self._panel_choice: bool | None = None  # None: by the width of the terminal
        self._sending = False
        self._leaving = False
        self._answering: int | None = None  # the newest learner message on screen
        self._to_end = False  # after sending: show the newest entry even if scrolled up
        self._entries: list[ThreadEntry] = []  # as last shown

    def compose(self) -> ComposeResult:
        yield Static(id="conversation-header")
        with Horizontal(id="conversation-body"):
            yield ThreadView(id="thread")
            yield LearnerPanelView(id="learner-panel")
        yield Composer(id="composer")
        yield Footer()

    def on_mount(self) -> None:
        by_id = {binding.id: binding for binding in self.BINDINGS if isinstance(binding, Binding)}

        def keys(binding_id: str) -> str:
            return keys_for(self.app, by_id[binding_id])

        send, mode = keys("conversation.send"), keys("conversation.mode")
        canned, back = keys("conversation.canned"), keys("conversation.back")
        self.composer.set_hints(
            f"{send} send · {mode} note · {canned} canned · {back} leave",
            f"{send} add note · {mode} reply · {back} leave",
        )
        self._apply_panel()
        self.set_interval(PANEL_TICK_S, self._show_panel)
        self.reload()

    def on_resize(self) -> None:
        self._apply_panel()

    @property
    def composer(self) -> Composer:
        return self.query_one("#composer", Composer)

    @property
    def thread_view(self) -> ThreadView:
        return self.query_one("#thread", ThreadView)

    # ------------------------------------------------------------------ data

    @work(exclusive=True, exit_on_error=False, group="conversation-load")
    async def reload(self) -> None:
        """Read the header, the thread and the panel again; the composer is left alone."""
        session = session_of(self)
        summary = await conversation_summary(self.conversation_id)
        if summary is None:
            self._say("This conversation no longer exists.", severity="warning")
            if self.is_current:
                self._leave()
            return
        entries = await thread(self.conversation_id)
        self._entries = entries
        self._panel = await learner_panel(self.conversation_id, session.now())
        self.summary = summary
        self.query_one("#conversation-header", Static).update(render_header(summary, session.local))
        learner_messages = [e for e in entries if e.kind is EntryKind.LEARNER and e.channel]
        channel = learner_messages[-1].channel if learner_messages else None
        self.composer.set_recipient(summary.learner_name, channel)
        self._show_panel()
        to_end, self._to_end = self._to_end, False
        await self.thread_view.show(
            [render_entry(entry, summary.learner_name, session.local) for entry in entries],
            to_end=to_end,
        )
        shown = [entry.message_id for entry in entries if entry.message_id is not None]
        inbound = [e.message_id for e in learner_messages if e.message_id is not None]
        # A reply answers the newest learner message on screen, not one that arrived unseen.
        self._answering = max(inbound, default=None)
        if shown and self.is_current and not self._leaving:
            # Read up to what is on screen: a message filed meanwhile stays unread.
            await mark_read(self.conversation_id, session.trainer.id, upto=max(shown))

    def on_data_changed(self, _: DataChanged) -> None:
        self.reload()

    def _leave(self) -> None:
        """Back to the screen beneath, which reads its rows again: reading the conversation
        changed its unread mark, and no poller notices that."""
        beneath = [screen for screen in self.app.screen_stack if screen is not self]
        self.dismiss()
        for screen in beneath:
            screen.post_message(DataChanged())

    def _show_panel(self) -> None:
        if self._panel is not None:
            panel = self.query_one("#learner-panel", LearnerPanelView)
            panel.show(self._panel, session_of(self).now())

    def _apply_panel(self) -> None:
        shown = self._panel_choice
        if shown is None:
            shown = self.size.width >= WIDE
        self.query_one("#learner-panel", LearnerPanelView).display = shown

    def _changed(self) -> None:
        """Every screen reads its data again: this one, and the inbox beneath it."""
        self.post_message(Edited())

    def _say(self, message: str, *, severity: SeverityLevel = "information") -> None:
        # Messages name labels and trainers: never read them as markup.
        self.notify(message, markup=False, severity=severity)

    async def _apply(self, change: Awaitable[object], done: str) -> None:
        """Run one change to the conversation; say what happened, or what went wrong."""
        try:
            await change
        except DripperError as exc:
            self._say(str(exc), severity="error")
            return
        self._say(done)
        self._changed()

    # ------------------------------------------------------------------ composer

    def action_back(self) -> None:
        if self.focused is self.composer:
            self.thread_view.focus()
        else:
            self._leave()

    def action_reply(self) -> None:
        self.composer.note_mode = False
        self.composer.focus()

    def action_note(self) -> None:
        self.composer.note_mode = True
        self.composer.focus()

    def action_toggle_note_mode(self) -> None:
        self.composer.note_mode = not self.composer.note_mode

    @work(exit_on_error=False, group="conversation-send")
    async def action_send(self) -> None:
        composer = self.composer
        note = composer.note_mode
        text = composer.text
        if not text.strip():
            what = "note" if note else "reply"
            self._say(f"Nothing to send: the {what} is empty.", severity="warning")
            return
        if self._sending:
            return
        self._sending = True
        session = session_of(self)
        try:
            if note:
                await add_note(
                    self.conversation_id, text, session.now(), author_id=session.trainer.id
                )
            else:
                await reply_to_learner(
                    self.conversation_id,
                    text,
                    session.now(),
                    author_id=session.trainer.id,
                    answering=self._answering,
                )
        except DripperError as exc:
            self._say(f"Not sent: {exc}", severity="error")
            return
        finally:
            self._sending = False
        composer.clear()
        self.thread_view.focus()
        self._to_end = True
        if note:
            self._say("Note added.")
        else:
            await session.wake_dispatcher()
            self._say("Reply queued: `dripper run` sends it.")
        self._changed()

    @work(exit_on_error=False, group="conversation-pick")
    async def action_canned(self) -> None:
        session = session_of(self)
        try:
            canned = session.canned_replies()  # the team may have edited the file since the start
        except CannedRepliesError as exc:
            notify_canned_trouble(self, exc)
            return
        if not canned:
            path = session.config.canned_replies
            where = str(path) if path else "the file named by canned_replies in dripper.toml"
            self._say(
                f"No canned replies yet: write them in {where} "
                "(a list of entries with id, title and text).",
                severity="warning",
            )
            return
        choices = [(reply.title, reply) for reply in canned]
        picked = await self.app.push_screen_wait(
            Choose[CannedReply]("Insert a canned reply", choices)
        )
        if picked is None:
            return
        try:
            text = picked.render(await context_for(self.conversation_id, session.trainer))
        except DripperError as exc:
            self._say(str(exc), severity="error")
            return
        composer = self.composer
        start, end = composer.selection
        composer.replace(text, start, end, maintain_selection_offset=False)
        composer.focus()

    # ------------------------------------------------------------------ workflow

    @work(exit_on_error=False, group="conversation-pick")
    async def action_assign(self) -> None:
        me = session_of(self).trainer
        others = [trainer for trainer in await trainers() if trainer.id != me.id]
        # 0 stands for nobody: trainer ids start at 1, and None is the picker cancelled.
        choices: list[tuple[str, int]] = [(f"me ({me.handle})", me.id), ("nobody", 0)]
        for trainer in others:
            name = f" ({trainer.name})" if trainer.name and trainer.name != trainer.handle else ""
            choices.append((trainer.handle + name, trainer.id))
        picked = await self.app.push_screen_wait(Choose[int]("Assign the conversation to", choices))
        if picked is None:
            return
        handles = {me.id: me.handle, **{trainer.id: trainer.handle for trainer in others}}
        done = f"Assigned to {handles[picked]}." if picked else "Unassigned."
        now = session_of(self).now()
        await self._apply(assign(self.conversation_id, picked or None, now), done)

    @work(exit_on_error=False, group="conversation-act")
    async def action_assign_me(self) -> None:
        session = session_of(self)
        await self._apply(
            assign(self.conversation_id, session.trainer.id, session.now()),
            f"Assigned to {session.trainer.handle}.",
        )

    @work(exit_on_error=False, group="conversation-act")
    async def action_close_conversation(self) -> None:
        await self._apply(close(self.conversation_id, session_of(self).now()), "Closed.")

    @work(exit_on_error=False, group="conversation-act")
    async def action_reopen(self) -> None:
        await self._apply(reopen(self.conversation_id, session_of(self).now()), "Reopened.")

    @work(exit_on_error=False, group="conversation-act")
    async def action_wait_on_learner(self) -> None:
        await self._apply(
            wait_on_learner(self.conversation_id, session_of(self).now()),
            "Waiting on the learner.",
        )

    @work(exit_on_error=False, group="conversation-pick")
    async def action_snooze(self) -> None:
        session = session_of(self)
        choices = snooze_choices(session.now(), session.zone)
        picked = await self.app.push_screen_wait(Choose[datetime]("Snooze until", choices))
        if picked is None:
            return
        await self._apply(
            snooze(self.conversation_id, picked, session.now()),
            f"Snoozed until {session.local(picked)}.",
        )

    @work(exit_on_error=False, group="conversation-pick")
    async def action_add_label(self) -> None:
        label = await self.app.push_screen_wait(
            Ask("Add a label", placeholder="such as question or follow-up")
        )
        if not label:
            return
        try:
            stored = await add_label(self.conversation_id, label, session_of(self).now())
        except DripperError as exc:
            self._say(str(exc), severity="error")
            return
        self._say(f"Labelled #{stored}.")
        self._changed()

    @work(exit_on_error=False, group="conversation-pick")
    async def action_remove_label(self) -> None:
        labels = self.summary.labels if self.summary else ()
        if not labels:
            self._say("This conversation has no labels.")
            return
        choices = [(f"#{label}", label) for label in labels]
        picked = await self.app.push_screen_wait(Choose[str]("Remove the label", choices))
        if picked is None:
            return
        await self._apply(
            remove_label(self.conversation_id, picked, session_of(self).now()),
            f"Removed #{picked}.",
        )

    @work(exit_on_error=False, group="conversation-act")
    async def action_mark_unread(self) -> None:
        session = session_of(self)
        self._leaving = True  # a reload on the way out must not mark it read again
        await mark_unread(self.conversation_id, session.trainer.id)
        self._leave()

    # ------------------------------------------------------------------ view

    @work(exit_on_error=False, group="conversation-pick")
    async def action_open_file(self) -> None:
        """Open a file the learner sent (the newest, or the one picked), or save a copy."""
        files = sent_files(self._entries)
        if not files:
            self._say("The learner sent no files in this conversation.")
            return
        chosen = files[0]
        if len(files) > 1:
            picked = await self.app.push_screen_wait(
                Choose[SentFile]("Open which file?", [(file.label, file) for file in files])
            )
            if picked is None:
                return
            chosen = picked
        if chosen.stored is None:
            self._say(f"{chosen.name} is not kept: {chosen.why_not}", severity="warning")
            return
        config = session_of(self).config
        if config.media_folder is None:
            self._say("No media folder is configured for this dashboard.", severity="error")
            return
        learner = self.summary.learner_name if self.summary else "learner"
        saves_to = config.saves_to or default_saves_folder()
        try:
            done = await asyncio.to_thread(
                open_or_save, chosen, MediaFolder(config.media_folder), saves_to, learner
            )
        except (OSError, ValueError) as exc:
            self._say(f"{chosen.name} could not be opened: {exc}", severity="error")
            return
        self._say(done)

    def action_toggle_panel(self) -> None:
        panel = self.query_one("#learner-panel", LearnerPanelView)
        self._panel_choice = not panel.display
        self._apply_panel()

    def action_thread_down(self) -> None:
        self.thread_view.scroll_down()

    def action_thread_up(self) -> None:
        self.thread_view.scroll_up()


def notify_canned_trouble(node: App[None] | Widget, exc: CannedRepliesError) -> None:
    """Say that the canned replies file is broken, and where (the error names file:line)."""
    node.notify(
        str(exc), title="Canned replies not loaded", severity="error", timeout=15, markup=False
    )
