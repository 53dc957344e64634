"""Where the files originlock ships beside its Python code are: the Lambda code (``functions/``)
and the rotation workflow (``statemachine/rotation.asl.json``).

Each has one place in the repository. The wheel carries both inside the package, under
``originlock/_bundle/`` (``[tool.hatch.build.targets.wheel.force-include]`` in pyproject.toml),
found here with :mod:`importlib.resources`; a checkout (``uv sync`` installs originlock in
editable mode) has no ``_bundle``, and the files are read where they are committed.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

BUNDLE = "_bundle"
# The checkout's root: originlock/ sits beside functions/ and statemachine/.
CHECKOUT = Path(__file__).resolve().parent.parent


class BundleError(RuntimeError):
    """The Lambda code or the workflow is neither in the installed package nor in a checkout."""


def _bundled(*parts: str) -> Path | None:
    """A path inside the installed package's bundle, ``None`` when it is not there."""
    resource = files("originlock").joinpath(BUNDLE, *parts)
    # An installed wheel is a directory tree: its resources are plain paths. A zipped
    # package would need extracting (the Lambda asset is a directory): not supported.
    if isinstance(resource, Path) and resource.exists():
        return resource
    return None


def _find(*parts: str) -> Path:
    found = _bundled(*parts)
    if found is not None:
        return found
    checkout = CHECKOUT.joinpath(*parts)
    if checkout.exists():
        return checkout
    raise BundleError(
        f"{'/'.join(parts)} is neither in the installed originlock package nor in a checkout: "
        "reinstall originlock from its wheel"
    )


def functions_dir() -> Path:
    """The Lambda code: the folder every originlock function's asset is made of."""
    return _find("functions")


def asl_file() -> Path:
    """The rotation workflow's definition (Amazon States Language, with placeholders)."""
    return _find("statemachine", "rotation.asl.json")


# The edge-signed mode's awscrt layer (SigV4A for the KeyValueStore API): built by `make setup`
# in a checkout from tools/awscrt-layer-requirements.txt; elsewhere, where
# ORIGINLOCK_AWSCRT_LAYER says (docs/edge-signed.md, "The awscrt layer").
AWSCRT_LAYER_ENV = "ORIGINLOCK_AWSCRT_LAYER"
AWSCRT_LAYER_CHECKOUT = CHECKOUT / ".tools" / "layers" / "awscrt"
AWSCRT_INSTALL = (
    "pip install --target <dir>/python --platform manylinux2014_aarch64 "
    "--python-version 3.13 --only-binary=:all: --require-hashes "
    "-r awscrt-layer-requirements.txt"
)


def awscrt_layer_dir() -> Path:
    """The folder of the awscrt layer (it holds ``python/awscrt``)."""
    import os

    given = os.environ.get(AWSCRT_LAYER_ENV, "").strip()
    folder = Path(given) if given else AWSCRT_LAYER_CHECKOUT
    if (folder / "python" / "awscrt").is_dir():
        return folder
    if given:
        where = f"{AWSCRT_LAYER_ENV}={given}"
    elif _bundled("functions") is not None:  # an installed wheel: no checkout to look in
        where = f"{AWSCRT_LAYER_ENV} (not set)"
    else:
        where = str(AWSCRT_LAYER_CHECKOUT)
    raise BundleError(
        f"edge-signed mode needs the awscrt layer, not found at {where}: in a checkout run "
        f"`make setup`; otherwise `{AWSCRT_INSTALL}` (the lock is in the package: "
        f"{_find('tools', 'awscrt-layer-requirements.txt')}) and set {AWSCRT_LAYER_ENV}=<dir>"
    )
