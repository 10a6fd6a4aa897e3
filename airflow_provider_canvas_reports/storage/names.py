"""Object names: what is safe to use as one path component, and the hidden temp names we write.

Names come from Canvas (file names) and from ZIP members, i.e. from outside. A name is only ever
used as a single component under a destination folder, so it must not be able to climb out of
it, hide itself, or confuse a filesystem or a later download tool.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata

from airflow_provider_canvas_reports.storage.errors import UnsafeNameError

#: Longest name most filesystems accept (ext4, xfs, APFS: 255 bytes) and well within S3/GCS keys.
MAX_NAME_BYTES = 255

#: Unicode categories refused anywhere in a name: control (Cc), format (Cf: bidi overrides and
#: zero-width characters that disguise a name), surrogates (Cs: not encodable), line/paragraph
#: separators (Zl, Zp).
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")

_PARTIAL_MARK = ".partial-"
_PARTIAL_TOKEN_HEX = 16
_PARTIAL_RE = re.compile(rf"^\..+\.partial-[0-9a-f]{{{_PARTIAL_TOKEN_HEX}}}$")
# Temp names add ".", ".partial-" and the token; long names are shortened (plus a hash of the
# full name, so two long names never share a temp prefix) to keep temp names <= 255 bytes.
_PARTIAL_STEM_MAX_BYTES = MAX_NAME_BYTES - 1 - len(_PARTIAL_MARK) - _PARTIAL_TOKEN_HEX


def _problem(name: str) -> str | None:
    """Return why ``name`` (already normalised) is unsafe, or None."""
    if not name:
        return "it is empty"
    if name.startswith("."):
        # Covers ".", ".." and "..."; other dot names are hidden files and collide with our
        # own hidden temp names (".<name>.partial-<token>").
        return "it starts with '.' (relative path or hidden name)"
    if "/" in name:
        return "it contains '/' (a path, not a single name)"
    if "\\" in name:
        return "it contains a backslash (a Windows path separator)"
    if _DRIVE_LETTER.match(name):
        return "it starts with a drive letter"
    for char in name:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return f"it contains the control or invisible character U+{ord(char):04X}"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"it is longer than {MAX_NAME_BYTES} bytes in UTF-8"
    if unicodedata.normalize("NFC", name) != name:
        return "it is not stable under Unicode normalisation"
    return None


def safe_name(name: str) -> str:
    """Return ``name`` as a safe single path component, or raise :class:`UnsafeNameError`.

    Sanitising is limited to what cannot change meaning: Unicode NFC normalisation (so the same
    visible name is always the same key) and stripping surrounding whitespace. Everything else
    that is unsafe is refused, never silently rewritten, so two different inputs can't quietly
    become the same object. Idempotent: ``safe_name(safe_name(x)) == safe_name(x)``.
    """
    if not isinstance(name, str):
        raise UnsafeNameError(f"Object name must be a string, got {type(name).__name__}")
    cleaned = unicodedata.normalize("NFC", name).strip()
    problem = _problem(cleaned)
    if problem is not None:
        raise UnsafeNameError(
            f"Unsafe object name {name!r}: {problem}. "
            "Use a plain file name such as 'users.csv' (no folders, no '..', no control characters)."
        )
    return cleaned


def _truncate_utf8(text: str, max_bytes: int) -> str:
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def partial_prefix(name: str) -> str:
    """The hidden temp-name prefix for final object ``name``: ``.<name>.partial-``."""
    stem = name
    if len(name.encode("utf-8")) > _PARTIAL_STEM_MAX_BYTES:
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
        stem = _truncate_utf8(name, _PARTIAL_STEM_MAX_BYTES - 17) + "~" + digest
    return f".{stem}{_PARTIAL_MARK}"


def new_partial_name(name: str) -> str:
    """A fresh, unguessable hidden temp name for final object ``name`` (same folder)."""
    return partial_prefix(name) + secrets.token_hex(_PARTIAL_TOKEN_HEX // 2)


def is_partial_name(entry: str, name: str | None = None) -> bool:
    """Whether ``entry`` is one of our temp names (for final object ``name`` when given)."""
    if not _PARTIAL_RE.match(entry):
        return False
    if name is None:
        return True
    prefix = partial_prefix(name)
    return entry.startswith(prefix) and len(entry) == len(prefix) + _PARTIAL_TOKEN_HEX
