"""Byte-level BPE helpers shared by the tiny model and Segue-mini's tokenizer (pure Python)."""

from __future__ import annotations


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable unicode character table."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes = printable[:]
    shifted = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + shifted)
            shifted += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))
