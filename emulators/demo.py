"""`make demo`: the whole local stack, the real bot as a subprocess (`python -m bot`, configured through the
same environment variables production uses, with two syncs from emulators/demo_syncs.toml), and a Slack channel in
this terminal."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path

from .botprocess import BotNotReady, BotProcess, follow, run_id_of
from .channel import ChannelView
from .slack import DEMO_CHANNEL_ID
from .stack import LocalStack

DEMO_SYNCS = Path(__file__).with_name("demo_syncs.toml")


def _read_lines(lines: list[str | None], arrived: threading.Event) -> None:
    for line in sys.stdin:
        lines.append(line.rstrip("\n"))
        arrived.set()
    lines.append(None)  # end of input
    arrived.set()


def demo_env(stack: LocalStack, workdir: Path) -> dict[str, str]:
    """Every setting is given, empty where unused, so that a developer's own .env cannot leak into the demo."""
    unused = dict.fromkeys(("SNOWFLAKE_PRIVATE_KEY_FILE", "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "DATABRICKS_CLIENT_ID",
                            "DATABRICKS_CLIENT_SECRET", "DATABRICKS_CONFIG_PROFILE", "SYNC_EXPORT_PREFIX",
                            "SYNC_DB_URL", "SYNC_HTTP_PORT", "SYNC_API_TOKEN"), "")
    return {**unused, **stack.env(), "SYNC_CONFIG": str(DEMO_SYNCS), "SYNC_DB_PATH": str(workdir / "syncbot.db")}


def run_demo() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="syncbot-demo-"))
    print("Starting the local stack (S3, Snowflake, Databricks and Slack stand-ins)…", flush=True)
    stack = LocalStack(poll_interval_seconds=1.0, poll_max_interval_seconds=2.0, run_timeout_seconds=300).start()
    try:
        log_path = workdir / "bot.log"
        print(f"Starting the bot: python -m bot (its log: {log_path})…", flush=True)
        with BotProcess(stack, {**os.environ, **demo_env(stack, workdir)}, log_path) as bot:
            try:
                bot.wait_connected()
            except BotNotReady as exc:
                print(str(exc), file=sys.stderr)
                return 1
            return _session(stack, bot)
    finally:
        stack.stop()


def _session(stack: LocalStack, bot: BotProcess) -> int:
    view = ChannelView(stack.slack)
    stack.slack.on_change(view.changed)
    print(f"Connected. You are @{stack.slack.slash_command_payload('')['user_name']} in #data-eng. Two syncs: "
          "`forecast` (replace) and `forecast_us` (append). Type /sync to pick one, /sync forecast to run it, "
          "/sync list, /sync help; Ctrl-D to leave.\n", flush=True)
    if view.live:
        view.changed()
    lines: list[str | None] = []
    arrived = threading.Event()
    threading.Thread(target=_read_lines, args=(lines, arrived), daemon=True).start()
    started: list[str] = []
    while True:
        arrived.wait()
        arrived.clear()
        while lines:
            line = lines.pop(0)
            if line is None:
                return _wait_for_runs(stack, started, bot)
            line = line.strip()
            if not line:
                continue
            if line in ("quit", "exit"):
                return 0
            if not line.startswith("/sync"):
                print("  (this channel only understands /sync commands: try /sync help)", flush=True)
                continue
            if not view.live:  # piped input is not echoed by a terminal: show what "you" typed
                print(f"you: {line}", flush=True)
            if bot.process.poll() is not None:
                print("The bot has stopped. Its log says:\n" + bot.log()[-3000:], file=sys.stderr)
                return 1
            ack = stack.call(stack.slack.send_command(line.removeprefix("/sync").strip(), channel=DEMO_CHANNEL_ID))
            if run_id := run_id_of(ack):
                started.append(run_id)
                if not view.live:  # piped input reads as a script: each run finishes before the next line
                    _wait_for_runs(stack, [run_id], bot)


def _wait_for_runs(stack: LocalStack, started: list[str], bot: BotProcess) -> int:
    """Until every run started here shows its final status (its thread is then complete)."""
    try:
        for run_id in started:
            follow(stack, run_id, timeout=600, bot=bot)
    except (TimeoutError, BotNotReady) as exc:
        print(f"Gave up waiting for the runs to finish: {exc}", file=sys.stderr)
        return 1
    return 0
