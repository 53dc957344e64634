"""The wheel, as `pip install originlock` gets it, installed outside the checkout.

One build, two fresh virtual environments in a temporary directory (never this checkout's
.venv, never its sys.path):

* ``cli``: ``pip install originlock`` (boto3, typer, rich): ``--help``, ``--version``, and
  ``status`` against a sandbox (the token document code must come from the wheel);
* ``full``: ``pip install 'originlock[cdk,sandbox]'``: it starts that sandbox, and synthesizes
  the README's CDK app (its own HttpApi and distribution, originlock attached).

Offline: the dependencies come from uv's cache, pinned by uv.lock (``uv sync --frozen``, the
project itself left out), and the wheel is installed on top without resolving anything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.constants import ROOT
from originlock.target import SANDBOX_FILE_ENV
from tests.e2e.test_cli_demo_sandbox import first_json_object
from tests.readme import cdk_app_code

pytestmark = [pytest.mark.e2e, pytest.mark.wheel, pytest.mark.xdist_group("wheel")]

UV = ROOT / ".tools" / "bin" / "uv"
VERSION = "0.1.0"
STARTUP_TIMEOUT = 120.0
# What a process of the fresh environments must not inherit from this one.
DROPPED = (
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "UV_PROJECT_ENVIRONMENT",
    "AWS_ENDPOINT_URL",
    "MOTO_PORT",
    "ORIGINLOCK_DEBUG",
    "CDK_OUTDIR",
    SANDBOX_FILE_ENV,
)


@dataclass
class Installed:
    wheel: Path
    cli: Path  # the CLI-only environment's bin/
    full: Path  # the environment with both extras
    home: Path  # a directory outside the checkout: every command runs there
    env: dict[str, str]

    def run(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=kwargs.pop("cwd", self.home),
            env={**self.env, **kwargs.pop("env", {})},
            capture_output=True,
            text=True,
            timeout=kwargs.pop("timeout", 300),
            check=False,
            **kwargs,
        )


def uv(*args: str, env: dict[str, str]) -> None:
    """Run uv offline (its cache, filled by `make setup`)."""
    done = subprocess.run(
        [str(UV), *args, "--offline", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"uv {' '.join(args)}: {done.stderr}"


def environment(path: Path, extras: list[str], wheel: Path, env: dict[str, str]) -> Path:
    """A virtual environment at *path* with the locked dependencies of *extras*, then the wheel."""
    options = [option for extra in extras for option in ("--extra", extra)]
    uv(
        "sync",
        "--frozen",
        "--no-dev",
        "--no-install-project",
        "--python",
        sys.executable,
        *options,
        env={**env, "UV_PROJECT_ENVIRONMENT": str(path)},
    )
    python = path / "bin" / "python"
    uv("pip", "install", "--no-deps", "--python", str(python), str(wheel), env=env)
    # The wheel's own requirements are met by what the lock installed
    uv("pip", "check", "--python", str(python), env=env)
    return path / "bin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    if not UV.exists():
        pytest.fail("uv is missing: run `make setup`")
    base = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    env["JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"] = "1"
    uv("build", "--wheel", "--out-dir", str(base / "dist"), env=env)
    [wheel] = (base / "dist").glob("originlock-*.whl")
    home = base / "home"
    home.mkdir()
    yield Installed(
        wheel=wheel,
        cli=environment(base / "cli", [], wheel, env),
        full=environment(base / "full", ["cdk", "sandbox"], wheel, env),
        home=home,
        env=env,
    )


def test_wheel_carries_the_lambda_code_and_the_workflow_from_their_one_place(
    installed: Installed,
) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        # Byte for byte the repository's functions/ and statemachine/, nothing of a checkout
        for path in (ROOT / "functions").rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                name = f"originlock/_bundle/functions/{path.relative_to(ROOT / 'functions')}"
                assert wheel.read(name) == path.read_bytes(), name
        asl = "originlock/_bundle/statemachine/rotation.asl.json"
        assert wheel.read(asl) == (ROOT / "statemachine" / "rotation.asl.json").read_bytes()
        # the awscrt layer's hashed lock (edge-signed mode builds its layer from it), and the
        # marker that makes the typed props visible to a user's type checker
        lock = "originlock/_bundle/tools/awscrt-layer-requirements.txt"
        assert wheel.read(lock) == (ROOT / "tools" / "awscrt-layer-requirements.txt").read_bytes()
        assert "originlock/py.typed" in names
    assert not [n for n in names if n.startswith(("infra/", "tests/", "functions/", "bench/"))]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_cli_alone_installs_small_and_answers_help_and_version(installed: Installed) -> None:
    cli = installed.cli
    help_text = installed.run([str(cli / "originlock"), "--help"])
    assert help_text.returncode == 0, help_text.stderr
    assert "rotate" in help_text.stdout and "status" in help_text.stdout
    version = installed.run([str(cli / "originlock"), "--version"])
    assert (version.returncode, version.stdout) == (0, f"originlock {VERSION}\n")
    # Neither the sandbox's nor the constructs' dependencies come with it
    for module in ("moto", "aws_cdk", "aws_lambda_powertools", "flask", "cfnlint"):
        absent = installed.run([str(cli / "python"), "-c", f"import {module}"])
        assert absent.returncode != 0, module
    # and what needs them says what to install
    constructs = installed.run([str(cli / "python"), "-c", "import originlock.cdk"])
    assert "pip install 'originlock[cdk]'" in constructs.stderr
    # and the command that needs them says what to install, in one line
    sandbox = installed.run([str(cli / "originlock"), "sandbox"])
    assert sandbox.returncode == 1
    [line] = sandbox.stderr.strip().splitlines()
    assert line.startswith("error: ") and "pip install 'originlock[sandbox]'" in line


def test_code_comes_from_the_installed_package_not_the_checkout(installed: Installed) -> None:
    where = installed.run(
        [
            str(installed.cli / "python"),
            "-c",
            "import originlock, originlock.document as d, originlock.bundle as b, sys; "
            "print(originlock.__file__); print(d.TokenDocument.__module__); "
            "print(b.functions_dir()); print(b.asl_file()); "
            "print(any('functions' in p for p in sys.path))",
        ]
    )
    assert where.returncode == 0, where.stderr
    package, module, functions, asl, on_path = where.stdout.splitlines()
    prefix = str(installed.cli.parent)
    assert package.startswith(prefix) and functions.startswith(prefix) and asl.startswith(prefix)
    assert not package.startswith(str(ROOT))
    assert module == "originlock._tokens.document"
    assert on_path == "False"  # nothing added to sys.path


def test_cli_alone_reads_the_status_of_a_sandbox(installed: Installed, tmp_path: Path) -> None:
    # Given a sandbox started from the environment with the sandbox extra
    state = {SANDBOX_FILE_ENV: str(tmp_path / "sandbox.json")}
    child = subprocess.Popen(
        [str(installed.full / "originlock"), "sandbox", "--json", "--edges", "1"],
        cwd=installed.home,
        env={**installed.env, **state},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        info = first_json_object(child.stdout, STARTUP_TIMEOUT)

        # When the CLI-only install asks it for its status
        status = installed.run(
            [str(installed.cli / "originlock"), "--sandbox", "status", "--json"], env=state
        )

        # Then it reads the token document (the wheel's own code) and the distribution
        assert status.returncode == 0, status.stderr
        data = json.loads(status.stdout)
        assert data["token"]["fingerprints"]["current"]
        assert data["distribution"]["sends"][0]["slot"] == "current"
        assert info["endpoint_url"].startswith("http://127.0.0.1:")
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_readme_app_synthesizes_with_the_installed_constructs(installed: Installed) -> None:
    # Given the README's app, as a user saves it in a project of their own
    project = installed.home / "my-service"
    project.mkdir()
    (project / "app.py").write_text(cdk_app_code())

    # When it runs as `cdk synth` runs it
    done = installed.run(
        [str(installed.full / "python"), "app.py"],
        cwd=project,
        env={"CDK_OUTDIR": str(project / "cdk.out")},
    )

    # Then it synthesizes one API and one distribution, with originlock attached
    assert done.returncode == 0, done.stderr[-3000:]
    template = json.loads((project / "cdk.out" / "MyService.template.json").read_text())
    types = [resource["Type"] for resource in template["Resources"].values()]
    assert types.count("AWS::ApiGatewayV2::Api") == 1
    assert types.count("AWS::CloudFront::Distribution") == 1
    [guard] = [
        k
        for k, r in template["Resources"].items()
        if r["Type"] == "Custom::OriginlockOriginHeaderValue"
    ]
    [distribution] = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::CloudFront::Distribution"
    ]
    [origin] = distribution["Properties"]["DistributionConfig"]["Origins"]
    assert origin["OriginCustomHeaders"] == [
        {"HeaderName": "x-cf-api-gateway-token", "HeaderValue": {"Fn::GetAtt": [guard, "Value"]}}
    ]
    routes = [r for r in template["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Route"]
    assert routes and all(r["Properties"]["AuthorizationType"] == "CUSTOM" for r in routes)
    # The functions' asset is the wheel's functions/, the same files as the repository's
    staged = [p for p in (project / "cdk.out").glob("asset.*") if (p / "tokens").is_dir()]
    assert staged
    assert (staged[0] / "tokens" / "document.py").read_bytes() == (
        ROOT / "functions" / "tokens" / "document.py"
    ).read_bytes()
