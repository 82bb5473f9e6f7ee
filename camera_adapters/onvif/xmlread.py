"""Namespace-agnostic reading of camera responses.

Firmwares mix schema versions and prefixes; matching on local names keeps one
vendor's namespace quirk from breaking a probe.
"""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree

Element = etree._Element


def local(el: Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def children(el: Element | None, name: str) -> Iterator[Element]:
    if el is None:
        return iter(())
    return (c for c in el if local(c) == name)


def child(el: Element | None, *path: str) -> Element | None:
    """The first element along ``path`` of local names, or None."""
    for name in path:
        el = next(children(el, name), None)
        if el is None:
            return None
    return el


def text(el: Element | None, *path: str) -> str | None:
    found = child(el, *path)
    if found is None or found.text is None:
        return None
    return found.text.strip()


def number(el: Element | None, *path: str) -> float | None:
    value = text(el, *path)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def parse(data: bytes) -> Element:
    """Parse untrusted XML without entities or network access."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    return etree.fromstring(data, parser)
