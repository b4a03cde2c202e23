"""Local stand-ins for Slack, Databricks, S3 and Snowflake that speak the real protocols."""

from .stack import LocalStack

__all__ = ["LocalStack"]
