"""Which deployment a command operates on, and the clients to reach it.

Three ways to name it, one code path (boto3 clients, with an ``endpoint_url`` or without):

* ``--stack NAME`` on AWS (standard credential chain, ``--profile``, ``--region``): the
  resources come from the CloudFormation stack's outputs, as the CDK app declares them;
* ``--sandbox``: the local sandbox started by ``originlock sandbox``, found through the state
  file it writes (its moto endpoint and URLs);
* ``--endpoint-url URL``: any AWS-compatible endpoint (the sandbox's moto, for instance).

Against an endpoint, ``--stack`` still works; without it, the resources are found by the
names the sandbox gives them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import stat
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from originlock.errors import NO_REGION, TargetError

# Names in the sandbox (``originlock.sandbox.harness.deploy(name="originlock")``).
SANDBOX_NAME = "originlock"
STATE_MACHINE_NAME = f"{SANDBOX_NAME}-rotation"
PARAMETER_NAME = f"/{SANDBOX_NAME}/origin-token"
AUTHORIZER_FUNCTION_NAME = f"{SANDBOX_NAME}-authorizer"
SCHEDULE_NAME = f"{SANDBOX_NAME}-rotation"
SCHEDULE_GROUP = "default"
SANDBOX_STACK = f"{SANDBOX_NAME}-sandbox"
# The CDK app's default ``headerName``; a stack that sets another one says so in its
# ``OriginHeaderName`` output, the sandbox in its description.
HEADER_NAME = "x-cf-api-gateway-token"
SANDBOX_FILE_ENV = "ORIGINLOCK_SANDBOX_FILE"
SANDBOX_FILE_NAME = "sandbox.json"
SANDBOX_REGION = "us-east-1"
SANDBOX_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}

# Stack output key -> Target field. The CDK app declares these outputs.
OUTPUT_KEYS = {
    "StateMachineArn": "state_machine_arn",
    "ParameterName": "parameter_name",
    "DistributionId": "distribution_id",
    "ApiUrl": "api_url",
    "CloudFrontUrl": "cloudfront_url",
    "AuthorizerFunctionName": "authorizer_function_name",
    "ScheduleName": "schedule_name",
    "ScheduleGroupName": "schedule_group",
    "OriginHeaderName": "header_name",
}
REQUIRED_OUTPUTS = ("StateMachineArn", "ParameterName")


@dataclass(frozen=True)
class TargetOptions:
    """The global options of the CLI that say where to operate."""

    profile: str | None = None
    region: str | None = None
    stack: str | None = None
    sandbox: bool = False
    endpoint_url: str | None = None

    def command(self, *args: str) -> str:
        """``originlock`` with the options that name this target, then *args*: a command line
        that can be pasted as it is (hints, error messages)."""
        words = ["originlock"]
        if self.sandbox:
            words.append("--sandbox")
        for option, value in (
            ("--endpoint-url", self.endpoint_url),
            ("--stack", self.stack),
            ("--region", self.region),
            ("--profile", self.profile),
        ):
            if value and not (self.sandbox and option == "--endpoint-url"):
                words += [option, value]
        return shlex.join([*words, *args])


@dataclass(frozen=True)
class Target:
    """One originlock deployment: its resources and how to reach them."""

    session: Any
    endpoint_url: str | None
    region: str
    description: str
    state_machine_arn: str
    parameter_name: str
    distribution_id: str | None = None
    api_url: str | None = None
    cloudfront_url: str | None = None
    authorizer_function_name: str | None = None
    schedule_name: str | None = None
    schedule_group: str | None = None
    stack_name: str | None = None
    # The origin header CloudFront adds (what ``status`` looks for on the distribution).
    header_name: str = HEADER_NAME
    # The options that named this target, for hints that can be pasted (``command``).
    options: TargetOptions = field(default_factory=TargetOptions, compare=False)
    # One client per service, built on first use: building one costs 20-30 ms of CPU, and
    # watching an execution asks for two a poll.
    _clients: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _clients_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        # HTTP header names are case-insensitive; CloudFront keeps the case it was given.
        object.__setattr__(self, "header_name", self.header_name.strip().lower())

    @property
    def local(self) -> bool:
        return self.endpoint_url is not None

    def command(self, *args: str) -> str:
        """The command line that runs *args* against this target (see
        :meth:`TargetOptions.command`)."""
        return self.options.command(*args)

    def client(self, service: str) -> Any:
        """This target's client for *service* (one per service; boto3 clients may be shared
        between threads, sessions may not, hence the lock)."""
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = self._new_client(service)
            return self._clients[service]

    def _new_client(self, service: str) -> Any:
        from botocore.config import Config

        from originlock.document import silence_botocore_body_logs

        # botocore's DEBUG records carry bodies (the document, the distribution's header):
        # `--debug`-style logging of the CLI's process must not print a token.
        silence_botocore_body_logs()
        return self.session.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            config=Config(
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=5,
                read_timeout=30,
                user_agent_extra="originlock-cli",
            ),
        )


# -- the sandbox's state file ------------------------------------------------------------
# The state file says where the sandbox listens: whoever can write it points `--sandbox` at
# their own endpoint, and whoever plants a symlink where it is written has the sandbox write
# through it. So it lives in a directory only its user can enter, is written beside itself
# and renamed into place (never opened by its final name), and is read only if it is a
# regular file of the user's.


def sandbox_dir() -> Path:
    """The per-user directory of the state file: ``$XDG_RUNTIME_DIR`` when it is a directory
    of the user's that nobody else can enter, else ``originlock-<uid>`` in the temporary
    directory (created 0700 by :func:`write_sandbox_file`)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        try:
            _check_private_dir(Path(runtime))
        except (TargetError, OSError):
            pass
        else:
            return Path(runtime) / "originlock"
    return Path(tempfile.gettempdir()) / f"originlock-{os.getuid()}"


