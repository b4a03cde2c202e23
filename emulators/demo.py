"""`make demo`: the whole local stack, the real bot as a subprocess (`python -m bot`, configured through the
same environment variables production uses), and a Slack channel in this terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .channel import ChannelView
from .slack import DEMO_CHANNEL_ID
from .stack import LocalStack

_RUN_ID = re.compile(r"\b(\d{4}-[a-z0-9]{6})\b")
ROOT = Path(__file__).resolve().parent.parent


def _read_lines(lines: list[str | None], arrived: threading.Event) -> None:
    for line in sys.stdin:
        lines.append(line.rstrip("\n"))
        arrived.set()
    lines.append(None)  # end of input
    arrived.set()


def run_demo() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="syncbot-demo-"))
    print("Starting the local stack (S3, Snowflake, Databricks and Slack stand-ins)…", flush=True)
    stack = LocalStack(poll_interval_seconds=1.0, poll_max_interval_seconds=2.0, run_timeout_seconds=300).start()
    # Every setting is given, empty where unused, so that a developer's own .env cannot leak into the demo.
    unused = dict.fromkeys(("SNOWFLAKE_PRIVATE_KEY_FILE", "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "SNOWFLAKE_ROLE",
                            "SNOWFLAKE_WAREHOUSE", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET",
                            "DATABRICKS_CONFIG_PROFILE", "SYNC_EXPORT_PREFIX"), "")
    env = {**os.environ, **unused, **stack.env(), "SYNC_DB_PATH": str(workdir / "syncbot.db"),
           "PYTHONUNBUFFERED": "1"}
    log_path = workdir / "bot.log"
    with log_path.open("w") as log_file:
        bot = subprocess.Popen([sys.executable, "-m", "bot"], cwd=ROOT, env=env, stdout=log_file,
                               stderr=subprocess.STDOUT)
    try:
        return _session(stack, bot, log_path)
    finally:
        if bot.poll() is None:
            bot.terminate()
            try:
                bot.wait(10)
            except subprocess.TimeoutExpired:
                bot.kill()
        stack.stop()


def _session(stack: LocalStack, bot: subprocess.Popen[bytes], log_path: Path) -> int:
    print(f"Starting the bot: python -m bot (its log: {log_path})…", flush=True)
    deadline = time.monotonic() + 60
    while not stack.slack.connections:
        if bot.poll() is not None or time.monotonic() > deadline:
            print("The bot did not connect. Its log says:\n" + log_path.read_text()[-3000:], file=sys.stderr)
            return 1
        time.sleep(0.1)
    view = ChannelView(stack.slack)
    stack.slack.on_change(view.changed)
    print(f"Connected. You are @{stack.slack.slash_command_payload('')['user_name']} in #data-eng. "
          "Type /sync to move 1000 rows from Databricks to Snowflake; /sync help for more; Ctrl-D to leave.\n",
          flush=True)
    if view.live:
        view.changed()

    lines: list[str | None] = []
    arrived = threading.Event()
    threading.Thread(target=_read_lines, args=(lines, arrived), daemon=True).start()
    started: set[str] = set()
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
            if bot.poll() is not None:
                print("The bot has stopped. Its log says:\n" + log_path.read_text()[-3000:], file=sys.stderr)
                return 1
            ack = stack.call(stack.slack.send_command(line.removeprefix("/sync").strip(), channel=DEMO_CHANNEL_ID))
            if "Starting sync" in ack.get("text", ""):
                started.update(_RUN_ID.findall(ack["text"])[:1])
                if not view.live:  # piped input reads as a script: each run finishes before the next line
                    _wait_for_runs(stack, started, bot)


def _wait_for_runs(stack: LocalStack, started: set[str], bot: subprocess.Popen[bytes]) -> int:
    """Input has ended: wait until every run started here is final and its thread has caught up."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and bot.poll() is None:
        parents = [stack.slack.find_parent(run_id) for run_id in started]
        if all(parent is not None and parent.shows_final_run for parent in parents):
            time.sleep(1.5)  # the final thread replies follow the parent's last update
            return 0
        time.sleep(0.2)
    print("Gave up waiting for the runs to finish.", file=sys.stderr)
    return 1
