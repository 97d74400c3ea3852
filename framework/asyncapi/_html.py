"""A self-contained HTML page for an AsyncAPI document: no script, no external asset.

Servers, then each channel with its operations (payload and reply schemas as JSON in
``<pre>``), then the shared schemas. ``$ref`` links jump to the schema they name.
Every value from the document is HTML-escaped.
"""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem 2rem;
color:#1d232a;background:#fff}
h1{margin-bottom:0}h2{border-bottom:1px solid #ccd;padding-bottom:.2rem;margin-top:2.5rem}
h3{margin:1.5rem 0 .3rem}code,pre{font:13px/1.4 ui-monospace,monospace}
h2 code,h3 code{font-size:inherit}
pre{background:#f4f6f8;padding:.6rem .8rem;overflow-x:auto;border-radius:4px}
table{border-collapse:collapse}td,th{border:1px solid #dde;padding:.25rem .6rem;
text-align:left;vertical-align:top}.tag{background:#e7edf3;border-radius:3px;
padding:0 .35rem;font-size:13px}.muted{color:#5b6570}.op{margin-left:1rem}
"""

_CODE_SPAN = re.compile(r"`([^`]+)`")
_SCHEMA_REF = re.compile(r"&quot;#/components/schemas/([A-Za-z0-9_.-]+)&quot;")


def _anchor(kind: str, key: str) -> str:
    return f"{kind}-{re.sub(r'[^A-Za-z0-9_.-]', '-', key)}"


def _json(value: Any) -> str:
    """Pretty JSON, escaped, with schema references turned into links."""
    text = escape(json.dumps(value, indent=2, ensure_ascii=False))
    return _SCHEMA_REF.sub(
        lambda m: f'<a href="#{_anchor("schema", m.group(1))}">{m.group(0)}</a>', text
    )


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _text(text: str) -> str:
    """Escaped text with CommonMark's `code spans` (the only markup the document uses)."""
    return _CODE_SPAN.sub(r"<code>\1</code>", escape(text))


def _para(text: str | None) -> str:
    if not text:
        return ""
    return "".join(f"<p>{_text(p)}</p>" for p in text.split("\n\n"))


def _message(title: str, message: dict[str, Any]) -> str:
    name = escape(message.get("title", ""))
    parts = [f"<p><strong>{escape(title)}</strong>: <code>{name}</code>"]
    if "contentType" in message:
        parts.append(f" <span class=muted>({escape(message['contentType'])})</span>")
    parts.append("</p>")
    parts.append(_para(message.get("description")))
    if "payload" in message:
        parts.append(f"<pre>{_json(message['payload'])}</pre>")
    return "".join(parts)


def _servers(doc: dict[str, Any]) -> str:
    rows = []
    for key, server in doc.get("servers", {}).items():
        where = server["host"] + server.get("pathname", "")
        rows.append(
            f'<tr id="{_anchor("server", key)}"><td><code>{escape(key)}</code></td>'
            f"<td>{escape(server['protocol'])}</td><td><code>{escape(where)}</code></td>"
            f"<td>{_text(server.get('description', ''))}</td></tr>"
        )
    if not rows:
        return "<p class=muted>No servers.</p>"
    head = "<tr><th>server</th><th>protocol</th><th>address</th><th>notes</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _operation(doc: dict[str, Any], key: str, op: dict[str, Any]) -> str:
    tags = " ".join(f"<span class=tag>{escape(t['name'])}</span>" for t in op.get("tags", []))
    kind = "request/reply" if "reply" in op else "event"
    parts = [
        f'<div class=op id="{_anchor("operation", key)}">',
        f"<h3><code>{escape(key)}</code> <span class=muted>{kind}</span> {tags}</h3>",
    ]
    if op.get("summary"):
        parts.append(f"<p>{_text(op['summary'])}</p>")
    parts.append(_para(op.get("description")))
    for ref in op.get("messages", []):
        parts.append(_message("Payload", _resolve(doc, ref["$ref"])))
    for ref in op.get("reply", {}).get("messages", []):
        parts.append(_message("Reply", _resolve(doc, ref["$ref"])))
    parts.append("</div>")
    return "".join(parts)


def render_html(doc: dict[str, Any]) -> str:
    """The document as one HTML page (UTF-8, no external resources)."""
    info = doc.get("info", {})
    title = f"{info.get('title', 'AsyncAPI')} {info.get('version', '')}".strip()
    by_channel: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for key, op in doc.get("operations", {}).items():
        by_channel.setdefault(op["channel"]["$ref"], []).append((key, op))
    body = [
        f"<h1>{escape(title)}</h1>",
        f"<p class=muted>AsyncAPI {escape(str(doc.get('asyncapi', '')))}</p>",
        _para(info.get("description")),
        "<h2>Servers</h2>",
        _servers(doc),
        "<h2>Channels</h2>",
    ]
    if not by_channel:
        body.append("<p class=muted>No message or event handlers.</p>")
    for ref, ops in by_channel.items():
        key = ref.removeprefix("#/channels/")
        channel = _resolve(doc, ref)
        servers = ", ".join(s["$ref"].rsplit("/", 1)[-1] for s in channel.get("servers", []))
        body.append(
            f'<h2 id="{_anchor("channel", key)}"><code>{escape(str(channel.get("address")))}'
            f"</code></h2><p class=muted>servers: {escape(servers)}</p>"
        )
        body.append(_para(channel.get("description")))
        body.extend(_operation(doc, k, op) for k, op in ops)
    schemas = doc.get("components", {}).get("schemas", {})
    if schemas:
        body.append("<h2>Schemas</h2>")
        for key, schema in schemas.items():
            body.append(
                f'<h3 id="{_anchor("schema", key)}"><code>{escape(key)}</code></h3>'
                f"<pre>{_json(schema)}</pre>"
            )
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
