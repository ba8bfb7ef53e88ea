"""An SMSC speaking SMPP 3.4, and a real Kannel in front of it.

The gateway's second SMS provider is Kannel (Debian's `kannel`: bearerbox and
smsbox), which binds over SMPP to a carrier's SMSC.  Here the SMSC is played
by the simulator on the `smpp34` library's server: it answers `submit_sm`,
puts concatenated parts back together (UDH or SAR), and plays each message
out as the resident's behaviour says, with the delivery receipts an SMSC
sends (`deliver_sm`, esm_class 0x04, "id:.. stat:DELIVRD err:000", plus the
receipted_message_id and message_state TLVs) and the resident's replies as
mobile-originated `deliver_sm`.  What residents get lands in the same
records as Twilio's messages (provider `smsc`), and faults apply under the
name `smsc`: outage and error_rate refuse submits with ESME_RSYSERR,
rate_limit with ESME_RTHROTTLED, fail_rate makes messages undeliverable.

`KannelBoxes` writes a kannel.conf for that SMSC and runs bearerbox and
smsbox, for tests, demos and drills.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gsm0338  # noqa: F401  registers the "gsm03.38" codec
import smpp34

from simulator import faults as fault_kinds
from simulator.behaviour import language_of, understands

if TYPE_CHECKING:
    from simulator.app import Simulator

log = logging.getLogger("simulator.smsc")

PROVIDER = "smsc"
UDHI = 0x40
RECEIPT = 0x04
DC_GSM, DC_LATIN1, DC_UCS2 = 0x00, 0x03, 0x08
TLV_SAR_REF, TLV_SAR_TOTAL, TLV_SAR_SEQ, TLV_PAYLOAD = 0x020C, 0x020E, 0x020F, 0x0424
MESSAGE_STATE = {"DELIVRD": 2, "EXPIRED": 3, "UNDELIV": 5, "REJECTD": 8}
# Behaviour error codes are Twilio's; an SMSC reports GSM MAP causes instead.
MAP_CAUSE = {30003: "027", 30005: "001", 30006: "011", 30001: "034", 30008: "034", 30007: "000"}
DEFAULT_CAUSE = "034"  # system failure


def decode_text(data: bytes, coding: int) -> str:
    if coding == DC_UCS2:
        return data.decode("utf-16-be", errors="replace")
    if coding == DC_GSM:
        try:
            return data.decode("gsm03.38")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    return data.decode("latin-1")


def encode_text(text: str) -> tuple[bytes, int]:
    try:
        return text.encode("gsm03.38"), DC_GSM
    except UnicodeEncodeError:
        return text.encode("utf-16-be"), DC_UCS2


def split_udh(data: bytes) -> tuple[tuple[int, int, int] | None, bytes]:
    """(reference, total, sequence) of a concatenated part, and its text bytes."""
    length = data[0]
    header, body = data[1 : 1 + length], data[1 + length :]
    i = 0
    while i + 1 < len(header):
        iei, size = header[i], header[i + 1]
        value = header[i + 2 : i + 2 + size]
        if iei == 0x00 and size == 3:
            return (value[0], value[1], value[2]), body
        if iei == 0x08 and size == 4:
            return (value[0] << 8 | value[1], value[2], value[3]), body
        i += 2 + size
    return None, body


def _tlv(tlvs: list, tag: int) -> bytes | None:
    for t in tlvs:
        if t.tag == tag:
            return t.value
    return None


def receipt_text(message_id: str, stat: str, err: str, submitted: float, text: str) -> str:
    stamp = time.strftime("%y%m%d%H%M", time.gmtime(submitted))
    done = time.strftime("%y%m%d%H%M", time.gmtime())
    delivered = "001" if stat == "DELIVRD" else "000"
    snippet = "".join(ch if 32 <= ord(ch) < 127 else "." for ch in text[:20])
    return (f"id:{message_id} sub:001 dlvrd:{delivered} submit date:{stamp} done date:{done} "
            f"stat:{stat} err:{err} text:{snippet}")


@dataclass
class Part:
    message_id: str
    session_id: str
    source: str
    wants_receipt: bool


@dataclass
class Pending:
    """Parts of one concatenated message seen so far."""

    total: int
    parts: dict[int, tuple[Part, str]] = field(default_factory=dict)


class Smsc:
    def __init__(self, sim: "Simulator", host: str = "127.0.0.1", port: int = 0, system_id: str = "SIMSMSC"):
        self.sim = sim
        self.host = host
        self.port = port or _free_port(host)
        self.server = smpp34.Server(host=self.host, port=self.port, system_id=system_id)
        self.sessions: dict[str, Any] = {}
        self._pending: dict[tuple[str, str, int], Pending] = {}
        self._next_id = sim.rng.getrandbits(32) + 10_000_000_000
        self._task: asyncio.Task | None = None
        self.submits = 0

    async def start(self) -> "Smsc":
        await self.server.start()
        self._task = asyncio.get_running_loop().create_task(self._serve())
        return self

    async def stop(self) -> None:
        # Unbound, the ESMEs notice at once and bind again to whoever listens next.
        for esme in list(self.sessions.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(esme.unbind(), 2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.server.stop()

    def bound(self) -> bool:
        return bool(self.sessions)

    async def _serve(self) -> None:
        while True:
            event = await self.server.next()
            try:
                if isinstance(event, smpp34.Esme):
                    self.sessions[event.session_id] = event
                elif isinstance(event, smpp34.Unbound):
                    self.sessions.pop(event.session_id, None)
                elif isinstance(event, smpp34.SubmitSmEvent):
                    await self._submit(event)
            except Exception:  # one bad PDU must not stop the SMSC
                self.sim.stats["errors"] += 1
                log.exception("smsc failed on %s", type(event).__name__)

    async def _submit(self, ev) -> None:
        self.sim.stats["requests.SMPP submit_sm"] += 1
        self.submits += 1
        verdict = await self.sim.faults.admit(PROVIDER)
        if verdict == fault_kinds.RATE_LIMITED:
            return ev.reject(smpp34.ESME_RTHROTTLED)
        if verdict is not None:
            if verdict == fault_kinds.RESET and ev.session_id in self.sessions:
                ev.reject(smpp34.ESME_RSYSERR)
                await self.sessions[ev.session_id].unbind()
                return
            return ev.reject(smpp34.ESME_RSYSERR)
        data = ev.short_message or (_tlv(ev.tlvs, TLV_PAYLOAD) or b"")
        concat = None
        if ev.esm_class & UDHI and data:
            concat, data = split_udh(data)
        elif _tlv(ev.tlvs, TLV_SAR_REF) is not None:
            concat = (int.from_bytes(_tlv(ev.tlvs, TLV_SAR_REF), "big"), _tlv(ev.tlvs, TLV_SAR_TOTAL)[0],
                      _tlv(ev.tlvs, TLV_SAR_SEQ)[0])
        to = _international(ev.destination_addr, ev.dest_addr_ton)
        if not to[1:].isdigit():
            return ev.reject(smpp34.ESME_RINVDSTADR)
        message_id = str(self._next_id)
        self._next_id += 1
        ev.accept(message_id)
        part = Part(message_id, ev.session_id, ev.source_addr, bool(ev.registered_delivery & 1))
        text = decode_text(data, ev.data_coding)
        if concat is None:
            return self._message(to, [(part, text)])
        ref, total, seq = concat
        key = (ev.source_addr, to, ref)
        pending = self._pending.setdefault(key, Pending(total))
        pending.parts[seq] = (part, text)
        if len(pending.parts) >= pending.total:
            del self._pending[key]
            self._message(to, [pending.parts[i] for i in sorted(pending.parts)])

    def _message(self, to: str, parts: list[tuple[Part, str]]) -> None:
        """A whole message is in: the resident's handset takes it, or not."""
        record = self.sim.behaviour.by_phone(to)
        text = "".join(t for _, t in parts)
        first = parts[0][0]
        entry = self.sim.records.add(record["resident"] or to, "sms", PROVIDER, first.message_id, to=to, text=text,
                                     language=language_of(text), replies=[], parts=len(parts),
                                     sender=first.source)
        sms = record["sms"]
        fault = self.sim.faults.get(PROVIDER)
        submitted = time.time()
        if sms["outcome"] == "failed" or self.sim.faults.chance(fault.fail_rate):
            code = sms["error_code"] if sms["outcome"] == "failed" and sms["error_code"] else None
            stat, err = "UNDELIV", MAP_CAUSE.get(code, DEFAULT_CAUSE)
            after = min(0.5, sms["delay_s"])
        elif sms["outcome"] == "undelivered":
            stat, err = "UNDELIV", MAP_CAUSE.get(sms["error_code"], "027")
            after = sms["delay_s"]
        else:
            stat, err, after = "DELIVRD", "000", sms["delay_s"]
        entry["status"] = "accepted"
        self.sim.later(after, self._settle, entry, record, parts, stat, err, submitted)

    def _settle(self, entry: dict, record: dict, parts: list[tuple[Part, str]], stat: str, err: str,
                submitted: float) -> None:
        entry["status"] = "delivered" if stat == "DELIVRD" else "undelivered"
        if stat != "DELIVRD":
            entry["error_code"] = err
        for part, text in parts:
            if part.wants_receipt:
                self.sim.spawn(self._receipt(part, entry["to"], stat, err, submitted, text))
        if stat == "DELIVRD":
            self.sim.records.receive(entry)
            reply = record["sms"]["reply"]
            if reply and understands(record, entry["language"]):
                self.sim.later(record["sms"]["reply_after_s"], self._reply, entry, parts[0][0], reply)

    def _session_for(self, session_id: str):
        esme = self.sessions.get(session_id)
        if esme is not None and esme.can_receive:
            return esme
        return next((s for s in self.sessions.values() if s.can_receive), None)

    async def _receipt(self, part: Part, to: str, stat: str, err: str, submitted: float, text: str) -> None:
        esme = self._session_for(part.session_id)
        if esme is None:
            self.sim.stats["smsc.receipts_undeliverable"] += 1
            return
        body = receipt_text(part.message_id, stat, err, submitted, text).encode("ascii")
        tlvs = [smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, part.message_id.encode() + b"\0"),
                smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes([MESSAGE_STATE[stat]]))]
        resp = await esme.deliver_sm(destination_addr=part.source, short_message=body, source_addr=to.lstrip("+"),
                                     source_addr_ton=1, source_addr_npi=1, esm_class=RECEIPT, tlvs=tlvs)
        self.sim.stats["smsc.receipts" if resp.is_success else "smsc.receipts_refused"] += 1

    def _reply(self, entry: dict, part: Part, body: str) -> None:
        """The resident answers; the SMSC hands it to the bound ESME as an MO deliver_sm."""
        entry["replies"].append({"body": body, "at": time.time()})
        self.sim.stats["sms.replies"] += 1
        self.sim.spawn(self._mo(part, entry["to"], body))

    async def _mo(self, part: Part, sender: str, body: str) -> None:
        esme = self._session_for(part.session_id)
        if esme is None:
            return
        data, coding = encode_text(body)
        await esme.deliver_sm(destination_addr=part.source, short_message=data, source_addr=sender.lstrip("+"),
                              source_addr_ton=1, source_addr_npi=1, data_coding=coding)


