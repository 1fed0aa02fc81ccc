"""Safe XML reading for annotation files (VOC-style and others), through defusedxml.

Annotation files are untrusted input: defusedxml refuses entity expansion and external entities.
Parse errors become InputErrors naming the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException

from rsgpt4v.errors import InputError


def read_xml(path: Path) -> Element:
    """The root element of an XML file; raise InputError naming the file (and line)."""
    try:
        return SafeElementTree.parse(path).getroot()
    except ParseError as error:
        line = error.position[0] if error.position else None
        raise InputError(f"not well-formed XML ({error})", file=path, line=line) from None
    except DefusedXmlException as error:
        raise InputError(f"refused unsafe XML ({type(error).__name__})", file=path) from None


def child_text(element: Element, path: str, file: Path) -> str:
    """Stripped text of a required child (``"bndbox/xmin"``); raise InputError when missing."""
    found = element.find(path)
    if found is None or found.text is None or not found.text.strip():
        raise InputError(f"missing <{path}> in <{element.tag}>", file=file, entry=element.tag)
    return found.text.strip()


def child_float(element: Element, path: str, file: Path) -> float:
    """A required numeric child; raise InputError naming the element and the bad value."""
    text = child_text(element, path, file)
    try:
        return float(text)
    except ValueError:
        raise InputError(
            f"<{path}> is not a number", file=file, entry=element.tag, value=text
        ) from None
