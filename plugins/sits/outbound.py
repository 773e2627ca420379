"""Sending to SITS: one queued record per call, posted as XML to the site's ``SIW_RWS`` service.

The body's tags come from the connection's body template; the answer is a success only when its
status is on the success list *and* its body reports no error (RWS services report some errors
inside a 200).  The master code SITS assigns (``<MasterStudentCode>``) comes back as an external id,
which the worker writes to the person without queueing it back to SITS.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any
from urllib.parse import quote

import requests
from lxml import etree

from azorus_connect.config import Connection
from azorus_connect.connector import CheckResult, OutboundMessage, SendOutcome
from azorus_connect.http import new_session, outcome_for_exception, outcome_for_response

from .settings import BodyTemplate, OutboundSettings

__all__ = ["build_body", "build_url", "check", "read_master_code", "send"]

log = logging.getLogger(__name__)

_sessions: dict[str, requests.Session] = {}
_sessions_lock = threading.Lock()


def _session(connection: Connection, settings: OutboundSettings) -> requests.Session:
    """One HTTP session per connection, reused across messages."""
    with _sessions_lock:
        session = _sessions.get(connection.name)
        if session is None:
            session = _sessions[connection.name] = new_session(verify=settings.verify_tls)
        return session


def value_at(payload: dict[str, Any], path: str) -> Any:
    """``person.identifiers.mst`` -> ``payload["person"]["identifiers"]["mst"]`` (None when absent)."""
    value: Any = payload
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "Y" if value else "N"
    text = str(value).strip()
    return text or None


def build_body(template: BodyTemplate, payload: dict[str, Any]) -> bytes:
    """The XML posted for one record; empty values are left out."""
    root = etree.Element(template.root)
    holder = etree.SubElement(root, template.item) if template.item else root
    for tag, path in template.tags.items():
        text = _text(value_at(payload, path))
        if text is not None:
            etree.SubElement(holder, tag).text = text
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def build_url(settings: OutboundSettings, service: str, payload: dict[str, Any]) -> str:
    """Fill the URL template; values go into one path segment each, ``/`` replaced."""
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "base_url":
            return settings.base_url
        if name == "service":
            return quote(service, safe="")
        text = _text(value_at(payload, name))
        if text is None:
            missing.append(name)
            return ""
        return quote(text.replace("/", settings.slash_replacement), safe="&-_.~")

    url = _PLACEHOLDER.sub(fill, settings.url_template)
    if missing:
        raise ValueError(f"the URL template needs {', '.join(missing)}, which the record does not have")
    return url


def read_master_code(body: str, tag: str) -> tuple[str | None, bool]:
    """The master code in a reply (XML element or JSON key named ``tag``), and whether the reply
    could be read at all: a cut-off or garbled body is unreadable, an empty one is fine."""
    escaped = re.escape(tag)
    xml = re.search(rf"<(?:[\w.-]+:)?{escaped}\b[^>]*>\s*([^<\s]+)\s*</(?:[\w.-]+:)?{escaped}\s*>", body)
    if xml:
        return xml.group(1), True
    as_json = re.search(rf'"{escaped}"\s*:\s*"?([^",}}\s]+)', body, re.IGNORECASE)
    if as_json:
        return as_json.group(1), True
    text = body.strip()
    if not text:
        return None, True
    if text.startswith("<"):
        try:
            etree.fromstring(text.encode("utf-8"), etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError:
            return None, False
        return None, True
    for candidate in (text, "{" + text + "}"):  # some RWS replies lose their braces
        try:
            json.loads(candidate)
        except ValueError:
            continue
        return None, True
    return None, False


def send(connection: Connection, settings: OutboundSettings, message: OutboundMessage) -> SendOutcome:
    """Post one message and classify the answer (sent / retry / failed)."""
    kind = message.entity.value
    service = settings.services.get(kind)
    if service is None:
        return SendOutcome.failed(
            message.id, f"no RWS service is configured for {kind} (outbound.services.{kind})"
        )
    try:
        url = build_url(settings, service, message.payload)
    except ValueError as exc:
        return SendOutcome.failed(message.id, str(exc))
    body = build_body(settings.bodies[kind], message.payload)
    try:
        response = _session(connection, settings).request(
            settings.method,
            url,
            data=body,
            headers={"Content-Type": "text/xml; charset=UTF-8", "Accept": "text/xml, application/json"},
            auth=(settings.username, settings.password.reveal()),
            timeout=settings.timeout,
        )
    except requests.RequestException as exc:
        return outcome_for_exception(message.id, exc)
    if response.status_code not in settings.success_codes:
        return outcome_for_response(message.id, response, success_codes=settings.success_codes)
    text = response.text or ""
    for pattern in settings.error_patterns:
        if re.search(pattern, text, re.IGNORECASE):
            snippet = " ".join(text.split())[:300]
            return SendOutcome.failed(
                message.id, f"SITS answered {response.status_code} but reported an error: {snippet}"
            )
    code, readable = read_master_code(text, settings.mst_tag)
    if not readable:
        snippet = " ".join(text.split())[:200]
        return SendOutcome.retry(
            message.id, f"SITS answered {response.status_code} with an unreadable body: {snippet}"
        )
    if code is None:
        log.info("%s: message %s sent; the reply names no %s", connection.name, message.id, settings.mst_tag)
        return SendOutcome.sent(message.id)
    return SendOutcome.sent(message.id, {settings.mst_scheme: code})


def check(connection: Connection, settings: OutboundSettings) -> CheckResult:
    """Reach the first RWS service with the credentials: refused credentials or a 5xx fail."""
    service = next(iter(settings.services.values()), "")
    url = settings.base_url + quote(service, safe="") + "/"
    try:
        response = _session(connection, settings).get(
            url, auth=(settings.username, settings.password.reveal()), timeout=min(settings.timeout, 10.0)
        )
    except requests.RequestException as exc:
        return CheckResult(False, f"cannot reach {url}: {type(exc).__name__}")
    if response.status_code in (401, 403):
        return CheckResult(False, f"{url} refused the credentials (HTTP {response.status_code})")
    if response.status_code >= 500:
        return CheckResult(False, f"{url} answered HTTP {response.status_code}")
    return CheckResult(True, f"{url} reachable, credentials accepted (HTTP {response.status_code})")