def _international(addr: str, ton: int) -> str:
    if addr.startswith("+"):
        return addr
    return f"+{addr}" if ton == 1 else addr


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --- Kannel -------------------------------------------------------------------

BEARERBOX = "bearerbox"
SMSBOX = "smsbox"


def kannel_installed() -> bool:
    return all(_binary(name) for name in (BEARERBOX, SMSBOX))


def _binary(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}")
                                       if os.access(p, os.X_OK)), None)


@dataclass
class KannelBoxes:
    """bearerbox + smsbox, bound over SMPP to an SMSC, with a sendsms user."""

    directory: Path
    smsc_port: int
    inbound_url: str
    username: str = "gateway"
    # SMPP caps passwords at 8 characters.
    password: str = "s3cr3t"
    sendsms_port: int = field(default_factory=_free_port)
    admin_port: int = field(default_factory=_free_port)
    box_port: int = field(default_factory=_free_port)
    smsc_host: str = "127.0.0.1"
    processes: list = field(default_factory=list)

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    def config(self) -> str:
        d = self.directory
        return f"""
group = core
admin-port = {self.admin_port}
admin-password = "{self.password}"
admin-interface = 127.0.0.1
smsbox-port = {self.box_port}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = "{d / 'bearerbox.log'}"
log-level = 1
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = sim
host = {self.smsc_host}
port = {self.smsc_port}
transceiver-mode = true
smsc-username = "{self.username}"
smsc-password = "{self.password}"
system-type = ""
reconnect-delay = 1
enquire-link-interval = 30
wait-ack = 60
wait-ack-expire = 0x02

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {self.box_port}
sendsms-port = {self.sendsms_port}
sendsms-interface = 127.0.0.1
log-file = "{d / 'smsbox.log'}"
log-level = 1
mo-recode = true

group = sendsms-user
username = "{self.username}"
password = "{self.password}"
concatenation = true
max-messages = 10
user-allow-ip = 127.0.0.1

group = sms-service
keyword = default
catch-all = true
get-url = "{self.inbound_url}"
max-messages = 1
omit-empty = true
"""

    def start(self, timeout: float = 20.0) -> "KannelBoxes":
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "kannel.conf"
        conf.write_text(self.config())
        for name, port in ((BEARERBOX, self.box_port), (SMSBOX, self.sendsms_port)):
            out = open(self.directory / f"{name}.out", "ab")
            self.processes.append(subprocess.Popen([_binary(name), str(conf)], stdout=out, stderr=subprocess.STDOUT,
                                                   start_new_session=True))
            _wait_for_port(port, timeout, self.processes[-1], name)
        return self

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
        self.processes.clear()


def _wait_for_port(port: int, timeout: float, proc: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on {port} within {timeout}s")
