"""Publishing a demo's ``summary.json`` into the docs (``gssf demo --publish [DOCS]``).

Writes ``DOCS/results/summary.json`` and regenerates the part of ``DOCS/results.md``
between :data:`BEGIN` and :data:`END` from it (:func:`gssf.stats.render_results_markdown`),
leaving the hand-written rest of the page as it is. The page and its markers are checked
before anything is written (and, by ``run_demo``, before anything is trained).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from gssf.demo.tasks import DEMO_TASKS
from gssf.errors import SummaryError
from gssf.stats import merge_summaries, read_summary, render_results_markdown, write_summary
from gssf.utils.io import PathLike, atomic_write_text

__all__ = ["BEGIN", "END", "PAYS_BEGIN", "PAYS_END", "check_results_page", "replace_generated_section",
           "generated_section", "pays_table", "publish_summary"]

BEGIN = "<!-- summary:begin -->"
END = "<!-- summary:end -->"
#: The "where GSSF pays" table (optional in results.md; in the README beside DOCS when it has them).
PAYS_BEGIN = "<!-- pays:begin -->"
PAYS_END = "<!-- pays:end -->"
#: Settings in the order the table shows them.
SETTINGS = ("frozen", "pooled", "attention", "distillation", "head")


def _page(docs: Path) -> Path:
    return Path(docs) / "results.md"


def _split(text: str, where: str, begin: str = BEGIN, end: str = END) -> Tuple[str, str]:
    """``(before, after)`` the generated section; each marker must occur once, in order, on its own line."""
    lines = text.splitlines(keepends=True)
    found = {m: [i for i, line in enumerate(lines) if line.strip() == m] for m in (begin, end)}
    for marker, at in found.items():
        if len(at) != 1:
            raise SummaryError(
                f"{where} must hold the line {marker} exactly once (found {len(at)}): the generated results go "
                f"between {begin} and {end}"
            )
    b, e = found[begin][0], found[end][0]
    if e < b:
        raise SummaryError(f"{where}: {end} (line {e + 1}) comes before {begin} (line {b + 1})")
    return "".join(lines[: b + 1]), "".join(lines[e:])


def _has_markers(text: str, begin: str, end: str) -> bool:
    """Whether either marker is present (then both must be, in order: :func:`_split` says so)."""
    return any(line.strip() in (begin, end) for line in text.splitlines())


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


def _cost_per_pair(similarity: str, task: str) -> Optional[float]:
    """Multiply-adds per scored pair relative to cosine at the task's embedding width (None if unknown)."""
    import gssf
    from gssf.train.config import load_config

    if task not in DEMO_TASKS:
        return None
    dim = load_config(DEMO_TASKS[task].preset, overrides=list(DEMO_TASKS[task].overrides)).model.embed_dim
    cos = gssf.create_similarity("cosine").flops_per_pair(dim)
    return gssf.create_similarity(similarity, dim=dim).flops_per_pair(dim) / cos


def _ci(r: Mapping[str, Any]) -> str:
    mark = " †" if r["delta_ci_low"] > 0 or r["delta_ci_high"] < 0 else ""
    return f"{r['delta_vs_cosine']:+.1f} [{r['delta_ci_low']:+.1f}, {r['delta_ci_high']:+.1f}]{mark}"


