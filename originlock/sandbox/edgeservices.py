"""What moto lacks for edge-signed mode: the KeyValueStore data plane, and running functions.

moto 5.2.5 has CloudFront's control plane for KeyValueStores and functions (create, describe)
but no ``cloudfront-keyvaluestore`` service, no ``PublishFunction`` and no ``TestFunction``
(../shared/FACTS.md). :class:`EdgeServices` supplies them, backed by
:class:`~originlock.sandbox.kvs.EmulatedKeyValueStore` and the persistent Node worker that runs
the real function (:class:`~originlock.sandbox.edgefunction.EdgeWorker`):

* **The data plane over HTTP**: ``DescribeKeyValueStore``, ``GetKey``, ``ListKeys``, ``PutKey``,
  ``DeleteKey`` and ``UpdateKeys`` as botocore's ``cloudfront-keyvaluestore`` model states them
  (REST-JSON: paths ``/key-value-stores/{KvsARN}[/keys[/{Key}]]``, ``If-Match`` and ``ETag``
  headers, ``ConflictException`` 409, ``ResourceNotFoundException`` 404,
  ``ValidationException`` 400 …). In server mode :meth:`EdgeServices.dispatcher` serves it on
  moto's own endpoint, in front of moto's app; a request that is not signed with SigV4A
  (``AWS4-ECDSA-P256-SHA256``, what the real service requires) is refused 403. In process
  (``mock_aws``), moto's request stubber hands these requests to the same handler.
* **Host names**: botocore's endpoint rules for this service put the store's account in front
  of any endpoint (``http://123456789012.127.0.0.1:PORT``), as AWS's own endpoint is
  ``https://<account>.cloudfront-kvs.global.api.aws``. While installed, the process resolves
  ``<12 digits>.127.0.0.1`` to ``127.0.0.1``, as AWS's DNS resolves the account's name; the
  signed ``Host`` header is sent unchanged.
* **Functions**: ``PublishFunction`` (the ``LIVE`` stage gets the code and configuration as they
  are), ``DescribeFunction`` honouring ``Stage`` (``LIVE`` before a publish is
  ``NoSuchFunctionExists``), and ``TestFunction``, which runs the stage's code in the worker
  against the latest version of the function's associated store (the control plane's view).

Fault injection: :attr:`EdgeServices.foreign_writes_before_next` makes the next writes meet a
store that another writer has just changed (their ``If-Match`` is stale: ``ConflictException``).

Pinned to moto 5.2.5, like the harness: the CloudFront response class and the request stubber
are private API. Values never appear in an exception, a log or a ``repr``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from originlock.sandbox.edgefunction import EdgeWorker, EdgeWorkerError
from originlock.sandbox.kvs import (
    EmulatedKeyValueStore,
    KeyValueStoreError,
    ResourceNotFoundError,
    ValidationError,
)

KVS_PATH = "/key-value-stores/"
# The data plane requires SigV4A (docs/edge-signed.md); botocore signs it so with awscrt.
SIGV4A = "AWS4-ECDSA-P256-SHA256"
SIGNING_SERVICE = "cloudfront-keyvaluestore"
STATUS = {
    "ConflictException": 409,
    "ValidationException": 400,
    "ResourceNotFoundException": 404,
    "AccessDeniedException": 403,
    "ServiceQuotaExceededException": 402,
    "InternalServerException": 500,
    "UnknownOperationException": 404,
}
REASONS = {200: "OK", 400: "Bad Request", 402: "Payment Required", 403: "Forbidden"}
REASONS |= {404: "Not Found", 409: "Conflict", 500: "Internal Server Error"}
LIST_DEFAULT, LIST_MAX = 10, 50  # ListKeys' MaxResults (the model: default 10, at most 50)
# The edge index TestFunction runs as in the worker (the sandbox's edges are 0..N-1).
TEST_EDGE = -1
FOREIGN_KEY = "written-by-someone-else"
_ACCOUNT_LOOPBACK = re.compile(r"\d{12}\.127\.0\.0\.1")
_AWS_KVS_URL = re.compile(r"https://\d{12}\.cloudfront-kvs\.global\.api\.aws/key-value-stores/")

Answer = tuple[int, dict[str, str], bytes]


def _error(code: str, message: str) -> Answer:
    body = json.dumps({"__type": code, "Message": message}).encode()
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code}
    return STATUS.get(code, 400), headers, body


def _ok(body: Mapping[str, Any], etag: str | None = None) -> Answer:
    headers = {"Content-Type": "application/json"}
    if etag is not None:
        headers["ETag"] = etag
    return 200, headers, json.dumps(body, separators=(",", ":")).encode()


def _route(raw_path: str) -> tuple[str, bool, str | None] | None:
    """``(arn, keys, key)`` of a data-plane path (``keys``: under ``/keys``), else ``None``.

    The ARN and the key are URI labels: botocore percent-encodes them (``/`` as ``%2F``), so
    the raw path is split on ``/`` before they are decoded."""
    if not raw_path.startswith(KVS_PATH):
        return None
    parts = raw_path[len(KVS_PATH) :].split("/")
    arn = unquote(parts[0])
    if not arn:
        return None
    if len(parts) == 1:
        return arn, False, None
    if parts[1] != "keys" or len(parts) > 3:
        return None
    key = unquote(parts[2]) if len(parts) == 3 else None
    return arn, True, key


class EdgeServices:
    """The sandbox's KeyValueStores (by ARN) and CloudFront Function runtime.

    Parameters
    ----------
    clock:
        Unix time, for ``TestFunction``'s ``Date.now()`` (the edges' worker calls use their own).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._stores: dict[str, EmulatedKeyValueStore] = {}
        self._workers: dict[str, EdgeWorker] = {}
        # Function name -> (code, configuration) of its LIVE stage, as published.
        self._live: dict[str, tuple[bytes, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        # Fault injection: before each of the next N writes, another writer changes the store.
        self.foreign_writes_before_next = 0
        self.foreign_writes = 0
        self.conflicts = 0
        self.calls: Counter[str] = Counter()
        self.function_tests = 0
        self._originals: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"EdgeServices(stores={sorted(self._stores)}, workers={len(self._workers)})"

    # -- registries ---------------------------------------------------------------------------
    def add_store(self, store: EmulatedKeyValueStore) -> EmulatedKeyValueStore:
        with self._lock:
            self._stores[store.arn] = store
        return store

    def store(self, arn: str) -> EmulatedKeyValueStore:
        with self._lock:
            found = self._stores.get(arn)
        if found is None:
            raise ResourceNotFoundError("the KeyValueStore does not exist")
        return found

    def stores(self) -> list[EmulatedKeyValueStore]:
        with self._lock:
            return list(self._stores.values())

    def worker_for(self, code: str) -> EdgeWorker:
        """The worker running *code* (started on first use; one per distinct code)."""
        digest = hashlib.sha256(code.encode()).hexdigest()
        with self._lock:
            worker = self._workers.get(digest)
            if worker is None:
                worker = self._workers[digest] = EdgeWorker(code).start()
            return worker

    def stop_workers(self) -> None:
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.stop()

    # -- the data plane -------------------------------------------------------------------------
    def handle(
        self,
        method: str,
        raw_path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        check_signature: bool = True,
    ) -> Answer:
        """Answer one data-plane request: ``(status, headers, body)`` as the service would."""
        lower = {name.lower(): value for name, value in headers.items()}
        if check_signature:
            authorization = lower.get("authorization", "")
            if not authorization.startswith(SIGV4A + " ") or (
                f"/{SIGNING_SERVICE}/aws4_request" not in authorization
            ):
                return _error(
                    "AccessDeniedException",
                    "the KeyValueStore API accepts only requests signed with SigV4A",
                )
        route = _route(raw_path)
        if route is None:
            return _error("UnknownOperationException", "no such operation")
        arn, keys, key = route
        operation = {
            ("GET", False, False): "DescribeKeyValueStore",
            ("GET", True, False): "ListKeys",
            ("POST", True, False): "UpdateKeys",
            ("GET", True, True): "GetKey",
            ("PUT", True, True): "PutKey",
            ("DELETE", True, True): "DeleteKey",
        }.get((method.upper(), keys, key is not None))
        if operation is None:
            return _error("UnknownOperationException", f"no operation {method} {raw_path[:60]}")
        with self._lock:
            self.calls[operation] += 1
        try:
            store = self.store(arn)
            return self._operation(operation, store, key, query, lower, body)
        except KeyValueStoreError as exc:
            if exc.code == "ConflictException":
                with self._lock:
                    self.conflicts += 1
            return _error(exc.code, exc.message)

    def _operation(
        self,
        operation: str,
        store: EmulatedKeyValueStore,
        key: str | None,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Answer:
        if operation == "DescribeKeyValueStore":
            latest = store.latest
            described = store.describe()
            return _ok(
                {
                    "KvsARN": store.arn,
                    "ItemCount": described["ItemCount"],
                    "TotalSizeInBytes": described["TotalSizeInBytes"],
                    # REST-JSON timestamps: epoch seconds (the model's default format).
                    "Created": store.created,
                    "LastModified": latest.written_at,
                    "Status": described["Status"],
                },
                described["ETag"],
            )
        if operation == "GetKey":
            assert key is not None
            return _ok(store.get_key(key))
        if operation == "ListKeys":
            return _ok(self._list(store, query))
        if_match = headers.get("if-match", "")
        if not if_match:
            raise ValidationError("If-Match is required")
        self._maybe_foreign_write(store)
        if operation == "PutKey":
            assert key is not None
            value = _json_body(body).get("Value")
            written = store.put_key(key, value, if_match)  # type: ignore[arg-type]
        elif operation == "DeleteKey":
            assert key is not None
            written = store.delete_key(key, if_match)
        else:
            data = _json_body(body)
            puts, deletes = data.get("Puts") or [], data.get("Deletes") or []
            if not isinstance(puts, list) or not isinstance(deletes, list):
                raise ValidationError("Puts and Deletes are lists")
            if not all(isinstance(item, dict) for item in [*puts, *deletes]):
                raise ValidationError("each put and delete is an object")
            written = store.update_keys(if_match, puts=puts, deletes=deletes)
        return _ok(
            {"ItemCount": written["ItemCount"], "TotalSizeInBytes": written["TotalSizeInBytes"]},
            written["ETag"],
        )

    @staticmethod
    def _list(store: EmulatedKeyValueStore, query: str) -> dict[str, Any]:
        params = parse_qs(query)
        try:
            size = int(params.get("MaxResults", [LIST_DEFAULT])[0])
            start = int(params.get("NextToken", ["0"])[0])
        except ValueError:
            raise ValidationError("MaxResults and NextToken are numbers here") from None
        if not 1 <= size <= LIST_MAX or start < 0:
            raise ValidationError(f"MaxResults is 1-{LIST_MAX}")
        items = store.list_keys()["Items"]
        page: dict[str, Any] = {"Items": items[start : start + size]}
        if start + size < len(items):
            page["NextToken"] = str(start + size)
        return page

    def _maybe_foreign_write(self, store: EmulatedKeyValueStore) -> None:
        with self._lock:
            if self.foreign_writes_before_next <= 0:
                return
            self.foreign_writes_before_next -= 1
            self.foreign_writes += 1
            number = self.foreign_writes
        store.put_key(FOREIGN_KEY, str(number), store.latest.etag)

    # -- serving it -----------------------------------------------------------------------------
    def dispatcher(self, app: Any) -> Any:
        """A WSGI app that serves the data plane and hands every other request to *app*."""
        services = self

        def dispatch(environ: dict[str, Any], start_response: Any) -> Any:
            path = str(environ.get("PATH_INFO", ""))
            if not path.startswith(KVS_PATH):
                return app(environ, start_response)
            # The raw request target: PATH_INFO is already percent-decoded, and an ARN holds a
            # "/" that botocore sent as %2F.
            raw = str(environ.get("REQUEST_URI") or environ.get("RAW_URI") or path)
            raw_path, _, query = raw.partition("?")
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            headers = {
                key[5:].replace("_", "-"): str(value)
                for key, value in environ.items()
                if key.startswith("HTTP_")
            }
            if environ.get("CONTENT_TYPE"):
                headers["Content-Type"] = str(environ["CONTENT_TYPE"])
            status, answer, payload = services.handle(
                str(environ.get("REQUEST_METHOD", "GET")), raw_path, query, headers, body
            )
            start_response(
                f"{status} {REASONS.get(status, 'Error')}",
                [*answer.items(), ("Content-Length", str(len(payload)))],
            )
            return [payload]

        return dispatch

    # -- functions ------------------------------------------------------------------------------
    def publish(self, name: str, code: bytes, config: Mapping[str, Any]) -> None:
        with self._lock:
            self._live[name] = (bytes(code), dict(config))

    def live(self, name: str) -> tuple[bytes, dict[str, Any]] | None:
        with self._lock:
            return self._live.get(name)

    def test_function(self, code: bytes, config: Mapping[str, Any], event: Any) -> dict[str, Any]:
        """``TestFunction``'s ``TestResult`` (less the summary): the function run once in the
        worker, reading the latest version of its associated store."""
        with self._lock:
            self.function_tests += 1
        stores = _associated_stores(config)
        data: Mapping[str, str] | None = None
        view: object = None
        if stores:
            store = self.store(stores[0])
            latest = store.latest
            data, view = latest.data, ("test", store.serial, latest.number)
        worker = self.worker_for(code.decode("utf-8"))
        try:
            answer = worker.invoke(event, edge=TEST_EDGE, now=self.clock(), store=(view, data))
        except EdgeWorkerError as exc:
            return {"FunctionErrorMessage": str(exc)[:500], "ComputeUtilization": "0"}
        result = answer["result"]
        kind = "request" if isinstance(result, dict) and "method" in result else "response"
        return {
            "FunctionOutput": json.dumps({kind: result}, separators=(",", ":")),
            "FunctionExecutionLogs": list(answer.get("logs") or []),
            # CloudFront's figure is a share of an unpublished maximum; here the worker's run
            # time as a share of 1 ms stands in for it (docs/edge-signed.md).
            "ComputeUtilization": str(min(100, round(float(answer.get("micros", 0)) / 10))),
        }

    # -- installing -----------------------------------------------------------------------------
    def install(self) -> None:
        """Route the data plane (in process and over loopback) and the function APIs to this
        object. :meth:`uninstall` puts everything back."""
        from moto.core.botocore_stubber import BotocoreStubber
        from urllib3.util import connection

        from originlock.sandbox.harness import check_moto

        check_moto()
        if self._originals:
            raise RuntimeError("edge services are already installed")
        services = self
        self._originals = {
            "process_request": BotocoreStubber.process_request,
            "create_connection": connection.create_connection,
        }
        process_request = self._originals["process_request"]
        create_connection = self._originals["create_connection"]

        def routed(stubber: Any, request: Any) -> Any:
            if _AWS_KVS_URL.match(str(request.url)):
                return services._handle_in_process(request)
            return process_request(stubber, request)

        def resolve(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
            host, port = address
            if isinstance(host, str) and _ACCOUNT_LOOPBACK.fullmatch(host):
                address = ("127.0.0.1", port)
            return create_connection(address, *args, **kwargs)

        setattr(BotocoreStubber, "process_request", routed)
        setattr(connection, "create_connection", resolve)
        self._originals["function_apis"] = _install_function_apis(self)

    def uninstall(self) -> None:
        if not self._originals:
            return
        from moto.core.botocore_stubber import BotocoreStubber
        from urllib3.util import connection

        setattr(BotocoreStubber, "process_request", self._originals["process_request"])
        setattr(connection, "create_connection", self._originals["create_connection"])
        self._originals["function_apis"]()
        self._originals = {}
        self.stop_workers()

    @contextmanager
    def installed(self) -> Iterator[EdgeServices]:
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    def _handle_in_process(self, request: Any) -> Answer:
        parts = urlsplit(str(request.url))
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode()
        headers = {
            name: value.decode() if isinstance(value, bytes) else str(value)
            for name, value in request.headers.items()
        }
        return self.handle(request.method, parts.path, parts.query, headers, body or b"")


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise ValidationError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("the request body is not a JSON object")
    return data


def _associated_stores(config: Mapping[str, Any]) -> list[str]:
    """The KeyValueStore ARNs of a function configuration (as moto keeps it: dicts in process,
    XML-shaped wrappers through the server)."""
    associations = config.get("KeyValueStoreAssociations") or {}
    items: Any = associations.get("Items") or []
    if isinstance(items, dict):
        items = items.get("KeyValueStoreAssociation") or []
    if isinstance(items, dict):
        items = [items]
    return [str(item["KeyValueStoreARN"]) for item in items if item.get("KeyValueStoreARN")]


# --------------------------------------------------------------------------- CloudFront Functions
def _install_function_apis(services: EdgeServices) -> Callable[[], None]:
    """``PublishFunction``, ``DescribeFunction(Stage)`` and ``TestFunction`` for moto, answered
    by *services*; returns what puts moto's own back (the two routes stay: without their
    methods moto answers them as it did before)."""
    from moto.cloudfront import urls
    from moto.cloudfront.exceptions import CloudFrontException, NoSuchFunctionExists
    from moto.cloudfront.responses import CloudFrontResponse
    from moto.core.responses import ActionResult

    class PreconditionFailed(CloudFrontException):
        def __init__(self) -> None:
            super().__init__(
                "PreconditionFailed",
                "The precondition given in one or more of the request-header fields evaluated "
                "to false.",
            )

    def installed() -> EdgeServices:
        return services

    describe = CloudFrontResponse.describe_function

    def summary(response: Any, name: str, stage: str) -> dict[str, Any]:
        function = response.backend.describe_function(name=name)
        found = dict(function.function_summary)
        if stage == "LIVE":
            live = installed().live(name)
            if live is None:
                raise NoSuchFunctionExists(name)
            found["FunctionConfig"] = live[1]
            found["Status"] = "DEPLOYED"
            found["FunctionMetadata"] = {**found["FunctionMetadata"], "Stage": "LIVE"}
        return found

    def describe_function(response: Any) -> Any:
        stage = response._get_param("Stage") or "DEVELOPMENT"
        if stage != "LIVE":
            return describe(response)
        name = response._get_param("Name")
        function = response.backend.describe_function(name=name)
        return ActionResult(
            {"FunctionSummary": summary(response, name, "LIVE"), "ETag": function.etag}
        )

    def publish_function(response: Any) -> Any:
        name = response._get_param("Name")
        function = response.backend.describe_function(name=name)
        if response._get_param("IfMatch") != function.etag:
            raise PreconditionFailed()
        installed().publish(name, function.code, function.config)
        return ActionResult({"FunctionSummary": summary(response, name, "LIVE")})

    def test_function(response: Any) -> Any:
        name = response._get_param("Name")
        stage = response._get_param("Stage") or "DEVELOPMENT"
        function = response.backend.describe_function(name=name)
        if response._get_param("IfMatch") != function.etag:
            raise PreconditionFailed()
        services = installed()
        if stage == "LIVE":
            live = services.live(name)
            if live is None:
                raise NoSuchFunctionExists(name)
            code, config = live
        else:
            code, config = function.code, function.config
        result = services.test_function(code, config, _event(response._get_param("EventObject")))
        return ActionResult(
            {"TestResult": {"FunctionSummary": summary(response, name, stage), **result}}
        )

    setattr(CloudFrontResponse, "describe_function", describe_function)
    setattr(CloudFrontResponse, "publish_function", publish_function)
    setattr(CloudFrontResponse, "test_function", test_function)
    for verb in ("publish", "test"):
        urls.url_paths[f"{{0}}/2020-05-31/function/(?P<function_name>[^/]+)/{verb}$"] = (
            CloudFrontResponse.dispatch
        )

    def restore() -> None:
        setattr(CloudFrontResponse, "describe_function", describe)
        delattr(CloudFrontResponse, "publish_function")
        delattr(CloudFrontResponse, "test_function")

    return restore


def _event(raw: Any) -> Any:
    """``EventObject`` as moto parses it (bytes, or the base64 text of the XML)."""
    if isinstance(raw, str):
        try:
            raw = base64.b64decode(raw, validate=True)
        except ValueError:
            raw = raw.encode()
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        from moto.cloudfront.exceptions import CloudFrontException

        raise CloudFrontException("InvalidArgument", "EventObject is not JSON") from None
