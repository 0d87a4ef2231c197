"""Refresh the Subresource Integrity attributes of the web ui's index.html after editing a page
file (plugins/ui_web/src/enkrypted_ui_web/static/).  ``--check`` only reports stale ones (exit 1).

The plugin refuses to start when an attribute does not match the bytes it serves
(enkrypted_ui_web.assets), and tests/plugins/webui/test_webui_assets.py checks the committed page.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "plugins/ui_web/src/enkrypted_ui_web/static"
_REF = re.compile(r'(<(?:script|link)\b[^>]*?(?:src|href)="/([^"]+)"[^>]*?integrity=")([^"]*)(")')


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def refreshed(page: str) -> str:
    return _REF.sub(lambda m: m.group(1) + sri((STATIC / m.group(2)).read_bytes()) + m.group(4),
                    page)


def main(argv: list[str]) -> int:
    index = STATIC / "index.html"
    page = index.read_text("utf-8")
    new = refreshed(page)
    if "--check" in argv:
        print("index.html integrity is current" if new == page else "index.html integrity is STALE")
        return 0 if new == page else 1
    if new != page:
        index.write_text(new, "utf-8")
    print(f"{index}: integrity attributes current")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
