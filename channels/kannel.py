"""Kannel, the second SMS provider, over its smsbox HTTP interface.

Kannel (bearerbox + smsbox) holds the SMPP binds to the carriers' SMSCs and
speaks plain HTTP to us: `GET /cgi-bin/sendsms` to send, a GET to the
`dlr-url` we give with each message for every delivery report, and a GET to
the sms-service `get-url` for every message a resident sends back.  Kannel
signs nothing, so each URL carries an HMAC we check (403 otherwise).

Delivery reports (`%d`): 8 the SMSC took the message, 16 the SMSC refused it
(`%A` is "NACK/<command_status>/<text>"), 1 delivered, 2 not delivered
(`%A` is the SMSC's receipt, "id:.. stat:UNDELIV err:027 ..").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from .base import Outcome

NAME = "kannel"
# Delivery report types Kannel puts in `%d`.
DLR_DELIVERED, DLR_FAILED, DLR_BUFFERED, DLR_SMSC_ACCEPTED, DLR_SMSC_REJECTED = 1, 2, 4, 8, 16
DLR_MASK = DLR_DELIVERED | DLR_FAILED | DLR_SMSC_ACCEPTED | DLR_SMSC_REJECTED
GSM7_CODING, UCS2_CODING = 0, 2
# Receipt `err:` values (GSM MAP causes, as SMSCs report them) that say the
# number itself is wrong: unknown or unidentified subscriber, no SMS service.
DEAD_NUMBER_ERRORS = {"001", "005", "011"}
# The handset is off, out of coverage or full: a later try may work.
HANDSET_ERRORS = {"027", "031", "032"}
# The network failed (system failure): a later try may work, and the provider is to blame.
NETWORK_ERRORS = {"034"}
# SMPP command_status the SMSC refuses a submit with that are about the number.
BAD_NUMBER_STATUS = {0x0B, 0x0A}  # ESME_RINVDSTADR, ESME_RINVSRCADR
_RECEIPT = re.compile(r"(\w[\w ]*?):(\S*)")
_NACK = re.compile(r"NACK/(0x[0-9a-fA-F]+|\d+)/?(.*)")


@dataclass(frozen=True)
class Report:
    """One delivery report as our status: sent, delivered or failed."""

    status: str
    error_code: str = ""
    permanent: bool = True
    contact_dead: bool = False
    # The provider or its network is at fault, not the resident's handset.
    provider_fault: bool = False
    foreign_id: str = ""


def receipt_fields(text: str) -> dict[str, str]:
    """"id:1 sub:001 dlvrd:001 submit date:2401011200 ... stat:DELIVRD err:000" -> fields."""
    head = text.split(" text:", 1)[0]
    return {k.strip().lower(): v for k, v in _RECEIPT.findall(head)}


def read_report(kind: int, reply: str, foreign_id: str = "") -> Report | None:
    if kind == DLR_SMSC_ACCEPTED:
        return Report("sent", foreign_id=foreign_id)
    if kind == DLR_DELIVERED:
        return Report("delivered", foreign_id=foreign_id)
    if kind == DLR_SMSC_REJECTED:
        m = _NACK.match(reply)
        status = int(m.group(1), 0) if m else 0
        bad_number = status in BAD_NUMBER_STATUS
        return Report("failed", error_code=f"smpp:0x{status:08x}" if m else "rejected", permanent=bad_number,
                      contact_dead=bad_number, provider_fault=not bad_number, foreign_id=foreign_id)
    if kind == DLR_FAILED:
        fields = receipt_fields(reply)
        stat, err = fields.get("stat", "UNDELIV").upper(), fields.get("err", "")
        temporary = stat == "EXPIRED" or err in HANDSET_ERRORS or err in NETWORK_ERRORS
        dead = err in DEAD_NUMBER_ERRORS
        # A receipt without a handset cause blames the provider or its network.
        blames_handset = err in HANDSET_ERRORS or dead or stat == "REJECTD"
        return Report("failed", error_code=f"{stat.lower()}:{err}" if err else stat.lower(), permanent=not temporary,
                      contact_dead=dead, provider_fault=not blames_handset, foreign_id=foreign_id)
    return None  # buffered: nothing new


class Kannel:
    def __init__(self, settings, http: aiohttp.ClientSession | None = None):
        self.settings = settings
        self._http = http
        self._own_http: aiohttp.ClientSession | None = None
        # Kannel signs nothing: our URLs carry an HMAC keyed from the lookup key.
        self._key = hmac.new(settings.lookup_key or b"", b"kannel callbacks", hashlib.sha256).digest()

    def configured(self) -> bool:
        return bool(self.settings.kannel_sendsms_url and self.settings.kannel_username)

    @property
    def sender(self) -> str:
        return self.settings.kannel_from or self.settings.twilio_from_number

    def http(self) -> aiohttp.ClientSession:
        if self._http is not None and not self._http.closed:
            return self._http
        if self._own_http is None or self._own_http.closed:
            self._own_http = aiohttp.ClientSession()
        return self._own_http

    # Signed URLs -------------------------------------------------------------

    def sign(self, text: str) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, text.encode(), hashlib.sha256).digest()[:18]).decode()

    def dlr_url(self, ref: str, sent_ms: int) -> str:
        """Where Kannel reports on one message; Kannel fills in the %-fields."""
        path = f"/hooks/kannel/dlr/{ref}"
        sig = self.sign(f"{path}|{sent_ms}")
        return (f"{self.settings.public_url}{path}?t={sent_ms}&sig={sig}"
                "&type=%d&id=%F&smsc=%i&reply=%A")

    def inbound_url(self) -> str:
        """The sms-service `get-url` for Kannel's configuration: residents' replies."""
        path = "/hooks/kannel/inbound"
        return f"{self.settings.public_url}{path}?sig={self.sign(path)}&from=%p&to=%P&text=%a&id=%I"

    def verify(self, request: web.Request, *extra: str) -> None:
        """403 unless the URL carries our signature."""
        signed = "|".join((request.path, *extra)) if extra else request.path
        if not hmac.compare_digest(request.query.get("sig", ""), self.sign(signed)):
            raise web.HTTPForbidden(text="bad signature")

    # Sending -----------------------------------------------------------------

    async def send_sms(self, to: str, text: str, *, unicode: bool, dlr_url: str, validity_min: int | None = None
                       ) -> Outcome:
        params = {
            "username": self.settings.kannel_username,
            "password": self.settings.kannel_password,
            "from": self.sender,
            "to": to,
            "text": text,
            "charset": "UTF-8",
            "coding": str(UCS2_CODING if unicode else GSM7_CODING),
            "dlr-mask": str(DLR_MASK),
            "dlr-url": dlr_url,
        }
        if self.settings.kannel_smsc:
            params["smsc"] = self.settings.kannel_smsc
        if validity_min:
            params["validity"] = str(validity_min)
        url = f"{self.settings.kannel_sendsms_url}?{urlencode(params)}"
        try:
            async with self.http().get(url, timeout=aiohttp.ClientTimeout(total=15)) as resp:
                body = (await resp.text()).strip()
                status = resp.status
        except Exception as e:  # refused, reset, timed out: Kannel may come back
            return Outcome("failed", NAME, error_code="network", permanent=False, detail=type(e).__name__)
        if status == 202:
            # "0: Accepted for delivery", or "3: Queued for later delivery" while the SMSC link is down.
            return Outcome("queued", NAME, detail=body[:200])
        # 400: a parameter Kannel will never take (e.g. a number it calls illegal);
        # 403: our account; 5xx: Kannel itself. Only the first is about the message.
        return Outcome("failed", NAME, error_code=str(status), permanent=status == 400, detail=body[:200])

    async def close(self) -> None:
        if self._own_http is not None:
            await self._own_http.close()
            self._own_http = None
