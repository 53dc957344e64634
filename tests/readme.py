"""The README's code, as the tests run it: what a user copies is what is tested."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
CDK_APP_SECTION = "Use it in your own CDK app"


def python_block(section: str, readme: Path = README) -> str:
    """The first ```python block of the README's ``## <section>``."""
    text = readme.read_text()
    heading = f"\n## {section}\n"
    start = text.index(heading) + len(heading)
    end = text.find("\n## ", start)
    body = text[start : end if end != -1 else len(text)]
    fence = "```python\n"
    if fence not in body:
        raise AssertionError(f"README section {section!r} has no python block")
    code = body[body.index(fence) + len(fence) :]
    return code[: code.index("\n```\n") + 1]


def cdk_app_code() -> str:
    """The complete CDK app of "Use it in your own CDK app"."""
    return python_block(CDK_APP_SECTION)
