"""The docs hold together: relative links reach existing files and headings, and every
`memad ...` command shown in a docs code block parses with the real command line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from memad.cli import build_parser
from memad.cli.common import overrides as _overrides
from memad.config import make_config
from memad.errors import ConfigError
from memad.registry import get_registry

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _without_code(text: str) -> str:
    text = FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of a page (lowercase, punctuation dropped, spaces to hyphens).

    >>> sorted(heading_anchors("# A `b` c\\n## Test-time update, and gate\\n## A `b` c\\n"))
    ['a-b-c', 'a-b-c-1', 'test-time-update-and-gate']
    """
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", text).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _links() -> list[tuple[Path, str]]:
    found = []
    for page in PAGES:
        for target in LINK.findall(_without_code(page.read_text())):
            if not re.match(r"[a-z]+:", target):  # http:, https:, mailto: are not checked
                found.append((page, target))
    return found


def test_pages_link_to_each_other():
    # The index and the README reach every page; a new page must be listed.
    index = (ROOT / "docs" / "README.md").read_text()
    missing = [p.name for p in PAGES if p.parent.name == "docs" and p.name != "README.md" and f"({p.name})" not in index]
    assert not missing, f"docs/README.md does not list {missing}"
    assert len(_links()) > 50


@pytest.mark.parametrize("page,target", _links(), ids=lambda v: v if isinstance(v, str) else v.name)
def test_relative_link_resolves(page: Path, target: str):
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    assert dest.exists(), f"{page.relative_to(ROOT)}: link to {target!r}: {dest} does not exist"
    if anchor:
        assert dest.suffix == ".md", f"{page.relative_to(ROOT)}: anchor {anchor!r} into a non-Markdown file"
        anchors = heading_anchors(dest.read_text())
        assert anchor in anchors, f"{page.relative_to(ROOT)}: no heading #{anchor} in {dest.name} ({sorted(anchors)})"


def _commands() -> list[tuple[str, str]]:
    """Each `memad ...` line of a bash block in docs/*.md, continuation lines joined, comments and pipes cut."""
    found = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        for lang, body in FENCE.findall(page.read_text()):
            if lang not in ("bash", "sh"):
                continue
            for line in body.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].split("|")[0].strip()
                words = shlex.split(line) if line else []
                if "memad" in words:
                    found.append((page.name, " ".join(shlex.quote(w) for w in words[words.index("memad"):])))
    return found


COMMANDS = _commands()


def test_cli_page_covers_every_subcommand():
    parser = build_parser()
    subcommands = set(parser._subparsers._group_actions[0].choices)  # noqa: SLF001 (argparse has no public accessor)
    cli_page = (ROOT / "docs" / "cli.md").read_text()
    headed = set(re.findall(r"^## `memad (\w+)`", cli_page, re.M))
    assert headed == subcommands, f"docs/cli.md sections {sorted(headed)} vs parser {sorted(subcommands)}"
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("page,command", COMMANDS)
def test_documented_command_parses(page: str, command: str):
    try:
        args = build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit as exc:
        if exc.code == 0:  # --version, --help
            return
        pytest.fail(f"{page}: `{command}` is not accepted by the memad command line")
    if args.command not in ("train", "compare"):
        return
    presets = args.presets if args.command == "compare" else [args.preset]
    for preset in presets:
        if preset not in get_registry().names("preset"):
            # Only the example plugin's preset may be missing (it needs `pip install -e examples/topk_memory_plugin`).
            assert preset == "mnad_pred_topk", f"{page}: `{command}` names the unknown preset {preset!r}"
            continue
        try:
            make_config(preset, _overrides(args))
        except ConfigError as exc:
            if "topk" in command and "topk" not in get_registry().names("memory"):
                continue
            pytest.fail(f"{page}: `{command}`: {exc}")
