"""A strict ONVIF Profile S camera for tests: real HTTP SOAP server plus WS-Discovery on UDP.

Strict where real cameras are strict (WS-UsernameToken digest, a ±5 s window on its
own skewed clock, nonce replay, request bodies validated against the ONVIF WSDL
schemas) so a client that passes here is not merely agreeing with itself.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import hashlib
import hmac
import importlib.util
import secrets
import socket
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

import uvicorn
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SOAP_ENV = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DEVICE = "http://www.onvif.org/ver10/device/wsdl"
MEDIA = "http://www.onvif.org/ver10/media/wsdl"
XS = "{http://www.w3.org/2001/XMLSchema}"
CREATED_WINDOW = 5.0
SOAP_TYPE = "application/soap+xml; charset=utf-8"
NS = (
    f'xmlns:s="{SOAP_ENV}" xmlns:tds="{DEVICE}" xmlns:trt="{MEDIA}" '
    'xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:ter="http://www.onvif.org/ver10/error"'
)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@functools.cache
def wsdl_schema(namespace: str) -> etree.XMLSchema:
    """The XML Schema embedded in the device or media WSDL shipped with onvif-zeep-async.

    The embedded schema relies on prefixes declared on wsdl:definitions and on relative
    imports, so it is lifted into a standalone schema with absolute import locations.
    """
    spec = importlib.util.find_spec("onvif")  # not imported: it calls logging.basicConfig
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the ONVIF simulator needs the WSDLs of onvif-zeep-async; pip install onvif-zeep-async")
    wsdl_dir = Path(spec.submodule_search_locations[0]) / "wsdl"
    name = {DEVICE: "devicemgmt.wsdl", MEDIA: "media.wsdl"}[namespace]
    doc = etree.parse(str(wsdl_dir / name))
    embedded = doc.find(f"{{http://schemas.xmlsoap.org/wsdl/}}types/{XS}schema")
    schema = etree.Element(embedded.tag, attrib=dict(embedded.attrib), nsmap=embedded.nsmap)
    for item in embedded:
        item = copy.deepcopy(item)
        if item.tag == f"{XS}import":
            item.set("schemaLocation", (wsdl_dir / item.get("schemaLocation")).resolve().as_uri())
        schema.append(item)
    return etree.XMLSchema(schema)


@functools.cache
def test_jpeg() -> bytes:
    import cv2
    import numpy as np

    image = np.zeros((90, 160, 3), np.uint8)
    image[:, :80] = (0, 0, 255)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


class Fault(Exception):
    def __init__(self, code: str, subcode: str, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.code, self.subcode, self.reason, self.status = code, subcode, reason, status

    def envelope(self) -> str:
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope {NS}><s:Body><s:Fault>'
            f"<s:Code><s:Value>s:{self.code}</s:Value><s:Subcode><s:Value>{self.subcode}"
            f'</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">'
            f"{escape(self.reason)}</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>"
        )


def not_authorized(why: str) -> Fault:
    return Fault("Sender", "ter:NotAuthorized", f"Sender not Authorized ({why})")


def _date_time(moment: datetime) -> str:
    return (
        f"<tt:Time><tt:Hour>{moment.hour}</tt:Hour><tt:Minute>{moment.minute}</tt:Minute>"
        f"<tt:Second>{moment.second}</tt:Second></tt:Time><tt:Date><tt:Year>{moment.year}"
        f"</tt:Year><tt:Month>{moment.month}</tt:Month><tt:Day>{moment.day}</tt:Day></tt:Date>"
    )


def _profile(token: str, name: str, width: int, height: int, fps: int) -> str:
    return f"""<trt:Profiles token="{token}" fixed="true"><tt:Name>{name}</tt:Name>
