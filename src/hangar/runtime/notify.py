"""Sending one alert notice: a signed JSON webhook, a Slack-compatible incoming webhook, or an
email over SMTP. A failure raises DeliveryFailed with a text that names the target by scheme and
host only (a Slack webhook's path is its secret) and never holds a password or secret.

The JSON webhook's body is the notice itself; its signature is HMAC-SHA256 of the exact body
bytes with the rule's secret, sent as `X-Hangar-Signature-256: sha256=<hex>` (GitHub's scheme).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import urlsplit

import httpx

SIGNATURE_HEADER = "X-Hangar-Signature-256"
TIMEOUT = 10.0


class DeliveryFailed(Exception):
    pass


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


def _post(url: str, body: bytes, headers: dict[str, str]) -> None:
    try:
        response = httpx.post(url, content=body, headers={"Content-Type": "application/json",
                                                          "User-Agent": "Hangar-Alerts", **headers}, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{_where(url)} did not answer: {type(exc).__name__}") from None
    if response.status_code >= 300:
        raise DeliveryFailed(f"{_where(url)} answered HTTP {response.status_code}")


def headline(notice: dict) -> str:
    state = {"firing": "ALERT", "resolved": "RESOLVED", "test": "TEST"}.get(notice.get("state", ""), "ALERT")
    where = f" in {notice['environment']}" if notice.get("environment") else ""
    return f"[Hangar {state}] {notice.get('alert')}: {notice.get('event')}{where}"


def send_webhook(url: str, notice: dict, *, secret: str | None, delivery_id: int) -> None:
    body = json.dumps(notice, sort_keys=True).encode()
    headers = {"X-Hangar-Delivery": str(delivery_id)}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    _post(url, body, headers)


def send_slack(url: str, notice: dict) -> None:
    text = f"*{headline(notice)}*\n{notice.get('summary', '')}"
    _post(url, json.dumps({"text": text}).encode(), {})


def send_email(*, host: str, port: int, starttls: bool, user: str | None, password: str | None, sender: str,
               to: str, notice: dict) -> None:
    message = EmailMessage()
    message["Subject"] = headline(notice)
    message["From"], message["To"] = sender, to
    message.set_content(f"{notice.get('summary', '')}\n\n{json.dumps(notice, indent=2, sort_keys=True)}\n")
    try:
        with smtplib.SMTP(host, port, timeout=TIMEOUT) as smtp:
            if starttls:
                smtp.starttls(context=ssl.create_default_context())
            if user:
                smtp.login(user, password or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        reason = exc.smtp_code if isinstance(exc, smtplib.SMTPResponseException) else type(exc).__name__
        raise DeliveryFailed(f"SMTP server {host}:{port} refused or did not answer: {reason}") from None
