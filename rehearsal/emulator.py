"""ministack as a child process: loopback only, IAM enforced, TLS, a free port, stopped for sure.

The process gets a clean environment: the host's CA-bundle variables would be inherited by the
Lambda functions it runs (they then distrust ministack's own certificate and every custom
resource's answer fails), and its temporary folder is the run's own (its self-signed
certificate and the functions' working trees live there).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rehearsal.errors import RehearsalError

REGION = "us-east-1"
ACCOUNT = "000000000000"  # ministack's default account
# Root credentials of ministack's account (any value; "test" is one it treats as root).
ROOT_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
SERVER = Path(__file__).resolve().parent / "serve_ministack.py"
# sitecustomize.py of every process ministack starts: the KeyValueStore API's host resolves.
LAMBDA_SITE = Path(__file__).resolve().parent / "lambda_site"


def resolve_account_hosts() -> None:
    """This process resolves the KeyValueStore API's host as ministack's functions do
    (``lambda_site/sitecustomize.py``: ``<account>.127.0.0.1`` is 127.0.0.1, nothing else)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "rehearsal_lambda_site", LAMBDA_SITE / "sitecustomize.py"
    )
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Ministack:
    """One ministack server for one rehearsal run."""

    python: Path
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def certificate(self) -> Path:
        return self.workdir / "ministack-tls" / "server.crt"

    @property
    def ca_bundle(self) -> Path:
        """The system's roots and ministack's certificate: what the CDK CLI and boto3 trust."""
        return self.workdir / "ca-bundle.pem"

    @property
    def denials(self) -> Path:
        """Where the server appends each authorization denial (serve_ministack.py)."""
        return self.workdir / "denials.jsonl"

    def denials_since(self, offset: int) -> tuple[list[dict[str, str]], int]:
        """The denials recorded after byte *offset*, and the new offset."""
        import json

        try:
            data = self.denials.read_bytes()
        except FileNotFoundError:
            return [], offset
        lines = data[offset:].decode(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.strip()], len(data)

    @property
    def log(self) -> Path:
        return self.workdir / "ministack.log"

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", str(self.workdir)),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.workdir),
            "GATEWAY_PORT": str(self.port),
            "BIND_HOST": "127.0.0.1",
            "USE_SSL": "1",
            "AUTH": "true",
            "MINISTACK_REGION": REGION,
            "LOG_LEVEL": "WARNING",
            "PYTHONDONTWRITEBYTECODE": "1",
            "REHEARSAL_DENIALS": str(self.denials),
            "REHEARSAL_ACCOUNT": ACCOUNT,
            "PYTHONPATH": str(LAMBDA_SITE),
        }
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(self.python), str(SERVER)],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its Lambda workers are its children: one group, stopped together.
                start_new_session=True,
            )
        self._wait_ready(timeout)
        resolve_account_hosts()
        system = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
        roots = Path(system).read_bytes() if Path(system).exists() else b""
        self.ca_bundle.write_bytes(roots + b"\n" + self.certificate.read_bytes())

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RehearsalError(
                    f"ministack exited at start: {self.last_log_line() or '(no output)'}"
                )
            if self.certificate.exists():
                with contextlib.suppress(OSError):
                    context = ssl.create_default_context(cafile=str(self.certificate))
                    with (
                        socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw,
                        context.wrap_socket(raw, server_hostname="127.0.0.1"),
                    ):
                        return
            time.sleep(0.2)
        raise RehearsalError(f"ministack did not answer on port {self.port} in {timeout:.0f} s")

    def last_log_line(self, containing: str = "") -> str:
        """ministack's last log line (containing *containing*), or ``""``."""
        with contextlib.suppress(OSError):
            lines = [
                line
                for line in self.log.read_text(errors="replace").splitlines()
                if line.strip() and containing in line
            ]
            if lines:
                return " ".join(lines[-1].split())[:300]
        return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(wait)
                break
        # Lambda workers left behind by a SIGTERM that ended only the server.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def environment(self) -> dict[str, str]:
        """What a process needs to talk to this ministack as a user talks to AWS."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ROOT_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": ROOT_CREDENTIALS["aws_secret_access_key"],
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            # The CDK CLI takes AWS_CA_BUNDLE as its only trust store when it is set; Node's
            # own clients take NODE_EXTRA_CA_CERTS in addition to theirs.
            "AWS_CA_BUNDLE": str(self.ca_bundle),
            "NODE_EXTRA_CA_CERTS": str(self.certificate),
        }

    def session(self, **credentials: str) -> Any:
        import boto3

        return boto3.Session(region_name=REGION, **(credentials or ROOT_CREDENTIALS))

    def client(self, service: str, **credentials: str) -> Any:
        from botocore.config import Config

        return self.session(**credentials).client(
            service,
            endpoint_url=self.endpoint,
            verify=str(self.ca_bundle),
            config=Config(retries={"mode": "standard", "max_attempts": 3}, read_timeout=60),
        )