def sandbox_file() -> Path:
    """Where ``originlock sandbox`` records its endpoint and URLs (never a secret):
    ``ORIGINLOCK_SANDBOX_FILE``, else ``sandbox.json`` in :func:`sandbox_dir`."""
    configured = os.environ.get(SANDBOX_FILE_ENV)
    if configured:
        return Path(configured)
    return sandbox_dir() / SANDBOX_FILE_NAME


def _check_private_dir(path: Path) -> None:
    """Refuse a directory that is a symlink, not the user's, or open to others."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise TargetError(f"refusing {path}: not a directory (a symlink or a file is there)")
    if info.st_uid != os.getuid():
        raise TargetError(f"refusing {path}: owned by uid {info.st_uid}, not by you")
    if info.st_mode & 0o077:
        raise TargetError(f"refusing {path}: others can enter it (mode {info.st_mode & 0o777:o})")


def _private_dir(path: Path) -> None:
    """Create *path* (0700) if missing, then check it as :func:`_check_private_dir` does."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    _check_private_dir(path)


def write_sandbox_file(path: Path, data: dict[str, Any]) -> None:
    """Write the state file atomically, owner-only, never through a symlink.

    The default directory (:func:`sandbox_dir`) is created 0700 and must be the user's; a
    file named by ``ORIGINLOCK_SANDBOX_FILE`` goes where it says. Either way the content is
    written to a new file (``O_EXCL``, mode 0600) beside it and renamed over *path*, which
    replaces a symlink planted there instead of following it.
    """
    if path.parent == sandbox_dir():
        _private_dir(path.parent)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".sandbox-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(json.dumps(data, indent=2) + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_own_file(path: Path) -> str:
    """The text of *path* if it is a regular file of the user's (not followed if a symlink)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(descriptor) as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise TargetError(f"refusing the sandbox state file {path}: not a regular file")
        if info.st_uid != os.getuid():
            raise TargetError(
                f"refusing the sandbox state file {path}: owned by uid {info.st_uid}, not by you"
            )
        return handle.read(1_000_000)


def read_sandbox_file(path: Path | None = None) -> dict[str, Any]:
    path = path or sandbox_file()
    try:
        if path.parent == sandbox_dir():
            _check_private_dir(path.parent)
        if path.is_symlink():
            raise TargetError(f"refusing the sandbox state file {path}: it is a symlink")
        data = json.loads(_read_own_file(path))
    except FileNotFoundError:
        raise TargetError(
            "no sandbox is running: start one with `originlock sandbox` (or `make sandbox`)"
        ) from None
    except (OSError, ValueError) as exc:
        raise TargetError(f"cannot read the sandbox state file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise TargetError(f"the sandbox state file {path} does not describe a sandbox")
    pid = data.get("pid")
    if isinstance(pid, int) and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise TargetError(
                "the sandbox recorded in "
                f"{path} is no longer running: start one with `originlock sandbox`"
            ) from None
        except PermissionError:
            pass  # alive, someone else's
    if not isinstance(data.get("endpoint_url"), str):
        raise TargetError(f"the sandbox state file {path} has no endpoint_url")
    return dict(data)


# -- resolving -----------------------------------------------------------------------------
def session_for(options: TargetOptions, **kwargs: Any) -> Any:
    """A boto3 session for *options*: ``--profile``; the region from ``--region``, else
    ``AWS_REGION``, else ``AWS_DEFAULT_REGION`` or the profile's (botocore's chain)."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    # botocore reads AWS_DEFAULT_REGION (then the profile) but not AWS_REGION, which the AWS
    # SDKs and the AWS CLI read first: --region, then AWS_REGION, then botocore's chain.
    region = options.region or os.environ.get("AWS_REGION") or None
    try:
        return boto3.Session(profile_name=options.profile, region_name=region, **kwargs)
    except ProfileNotFound:
        raise TargetError(f"AWS profile not found: {options.profile}") from None


