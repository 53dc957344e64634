"""Start ministack as ``ministack`` would, with four of its defects worked around.

Run by :mod:`rehearsal.ministack` with ministack's own interpreter (``.tools/ministack``), never
with the project's: ministack pins an older botocore. Each patch below is one entry of
docs/rehearsal.md ("ministack defects worked around"), with a reproduction to send upstream;
nothing here changes what ministack checks (IAM is evaluated before any handler runs).

1. ``USE_SSL=1`` also binds port 443 whenever it can (this machine's root can): on a machine
   shared by several engineers that takes a port nobody asked for. Only the chosen port is bound.
2. ``ResetAuthorizersCache`` (``DELETE /v2/apis/{id}/stages/{stage}/cache/authorizers``) is
   routed as ``DeleteStage``: the stage disappears. Here it empties that stage's authorizer
   result cache and answers 204, as API Gateway does.
3. CloudFront's origin fetch dials the origin ``DomainName`` that ministack itself gave the HTTP
   API (``<id>.execute-api.localhost:<port>``) as a host name on port 443: the port stays in the
   name and ``*.localhost`` does not resolve here, so every request through the distribution
   answers 502. Here such an origin is dialled at ministack's own address and port.
4. Edge-signed mode: ``cloudfront-keyvaluestore`` calls are authorized against ``*`` instead of
   the store, so a policy scoped to the store (as the product's are) is denied. Here they are
   evaluated on the store's ARN, taken from the request's path.
5. Not a defect: the certificate also names ``<account>.127.0.0.1``, the host botocore sends the
   KeyValueStore API to with ministack's endpoint (lambda_site/sitecustomize.py resolves it).

And one aid that changes no decision: every authorization denial is appended as a JSON line to
``$REHEARSAL_DENIALS`` (who, which action, on what), so the least-privilege proof sees a denied
call even when the function that made it carries on (the drift guard's ``DescribeStacks``).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import urllib.parse
from typing import Any

from ministack import app
from ministack.core import iam_actions, iam_evaluator, tls
from ministack.services import apigateway, cloudfront

_RESET_CACHE = re.compile(r"^/v2/apis/([^/]+)/stages/([^/]+)/cache/authorizers/?$")
_OWN_API_ORIGIN = re.compile(r"^[a-f0-9]{8}\.execute-api\.localhost(?::\d+)?$")
_KVS_PATH = re.compile(r"^/key-value-stores/(arn:[^/]+:key-value-store/[A-Za-z0-9_-]+)(?:/|$)")


def _only_the_chosen_port() -> None:
    bindable = app._port_is_bindable
    app._port_is_bindable = lambda host, port: port != 443 and bindable(host, port)


def _reset_authorizers_cache() -> None:
    handle = apigateway.handle_request

    async def handle_request(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        match = _RESET_CACHE.match(path)
        if method != "DELETE" or match is None:
            return await handle(method, path, *args, **kwargs)
        api_id, stage = (apigateway.urllib.parse.unquote(part) for part in match.groups())
        if (missing := apigateway._require_api(api_id)) is not None:
            return missing
        if stage not in apigateway._stages.get(api_id, {}):
            return apigateway._apigw_error(
                "NotFoundException", f"Invalid stage identifier specified: {stage}", 404
            )
        # Keys: (account, region, api id, authorizer id, stage, identity values).
        for key in [k for k in apigateway._authorizer_cache if k[2] == api_id and k[4] == stage]:
            apigateway._authorizer_cache.pop(key, None)
        return 204, {}, b""

    apigateway.handle_request = handle_request


def _dial_own_api_origins(port: int) -> None:
    target = cloudfront._origin_connect_target

    def connect_target(origin: dict[str, Any], viewer_is_https: bool) -> tuple[str, int, bool]:
        host, dial_port, use_https = target(origin, viewer_is_https)
        if _OWN_API_ORIGIN.match(str(host)):
            return "127.0.0.1", port, True
        return host, dial_port, use_https

    cloudfront._origin_connect_target = connect_target


def _kvs_calls_name_their_store() -> None:
    extract = iam_actions.extract_resource_arn

    def resource_arn(service: str, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        if service == "cloudfront-keyvaluestore":
            found = _KVS_PATH.match(urllib.parse.unquote(path))
            if found is not None:
                return found.group(1)
        return extract(service, method, path, *args, **kwargs)

    iam_actions.extract_resource_arn = resource_arn


def _certificate_names_the_kvs_host(account: str) -> None:
    names = tls._generated_cert_names
    tls._generated_cert_names = lambda: [*names(), f"{account}.127.0.0.1"]


def _record_denials(path: str) -> None:
    enforce = iam_evaluator.enforce
    lock = threading.Lock()

    def recorded(
        access_key_id: str, iam_action: str, service: str, *args: Any, **kwargs: Any
    ) -> Any:
        result = enforce(access_key_id, iam_action, service, *args, **kwargs)
        if isinstance(result, iam_evaluator.EvalResult):
            resource = kwargs.get("resource_arn", args[1] if len(args) > 1 else "*")
            line = {"principal": result.principal_arn, "action": iam_action, "resource": resource}
            with lock, open(path, "a") as out:
                out.write(json.dumps(line) + "\n")
        return result

    iam_evaluator.enforce = recorded


def main() -> None:
    if os.environ.get("REHEARSAL_DENIALS"):
        _record_denials(os.environ["REHEARSAL_DENIALS"])
    _only_the_chosen_port()
    _certificate_names_the_kvs_host(os.environ.get("REHEARSAL_ACCOUNT", "000000000000"))
    _reset_authorizers_cache()
    _kvs_calls_name_their_store()
    _dial_own_api_origins(int(app._resolve_port()))
    sys.argv = ["ministack"]
    app.main()


if __name__ == "__main__":
    main()