def pays_table(summary: Mapping[str, Any]) -> str:
    """The "where GSSF pays" table of a summary: one row per (setting, benchmark), main metric.

    For each benchmark: ``gssf``'s paired difference to cosine; the member a validation-based
    choice picks (highest mean validation metric over seeds, cosine included; ``—`` where
    the rows predate the ``val_mean`` field) and its test difference; the learned member
    with the largest test difference (picked on the test split among the compared members:
    a reading aid, not a selection), its parameters and cost per pair, and what the
    intervals say.
    """

    tasks: Dict[Tuple[str, str], List[Mapping[str, Any]]] = {}
    for r in summary["rows"]:
        tasks.setdefault((r["setting"], r["task"]), []).append(r)
    order = sorted(tasks, key=lambda k: (SETTINGS.index(k[0]) if k[0] in SETTINGS else len(SETTINGS), list(tasks).index(k)))
    lines = [
        "| setting | benchmark | metric | gssf: Δ vs cosine (95% CI) | chosen on validation: member, Δ (95% CI) | "
        "largest Δ: member, Δ (95% CI) | its params | its cost per pair | what the intervals say |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for setting, task in order:
        rows = tasks[(setting, task)]
        metric = DEMO_TASKS[task].main_metric if task in DEMO_TASKS else rows[0]["metric"]
        learned = [r for r in rows if r["metric"] == metric and r["similarity"] != "cosine"]
        if not learned:
            continue
        best = max(learned, key=lambda r: r["delta_vs_cosine"])
        ours = next((r for r in learned if r["similarity"] == "gssf"), None)
        if best["delta_ci_low"] > 0:
            reading = f"{best['similarity']} above cosine"
            reading += "; gssf too" if ours is not None and ours["delta_ci_low"] > 0 else ""
        elif all(r["delta_ci_high"] < 0 for r in learned):
            reading = "every learned member below cosine"
        else:
            reading = "no member resolved above cosine (CIs include 0)"
        cost = _cost_per_pair(best["similarity"], task)
        members = [r for r in rows if r["metric"] == metric]
        if all("val_mean" in r for r in members):
            chosen = max(members, key=lambda r: r["val_mean"])
            picked = "cosine (no change)" if chosen["similarity"] == "cosine" else f"{chosen['similarity']}, {_ci(chosen)}"
        else:
            picked = "—"
        lines.append(
            f"| {setting} | {task} | {metric} | {_ci(ours) if ours else '—'} | {picked} | {best['similarity']}, {_ci(best)} "
            f"| {best['params']:,} | {'—' if cost is None else f'{cost:.1f}x'} | {reading} |"
        )
    return "\n".join(lines) + "\n"


def replace_generated_section(text: str, section: str, where: str = "results.md", begin: str = BEGIN,
                              end: str = END) -> str:
    """``text`` with everything between the two marker lines replaced by ``section``."""
    before, after = _split(text, where, begin, end)
    body = section if section.endswith("\n") else section + "\n"
    return before + "\n" + body + "\n" + after


def publish_summary(summary_file: PathLike, docs: PathLike) -> Dict[str, Path]:
    """Merge a validated ``summary.json`` into ``docs/results/summary.json`` and regenerate ``docs/results.md``'s section.

    The tasks of ``summary_file`` replace their rows in the published file; the rows of the
    other tasks stay, and ``sources`` records which command produced which tasks
    (:func:`gssf.stats.merge_summaries`). Returns ``{"summary": path, "page": path}``.

    Raises:
        SummaryError: an invalid summary, or a ``results.md`` missing or without its markers
            (then nothing is written).
    """
    summary = read_summary(summary_file)
    page = check_results_page(docs)
    published = Path(docs) / "results" / "summary.json"
    if published.exists():
        summary = merge_summaries(read_summary(published), summary)
    text = replace_generated_section(page.read_text(encoding="utf-8"), generated_section(summary), str(page))
    table = pays_table(summary)
    if _has_markers(text, PAYS_BEGIN, PAYS_END):
        text = replace_generated_section(text, table, str(page), PAYS_BEGIN, PAYS_END)
    readme = Path(docs).resolve().parent / "README.md"
    readme_text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    update_readme = _has_markers(readme_text, PAYS_BEGIN, PAYS_END)
    if update_readme:  # checked before anything is written
        readme_text = replace_generated_section(readme_text, table, str(readme), PAYS_BEGIN, PAYS_END)
    target = write_summary(summary["rows"], published, command=summary["command"], generated=summary["generated"],
                           git_commit=summary["git_commit"], sources=summary.get("sources"))
    out = {"summary": target, "page": atomic_write_text(page, text)}
    if update_readme:
        out["readme"] = atomic_write_text(readme, readme_text)
    return out
