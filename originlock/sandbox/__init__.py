"""The offline sandbox: originlock on loopback, in moto server mode (see :mod:`.sandbox`).

``from originlock.sandbox import Sandbox`` loads moto only when asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from originlock.sandbox.sandbox import Sandbox, SandboxTimings

__all__ = ["Sandbox", "SandboxTimings"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from originlock.sandbox import sandbox

        return getattr(sandbox, name)
    raise AttributeError(name)
