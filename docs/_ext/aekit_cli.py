"""``.. aekit-cli::``: the command-line reference, walked from aekit's argparse parser.

Nothing is copied by hand: every command, argument group, option, default and example comes
from :func:`aekit.cli.parser.build_parser`, the parser the ``aekit`` command runs, so the page
says what ``aekit COMMAND --help`` says. Options whose help is suppressed are left out.
"""

from __future__ import annotations

import argparse
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _section(document: Any, title: str, ident: str) -> nodes.section:
    section = nodes.section(ids=[ident], names=[nodes.fully_normalize_name(title)])
    section += nodes.title(text=title)
    document.note_implicit_target(section)
    return section


def _options(parser: argparse.ArgumentParser) -> list[nodes.Node]:
    """One definition list per argument group: invocation → help (defaults expanded)."""
    formatter = parser._get_formatter()
    out: list[nodes.Node] = []
    for group in parser._action_groups:
        actions = [
            a
            for a in group._group_actions
            if a.help is not argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)
        ]
        if not actions:
            continue
        out.append(nodes.rubric(text=group.title or "options"))
        if group.description:
            out.append(nodes.paragraph(text=group.description))
        items = nodes.definition_list()
        for action in actions:
            term = nodes.term()
            term += nodes.literal(text=formatter._format_action_invocation(action))
            body = nodes.definition()
            body += nodes.paragraph(text=formatter._expand_help(action) if action.help else "")
            items += nodes.definition_list_item("", term, body)
        out.append(items)
    return out


class AekitCli(SphinxDirective):
    """Insert one section per ``aekit`` command: usage, description, options, example."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        """The sections, built from a fresh parser."""
        from aekit.cli.parser import build_parser

        parser = build_parser()
        document = self.state.document
        top: list[nodes.Node] = [
            nodes.literal_block(text=parser.format_usage().strip(), language="text"),
            nodes.paragraph(text=parser.description or ""),
            *_options(parser),
        ]
        for name, sub in _subcommands(parser).items():
            section = _section(document, f"aekit {name}", f"aekit-{name}")
            section += nodes.paragraph(text=sub.description or "")
            section += nodes.literal_block(text=sub.format_usage().strip(), language="text")
            section.extend(_options(sub))
            if sub.epilog:
                section += nodes.rubric(text="example")
                example = sub.epilog.split("\n", 1)[-1].strip()
                section += nodes.literal_block(text=example, language="sh")
            top.append(section)
        return top


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("aekit-cli", AekitCli)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
