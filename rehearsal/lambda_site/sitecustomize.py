"""Rehearsal only: the KeyValueStore API's host name resolves, as AWS's DNS resolves it.

botocore sends the CloudFront KeyValueStore data-plane API to ``<account>.<endpoint host>``
(its endpoint rules put the store's account in front of any endpoint: on AWS
``<account>.cloudfront-kvs.global.api.aws``). With ministack's endpoint
``https://127.0.0.1:<port>`` that is ``<account>.127.0.0.1``, which no resolver knows. The rehearsal
puts this directory on ministack's ``PYTHONPATH`` (rehearsal.emulator), which the Lambda
functions it runs inherit, so they resolve that name to 127.0.0.1; the server's certificate
names it (serve_ministack.py), so TLS is verified as usual. Nothing else changes.
"""

from __future__ import annotations

import re
import socket
from typing import Any

ACCOUNT_HOST = re.compile(r"^\d{12}\.127\.0\.0\.1$")


def install() -> None:
    resolve = socket.getaddrinfo
    if getattr(resolve, "rehearsal", False):
        return

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, (str, bytes)) and ACCOUNT_HOST.match(
            host.decode() if isinstance(host, bytes) else host
        ):
            host = "127.0.0.1"
        return resolve(host, *args, **kwargs)

    getaddrinfo.rehearsal = True  # type: ignore[attr-defined]
    socket.getaddrinfo = getaddrinfo


install()