<tt:VideoSourceConfiguration token="vsc"><tt:Name>vsc</tt:Name><tt:UseCount>2</tt:UseCount>
<tt:SourceToken>vs0</tt:SourceToken><tt:Bounds x="0" y="0" width="1280" height="720"/>
</tt:VideoSourceConfiguration>
<tt:VideoEncoderConfiguration token="vec_{token}"><tt:Name>vec_{token}</tt:Name>
<tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>{width}
</tt:Width><tt:Height>{height}</tt:Height></tt:Resolution><tt:Quality>5</tt:Quality>
<tt:RateControl><tt:FrameRateLimit>{fps}</tt:FrameRateLimit><tt:EncodingInterval>1
</tt:EncodingInterval><tt:BitrateLimit>2048</tt:BitrateLimit></tt:RateControl>
<tt:H264><tt:GovLength>{fps * 2}</tt:GovLength><tt:H264Profile>Main</tt:H264Profile></tt:H264>
<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address>
</tt:Address><tt:Port>0</tt:Port><tt:TTL>1</tt:TTL><tt:AutoStart>false</tt:AutoStart>
</tt:Multicast><tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration>
</trt:Profiles>"""


class BareUnauthorized(Exception):
    """Refuse with HTTP 401, no WWW-Authenticate and no body (see ``clock_needs_credentials``)."""


class OnvifSimulator:
    """One simulated camera. ``calls`` counts SOAP operations (and ``Probe``, ``Snapshot``)
    as received, ``auth_failures`` says why each refused request was refused.

    Quirks, each off by default:

    * ``clock_needs_credentials``: a third-party device seen in the field. It demands
      WS-Security even for GetSystemDateAndTime, and answers every request it does not
      authenticate (none sent, or wrong) with HTTP 401 without a WWW-Authenticate header
      and without a SOAP fault.
    * ``soap_digest``: HTTP Digest in front of the SOAP endpoints (Hikvision with ONVIF
      authentication set to "digest"): a SOAP request without a valid Digest
      Authorization gets a 401 challenge before WS-Security is looked at.
    """

    def __init__(
        self,
        main_uri: str,
        sub_uri: str,
        *,
        username: str = "admin",
        password: str = "s3cret-Pa55",
        clock_offset: float = 120.0,
        name: str = "Gym North",
        hardware: str = "SL-CAM-1000",
        location: str = "building/lincoln-high",
        get_services: bool = True,
        snapshot: bool = True,
        clock_needs_credentials: bool = False,
        soap_digest: bool = False,
    ) -> None:
        self.main_uri, self.sub_uri = main_uri, sub_uri
        self.username, self.password = username, password
        self.clock_offset = clock_offset
        self.name, self.hardware, self.location = name, hardware, location
        self.supports_get_services, self.supports_snapshot = get_services, snapshot
        self.clock_needs_credentials, self.soap_digest = clock_needs_credentials, soap_digest
        self.host = "127.0.0.1"
        self.port = free_port()
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.endpoint = f"urn:uuid:{uuid.uuid4()}"
        self.calls: Counter[str] = Counter()
        self.auth_failures: list[str] = []
        self._nonces: set[bytes] = set()
        self._digest_nonces: set[str] = set()
        self._lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def device_url(self) -> str:
        return f"http://{self.host}:{self.port}/onvif/device_service"

    @property
    def snapshot_url(self) -> str:
        return f"http://{self.host}:{self.port}/onvif/snapshot.jpg"

    def now(self) -> float:
        """The camera's clock: ours plus the configured skew."""
        return time.time() + self.clock_offset

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> OnvifSimulator:
        app = Starlette(
            routes=[
                Route("/onvif/device_service", self._soap, methods=["POST"]),
                Route("/onvif/media_service", self._soap, methods=["POST"]),
                Route("/onvif/snapshot.jpg", self._snapshot, methods=["GET"]),
            ]
        )
        self._server = uvicorn.Server(
            uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", lifespan="off")
        )
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("ONVIF simulator did not start")
        return self

    def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve(ready))
        self._loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        assert self._server is not None
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _DiscoveryResponder(self), local_addr=(self.host, self.udp_port)
        )
        task = asyncio.create_task(self._server.serve())
        while not self._server.started and not task.done():
            await asyncio.sleep(0.01)
        ready.set()
        try:
            await task
        finally:
            transport.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    # --- SOAP ----------------------------------------------------------------------------

    async def _soap(self, request: Request) -> Response:
        if self.soap_digest and not self._digest_ok(request):
            with self._lock:
                self.auth_failures.append("HTTP Digest required")
            return self._digest_challenge()
        try:
            body = self._handle(await request.body())
            status = 200
        except Fault as fault:
            body, status = fault.envelope(), fault.status
        except BareUnauthorized:
            return Response(status_code=401)
        return Response(body, status_code=status, media_type=SOAP_TYPE)

    def _handle(self, data: bytes) -> str:
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        try:
            envelope = etree.fromstring(data, parser)
        except etree.XMLSyntaxError as exc:
            raise Fault("Sender", "ter:WellFormed", f"not well-formed XML: {exc}") from None
        body = envelope.find(f"{{{SOAP_ENV}}}Body")
        if envelope.tag != f"{{{SOAP_ENV}}}Envelope" or body is None or len(body) != 1:
            raise Fault("Sender", "ter:InvalidArgs", "expected a SOAP 1.2 envelope, one body element")
        operation = body[0]
        qname = etree.QName(operation)
        with self._lock:
            self.calls[qname.localname] += 1
        if qname.namespace not in (DEVICE, MEDIA):
            raise Fault("Receiver", "ter:ActionNotSupported", f"unknown namespace {qname.namespace}")
        schema = wsdl_schema(qname.namespace)
        if not schema.validate(operation):
            raise Fault("Sender", "ter:InvalidArgs", f"schema: {schema.error_log.last_error.message}")
        if qname.localname != "GetSystemDateAndTime" or self.clock_needs_credentials:
            self._authenticate(envelope.find(f"{{{SOAP_ENV}}}Header"))
        handler = getattr(self, f"_op_{qname.localname}", None)
        if handler is None:
            raise Fault("Receiver", "ter:ActionNotSupported", f"{qname.localname} not supported")
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope {NS}><s:Body>{handler(operation)}</s:Body></s:Envelope>'
        )

    def _authenticate(self, header: etree._Element | None) -> None:
        token = None if header is None else header.find(f"{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        if token is None:
            return self._refuse("no UsernameToken")
        username = token.findtext(f"{{{WSSE}}}Username")
        password = token.find(f"{{{WSSE}}}Password")
        nonce_text = token.findtext(f"{{{WSSE}}}Nonce")
        created = token.findtext(f"{{{WSU}}}Created")
        if password is None or not password.get("Type", "").endswith("#PasswordDigest"):
            return self._refuse("PasswordDigest required")
        if not (nonce_text and created):
            return self._refuse("Nonce and Created required")
        try:
            nonce = base64.b64decode(nonce_text, validate=True)
            stamp = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return self._refuse("malformed Nonce or Created")
        if abs(stamp - self.now()) > CREATED_WINDOW:
            return self._refuse(f"Created {created} outside ±{CREATED_WINDOW:g}s of device clock")
        expected = base64.b64encode(hashlib.sha1(nonce + created.encode() + self.password.encode()).digest()).decode()
        if username != self.username or not hmac.compare_digest(expected, password.text or ""):
            return self._refuse("bad username or digest")
        with self._lock:
            if nonce in self._nonces:
                return self._refuse("replayed nonce")
            self._nonces.add(nonce)
        return None

    def _refuse(self, why: str) -> None:
        with self._lock:
            self.auth_failures.append(why)
        if self.clock_needs_credentials:
            raise BareUnauthorized(why)
        raise not_authorized(why)

    # --- operations ----------------------------------------------------------------------

    def _op_GetSystemDateAndTime(self, _: etree._Element) -> str:
        moment = datetime.fromtimestamp(self.now(), UTC)
        return (
            f"<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            f"<tt:DateTimeType>Manual</tt:DateTimeType><tt:DaylightSavings>false"
            f"</tt:DaylightSavings><tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>"
            f"<tt:UTCDateTime>{_date_time(moment)}</tt:UTCDateTime><tt:LocalDateTime>"
            f"{_date_time(moment)}</tt:LocalDateTime></tds:SystemDateAndTime>"
            f"</tds:GetSystemDateAndTimeResponse>"
        )

    def _op_GetDeviceInformation(self, _: etree._Element) -> str:
        return (
            "<tds:GetDeviceInformationResponse><tds:Manufacturer>Sightline Labs"
            f"</tds:Manufacturer><tds:Model>{escape(self.hardware)}</tds:Model>"
            "<tds:FirmwareVersion>2.4.1</tds:FirmwareVersion><tds:SerialNumber>SIM0001"
            "</tds:SerialNumber><tds:HardwareId>1.0</tds:HardwareId>"
            "</tds:GetDeviceInformationResponse>"
        )

    def _op_GetServices(self, _: etree._Element) -> str:
        if not self.supports_get_services:
            raise Fault("Receiver", "ter:ActionNotSupported", "GetServices not supported", 500)
        base = f"http://{self.host}:{self.port}/onvif"
        services = "".join(
            f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{base}/{path}"
            f"</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>40</tt:Minor>"
            f"</tds:Version></tds:Service>"
            for ns, path in ((DEVICE, "device_service"), (MEDIA, "media_service"))
        )
        return f"<tds:GetServicesResponse>{services}</tds:GetServicesResponse>"

    def _op_GetCapabilities(self, _: etree._Element) -> str:
        # Behind NAT cameras advertise addresses we cannot reach; so does this one.
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Media><tt:XAddr>"
            "http://192.0.2.10/onvif/media_service</tt:XAddr><tt:StreamingCapabilities>"
            "<tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP>"
            "<tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>"
            "</tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    def _op_GetProfiles(self, _: etree._Element) -> str:
        # Sub listed first: the client must choose by resolution, not by order.
        return (
            "<trt:GetProfilesResponse>"
            + _profile("sub", "Sub stream", 640, 360, 15)
            + _profile("main", "Main stream", 1280, 720, 25)
            + "</trt:GetProfilesResponse>"
        )

    def _profile_token(self, operation: etree._Element) -> str:
        token = operation.findtext(f"{{{MEDIA}}}ProfileToken")
        if token not in ("main", "sub"):
            raise Fault("Sender", "ter:InvalidArgVal/ter:NoProfile", f"no profile {token!r}")
        return token

    def _op_GetStreamUri(self, operation: etree._Element) -> str:
        uri = self.main_uri if self._profile_token(operation) == "main" else self.sub_uri
        return (
            f"<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>{escape(uri)}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>"
            "false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri>"
            "</trt:GetStreamUriResponse>"
        )

    def _op_GetSnapshotUri(self, operation: etree._Element) -> str:
        self._profile_token(operation)
        if not self.supports_snapshot:
            raise Fault("Receiver", "ter:ActionNotSupported", "snapshots not supported", 500)
        return (
            f"<trt:GetSnapshotUriResponse><trt:MediaUri><tt:Uri>{self.snapshot_url}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>"
            "false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri>"
            "</trt:GetSnapshotUriResponse>"
        )

    # --- snapshot over HTTP Digest (RFC 7616, MD5, qop=auth) -----------------------------

    async def _snapshot(self, request: Request) -> Response:
        with self._lock:
            self.calls["Snapshot"] += 1
        if self._digest_ok(request):
            return Response(test_jpeg(), media_type="image/jpeg")
        return self._digest_challenge()

    def _digest_challenge(self) -> Response:
        nonce = secrets.token_hex(16)
        with self._lock:
            self._digest_nonces.add(nonce)
        challenge = f'Digest realm="onvif-sim", qop="auth", nonce="{nonce}", algorithm=MD5'
        return Response(status_code=401, headers={"WWW-Authenticate": challenge})

    def _digest_ok(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("digest "):
            return False
        fields = dict(_digest_fields(header[7:]))
        if fields.get("nonce") not in self._digest_nonces or fields.get("username") != self.username:
            return False

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{self.username}:onvif-sim:{self.password}")
        ha2 = md5(f"{request.method}:{fields.get('uri', '')}")
        expected = md5(f"{ha1}:{fields['nonce']}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:auth:{ha2}")
        return hmac.compare_digest(expected, fields.get("response", ""))


def _digest_fields(text: str) -> list[tuple[str, str]]:
    out = []
    for part in text.split(","):
        key, _, value = part.strip().partition("=")
        out.append((key.strip().lower(), value.strip().strip('"')))
    return out


class _DiscoveryResponder(asyncio.DatagramProtocol):
    """Answers WS-Discovery Probes for NetworkVideoTransmitter (or untyped probes)."""

    def __init__(self, sim: OnvifSimulator) -> None:
        self.sim = sim
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError:
            return
        message_id = root.findtext(".//{http://schemas.xmlsoap.org/ws/2004/08/addressing}MessageID")
        probe = root.find(".//{http://schemas.xmlsoap.org/ws/2005/04/discovery}Probe")
        if probe is None or not message_id:
            return
        types = probe.findtext("{http://schemas.xmlsoap.org/ws/2005/04/discovery}Types") or ""
        if types and not any(t.endswith(":NetworkVideoTransmitter") for t in types.split()):
            return
        with self.sim._lock:
            self.sim.calls["Probe"] += 1
        assert self.transport is not None
        self.transport.sendto(self._match(message_id).encode(), addr)

    def _match(self, relates_to: str) -> str:
        sim = self.sim
        scopes = " ".join(
            [
                "onvif://www.onvif.org/type/video_encoder",
                "onvif://www.onvif.org/Profile/Streaming",
                f"onvif://www.onvif.org/name/{sim.name.replace(' ', '%20')}",
                f"onvif://www.onvif.org/hardware/{sim.hardware}",
                f"onvif://www.onvif.org/location/{sim.location}",
            ]
        )
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="{SOAP_ENV}" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"
 xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="{DEVICE}">
<s:Header><a:MessageID>uuid:{uuid.uuid4()}</a:MessageID><a:RelatesTo>{escape(relates_to)}</a:RelatesTo>
<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>
<a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</a:Action></s:Header>
<s:Body><d:ProbeMatches><d:ProbeMatch><a:EndpointReference><a:Address>{sim.endpoint}</a:Address>
</a:EndpointReference><d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>
<d:Scopes>{escape(scopes)}</d:Scopes><d:XAddrs>{sim.device_url}</d:XAddrs>
<d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"""
