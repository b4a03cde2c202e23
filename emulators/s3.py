"""S3 stand-in: moto's server on loopback, with the share bucket Databricks writes and Snowflake reads."""

from __future__ import annotations

import logging
import threading
from typing import Any

import boto3
import s3fs
from moto.server import ThreadedMotoServer

from ._net import free_port

DEFAULT_BUCKET = "databricks-snowflake-share"
ACCESS_KEY = "local-stack"  # moto accepts any credentials; these exist only on this machine
SECRET_KEY = "local-stack"
REGION = "us-east-1"


class S3Emulator:
    def __init__(self, bucket: str = DEFAULT_BUCKET, port: int = 0) -> None:
        self.bucket = bucket
        self.port = port or free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._client: Any = None
        self._client_lock = threading.Lock()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Emulator:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server.start()
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def stop(self) -> None:
        self._server.stop()

    def client(self):  # type: ignore[no-untyped-def]
        """One boto3 client for the stand-ins (a client is thread-safe; making one costs ~30 ms of CPU)."""
        with self._client_lock:
            if self._client is None:
                self._client = boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=ACCESS_KEY,
                                            aws_secret_access_key=SECRET_KEY, region_name=REGION)
            return self._client

    def filesystem(self) -> s3fs.S3FileSystem:
        """An fsspec filesystem for DuckDB's `register_filesystem` (DuckDB's httpfs cannot be downloaded here)."""
        return s3fs.S3FileSystem(key=ACCESS_KEY, secret=SECRET_KEY, skip_instance_cache=True,
                                 client_kwargs={"endpoint_url": self.endpoint_url, "region_name": REGION})

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]
