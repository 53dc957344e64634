"""``functions/tokens`` (the token document code the functions share), importable by the CLI as
``originlock._tokens`` from wherever :func:`originlock.bundle.functions_dir` finds it.

Its submodules are read from that folder through this package's ``__path__``: one source, no
copy, and nothing added to ``sys.path`` (the functions' own top-level names, ``tokens``,
``rotate``..., stay out of the CLI's namespace).
"""

from originlock.bundle import functions_dir

__path__ = [str(functions_dir() / "tokens")]
