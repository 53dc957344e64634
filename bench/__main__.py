"""Run every benchmark; the last line printed is one JSON object with all figures."""

from __future__ import annotations

import sys

from bench import authorizer


def main(argv: list[str]) -> int:
    return authorizer.main(argv)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
