"""Text fields that are safe to tokenize, store and log."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _valid_unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text holds an unpaired surrogate: it is not valid Unicode") from None
    if "\x00" in value:
        raise ValueError("text holds a NUL character")
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]