def resolve(options: TargetOptions) -> Target:
    """Find the deployment *options* name.

    Raises
    ------
    TargetError
        When it cannot be found; the message says which option to use.
    botocore.exceptions.NoCredentialsError, botocore.exceptions.ClientError
        From the AWS calls made to find it (the CLI reports them in one line).
    """
    return replace(_resolve(options), options=options)


def _resolve(options: TargetOptions) -> Target:
    if options.sandbox and options.endpoint_url:
        raise TargetError("--sandbox and --endpoint-url both name an endpoint: use one of them")
    if options.sandbox:
        info = read_sandbox_file()
        region = str(info.get("region") or SANDBOX_REGION)
        session = session_for(
            TargetOptions(region=region), **SANDBOX_CREDENTIALS
        )  # moto accepts any credentials; the operator's are never sent to the sandbox
        return _resolve_at(options, session, str(info["endpoint_url"]), region, info)
    if options.endpoint_url:
        session = session_for(options)
        region = session.region_name or SANDBOX_REGION
        info = _sandbox_info_for(options.endpoint_url)
        return _resolve_at(options, session, options.endpoint_url.rstrip("/"), region, info)
    session = session_for(options)
    region = session.region_name
    if not region:
        raise TargetError(NO_REGION)
    if not options.stack:
        raise TargetError(
            "which deployment? pass --stack NAME (the CDK stack) or --sandbox for the local one"
        )
    return from_stack(session, None, region, options.stack)


def _sandbox_info_for(endpoint_url: str) -> dict[str, Any]:
    """The sandbox state file's URLs, when it describes the sandbox at *endpoint_url*."""
    try:
        info = read_sandbox_file()
    except TargetError:
        return {}
    if str(info.get("endpoint_url", "")).rstrip("/") == endpoint_url.rstrip("/"):
        return info
    return {}


def _resolve_at(
    options: TargetOptions, session: Any, endpoint_url: str, region: str, info: dict[str, Any]
) -> Target:
    if options.stack:
        return from_stack(session, endpoint_url, region, options.stack)
    return discover(session, endpoint_url, region, info)


def from_stack(session: Any, endpoint_url: str | None, region: str, stack: str) -> Target:
    """A target from the outputs of the CloudFormation stack *stack*."""
    from botocore.exceptions import ClientError

    probe = Target(session, endpoint_url, region, "", "", "")
    try:
        stacks = probe.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in error.get("Message", ""):
            raise TargetError(f"stack {stack} not found in {region}") from None
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", []) or []}
    missing = [key for key in REQUIRED_OUTPUTS if key not in outputs]
    if missing:
        raise TargetError(
            f"stack {stack} has no output {', '.join(missing)}: is it an originlock stack?"
        )
    fields = {field: outputs[key] for key, field in OUTPUT_KEYS.items() if outputs.get(key)}
    where = f" at {endpoint_url}" if endpoint_url else ""
    return Target(
        session=session,
        endpoint_url=endpoint_url,
        region=region,
        description=f"stack {stack} ({region}){where}",
        stack_name=stack,
        **fields,
    )


def discover(session: Any, endpoint_url: str, region: str, info: dict[str, Any]) -> Target:
    """A target found by the sandbox's resource names at *endpoint_url*."""
    probe = Target(session, endpoint_url, region, "", "", "")
    sfn = probe.client("stepfunctions")
    arn = None
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            if machine["name"] == STATE_MACHINE_NAME:
                arn = machine["stateMachineArn"]
    if arn is None:
        raise TargetError(
            f"no state machine named {STATE_MACHINE_NAME} at {endpoint_url}: "
            "is originlock deployed there? (or pass --stack)"
        )
    outputs = info.get("outputs") or {}
    header = str(info.get("header_name") or outputs.get("OriginHeaderName") or HEADER_NAME)
    header = header.strip().lower()
    return Target(
        session=session,
        endpoint_url=endpoint_url,
        region=region,
        description=f"sandbox at {endpoint_url}",
        state_machine_arn=arn,
        parameter_name=PARAMETER_NAME,
        distribution_id=_find_distribution(probe, header),
        api_url=info.get("api_url"),
        cloudfront_url=info.get("cloudfront_url"),
        authorizer_function_name=outputs.get("AuthorizerFunctionName", AUTHORIZER_FUNCTION_NAME),
        schedule_name=outputs.get("ScheduleName", SCHEDULE_NAME),
        schedule_group=outputs.get("ScheduleGroupName", SCHEDULE_GROUP),
        header_name=header,
    )


def _find_distribution(probe: Target, header_name: str) -> str | None:
    """The distribution whose origin carries the origin header *header_name*."""
    listing = probe.client("cloudfront").list_distributions().get("DistributionList", {})
    items = listing.get("Items", []) or []
    for item in items:
        for origin in item.get("Origins", {}).get("Items", []) or []:
            headers = (origin.get("CustomHeaders") or {}).get("Items", []) or []
            if any(h.get("HeaderName", "").lower() == header_name for h in headers):
                return str(item["Id"])
    return str(items[0]["Id"]) if len(items) == 1 else None
