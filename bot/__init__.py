"""syncbot's Slack side: parse /sync, render runs as Block Kit, keep each run's thread current."""
