"""A Slack channel in the terminal: type `/sync …`, watch the bot's messages appear, update and thread.

On a terminal the channel is redrawn as it changes (updates replace the old text); when input is piped, each
change is printed once, as a line, so the output reads as a log of the channel.
"""

from __future__ import annotations

import re
import sys
import threading
from typing import Any, TextIO

from .slack import DEMO_CHANNEL_ID, DEMO_USER_ID, Ephemeral, Message, SlackEmulator

_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]+)>")
_MENTION = re.compile(r"<@([A-Z0-9]+)>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)>")
_BOLD = re.compile(r"\*(\S(?:[^*\n]*\S)?)\*")


def plain(text: str) -> str:
    """Slack mrkdwn as a terminal shows it."""
    text = _LINK.sub(r"\2", text)
    text = _MENTION.sub(r"@\1", text)
    text = _CHANNEL.sub(r"#\1", text)
    text = _BOLD.sub(r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("`", "")


def _block_lines(blocks: list[dict[str, Any]]) -> list[str]:
    lines = []
    for block in blocks[1:]:  # the first block repeats the status line of `text`
        if block.get("type") == "section" and block.get("fields"):
            lines.append(" · ".join(plain(field["text"]) for field in block["fields"]))
        elif block.get("type") == "section":
            button = block.get("accessory") or {}
            suffix = f"  [ {button['text']['text']} ]" if button.get("type") == "button" else ""
            lines += (plain(block["text"]["text"]) + suffix).splitlines()  # a receipt spans several lines
        elif block.get("type") == "actions":
            lines.append("  ".join(f"[ {element['text']['text']} ]" for element in block.get("elements", [])))
    return lines


def _ephemeral_lines(ephemeral: Ephemeral) -> list[str]:
    """An ephemeral answer: its text, or its blocks when it has some (the picker)."""
    if ephemeral.blocks:
        return [plain(ephemeral.blocks[0].get("text", {}).get("text", ephemeral.text)), *_block_lines(ephemeral.blocks)]
    return plain(ephemeral.text).splitlines()


class ChannelView:
    def __init__(self, slack: SlackEmulator, *, channel: str = DEMO_CHANNEL_ID, user: str = DEMO_USER_ID,
                 out: TextIO = sys.stdout, live: bool | None = None) -> None:
        self.slack = slack
        self.channel = channel
        self.user = user
        self.dm_channel = "D" + user[1:]
        self.out = out
        self.live = out.isatty() if live is None else live
        self._printed: dict[tuple[str, str], str] = {}
        self._ephemerals_printed = 0
        self._lock = threading.Lock()
        self._scheduled = False

    def changed(self) -> None:
        """Called by the emulator (on its loop) whenever something was posted, updated or shown."""
        if self.live:
            if not self._scheduled:  # coalesce bursts into one redraw
                self._scheduled = True
                threading.Timer(0.15, self._redraw).start()
        else:
            self._print_changes()

    def _visible(self) -> list[Message]:
        return [m for m in self.slack.messages if m.channel in (self.channel, self.dm_channel)]

    def render(self) -> str:
        known = self.slack.channels.get(self.channel)
        name = known.name if known else self.channel
        lines = [f"#{name} — local Slack (type /sync, /sync list, /sync status, /sync help; Ctrl-D to leave)", "─" * 78]
        for parent in (m for m in self._visible() if m.thread_ts is None):
            where = " (in your DMs with syncbot)" if parent.channel == self.dm_channel else ""
            edited = " (edited)" if parent.edits else ""
            lines.append(f"syncbot{where}{edited}")
            lines.append(f"  {plain(parent.text)}")
            lines += [f"  {line}" for line in _block_lines(parent.blocks)]
            replies = self.slack.replies(parent)
            if replies:
                lines.append(f"  ↳ {len(replies)} {'reply' if len(replies) == 1 else 'replies'}")
                for reply in replies:
                    first, *rest = plain(reply.text).splitlines() or [""]
                    lines.append(f"    │ {first}")
                    lines += [f"    │   {line}" for line in rest]
            lines.append("")
        for ephemeral in self.slack.ephemerals:
            if ephemeral.user == self.user:
                lines += [f"  (only visible to you) {line}" for line in _ephemeral_lines(ephemeral)[:14]]
        return "\n".join(lines)

    def _redraw(self) -> None:
        with self._lock:
            self._scheduled = False
            self.out.write("\x1b[2J\x1b[H" + self.render() + "\n> ")
            self.out.flush()

    def _print_changes(self) -> None:
        with self._lock:
            for message in self._visible():
                key = (message.channel, message.ts)
                if self._printed.get(key) == message.text:
                    continue
                text = plain(message.text)
                if message.thread_ts is not None:
                    first, *rest = text.splitlines() or [""]
                    self.out.write(f"    │ {first}\n" + "".join(f"    │   {line}\n" for line in rest))
                elif key in self._printed:
                    self.out.write(f"  ↻ {text}\n")
                    if message.shows_final_run:  # the outcome, the receipt and the buttons left
                        self.out.write("".join(f"      {line}\n" for line in _block_lines(message.blocks)))
                else:
                    where = " (in your DMs with syncbot)" if message.channel == self.dm_channel else ""
                    self.out.write(f"syncbot{where}: {text}\n")
                self._printed[key] = message.text
            mine = [e for e in self.slack.ephemerals if e.user == self.user]
            for ephemeral in mine[self._ephemerals_printed:]:
                for line in _ephemeral_lines(ephemeral):
                    self.out.write(f"  (only visible to you) {line}\n")
            self._ephemerals_printed = len(mine)
            self.out.flush()
