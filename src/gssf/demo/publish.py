"""Publishing a demo's ``summary.json`` into the docs (``gssf demo --publish [DOCS]``).

Writes ``DOCS/results/summary.json`` and regenerates the part of ``DOCS/results.md``
between :data:`BEGIN` and :data:`END` from it (:func:`gssf.stats.render_results_markdown`),
leaving the hand-written rest of the page as it is. The page and its markers are checked
before anything is written (and, by ``run_demo``, before anything is trained).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

from gssf.errors import SummaryError
from gssf.stats import read_summary, render_results_markdown, write_summary
from gssf.utils.io import PathLike, atomic_write_text

__all__ = ["BEGIN", "END", "check_results_page", "replace_generated_section", "generated_section",
           "publish_summary"]

BEGIN = "<!-- summary:begin -->"
END = "<!-- summary:end -->"


def _page(docs: Path) -> Path:
    return Path(docs) / "results.md"


def _split(text: str, where: str) -> Tuple[str, str]:
    """``(before, after)`` the generated section; each marker must occur once, in order, on its own line."""
    lines = text.splitlines(keepends=True)
    found = {m: [i for i, line in enumerate(lines) if line.strip() == m] for m in (BEGIN, END)}
    for marker, at in found.items():
        if len(at) != 1:
            raise SummaryError(
                f"{where} must hold the line {marker} exactly once (found {len(at)}): the generated results go "
                f"between {BEGIN} and {END}"
            )
    b, e = found[BEGIN][0], found[END][0]
    if e < b:
        raise SummaryError(f"{where}: {END} (line {e + 1}) comes before {BEGIN} (line {b + 1})")
    return "".join(lines[: b + 1]), "".join(lines[e:])


def check_results_page(docs: PathLike) -> Path:
    """The ``results.md`` of ``docs``, checked to exist and to hold both markers once, in order."""
    page = _page(Path(docs))
    try:
        text = page.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SummaryError(f"{page} does not exist: --publish takes the docs folder that holds results.md") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SummaryError(f"cannot read {page}: {exc}") from None
    _split(text, str(page))
    return page


def generated_section(summary: Mapping[str, Any]) -> str:
    """The Markdown of a summary, headings one level down (the page has its own title)."""
    md = render_results_markdown(summary, title="Every benchmark, from `docs/results/summary.json`")
    return "".join("#" + line if line.startswith("#") else line for line in md.splitlines(keepends=True))


def replace_generated_section(text: str, section: str, where: str = "results.md") -> str:
    """``text`` with everything between the two marker lines replaced by ``section``."""
    before, after = _split(text, where)
    body = section if section.endswith("\n") else section + "\n"
    return before + "\n" + body + "\n" + after


def publish_summary(summary_file: PathLike, docs: PathLike) -> Dict[str, Path]:
    """Copy a validated ``summary.json`` to ``docs/results/summary.json`` and regenerate ``docs/results.md``'s section.

    Returns ``{"summary": path, "page": path}``.

    Raises:
        SummaryError: an invalid summary, or a ``results.md`` missing or without its markers
            (then nothing is written).
    """
    summary = read_summary(summary_file)
    page = check_results_page(docs)
    text = replace_generated_section(page.read_text(encoding="utf-8"), generated_section(summary), str(page))
    target = write_summary(summary["rows"], Path(docs) / "results" / "summary.json", command=summary["command"],
                           generated=summary["generated"], git_commit=summary["git_commit"])
    return {"summary": target, "page": atomic_write_text(page, text)}
