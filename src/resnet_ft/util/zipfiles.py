"""What reading a damaged zip archive raises: ``.keras`` models and ``torch.save`` files.

Python's :mod:`zipfile` reports damage through many types, depending on where the bytes
are wrong: the directory (``BadZipFile``), a member's header or name (``ValueError``,
``EOFError``, ``NotImplementedError`` for an unknown compression), its compressed stream
(``zlib.error``), its checksum (``BadZipFile``), an encryption flag set by a flipped bit
(``RuntimeError``), or the file itself (``OSError``). Every reader of an archive catches
this one tuple, so none forgets a kind and lets a traceback through.
"""

from __future__ import annotations

import zipfile
import zlib

ZIP_DAMAGE: tuple[type[BaseException], ...] = (
    OSError, EOFError, ValueError, NotImplementedError, RuntimeError, zlib.error,
    zipfile.BadZipFile)
