"""The emulated Pluto's IIO context: devices, channels and attributes, read from pluto.xml.

The XML is what the server sends for PRINT; the parsed form lets the server check that a device, channel
or attribute a client names exists, and map a buffer's channel mask to scan elements. Channel numbers (the
bits of a mask) follow libiio's order: channels that are not scan elements first, sorted by id, then scan
elements by scan index.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["IioChannel", "IioDevice", "IioContext", "load_pluto_context", "PLUTO_XML_PATH"]

PLUTO_XML_PATH = Path(__file__).with_name("pluto.xml")


@dataclass
class IioChannel:
    """One channel: id, direction, attribute names, and for scan elements the index and sample format."""

    id: str
    output: bool
    attrs: list[str]
    number: int = -1
    scan_index: int | None = None
    fmt: str = ""  # e.g. "le:S12/16>>0"

    @property
    def key(self) -> str:
        return ("out:" if self.output else "in:") + self.id

    @property
    def sample_bytes(self) -> int:
        """Bytes per sample of a scan element (the storage bits after the slash)."""
        storage = int(self.fmt.split("/")[1].split(">>")[0]) if "/" in self.fmt else 16
        return storage // 8


@dataclass
class IioDevice:
    id: str
    name: str
    channels: list[IioChannel]
    attrs: list[str] = field(default_factory=list)
    debug_attrs: list[str] = field(default_factory=list)
    buffer_attrs: list[str] = field(default_factory=list)

    def channel(self, chn_id: str, output: bool) -> IioChannel | None:
        for ch in self.channels:
            if ch.id == chn_id and ch.output == output:
                return ch
        return None

    @property
    def scan_elements(self) -> list[IioChannel]:
        return [c for c in self.channels if c.scan_index is not None]

    @property
    def mask_words(self) -> int:
        return (len(self.channels) + 31) // 32

    def channels_in_mask(self, mask_hex: str) -> list[IioChannel]:
        """Scan elements enabled by a mask string (8 hex digits per 32-bit word, most significant first)."""
        if len(mask_hex) != 8 * self.mask_words or any(c not in "0123456789abcdefABCDEF" for c in mask_hex):
            raise ValueError(f"mask {mask_hex!r} must be {8 * self.mask_words} hex digits for {self.id}")
        bits = int(mask_hex, 16)
        return [c for c in self.scan_elements if bits >> c.number & 1]


@dataclass
class IioContext:
    xml: str
    devices: list[IioDevice]
    attrs: dict[str, str]

    def device(self, ident: str) -> IioDevice | None:
        """Look a device up by id ("iio:device3") or by name ("cf-ad9361-lpc"), as iiod does."""
        for d in self.devices:
            if d.id == ident:
                return d
        for d in self.devices:
            if d.name == ident:
                return d
        return None


# The document type libiio 0.2x validates a context against (its published schema, written out here).
_DTD = (
    "<!DOCTYPE context ["
    "<!ELEMENT context (device | context-attribute)*>"
    "<!ELEMENT context-attribute EMPTY>"
    "<!ELEMENT device (channel | attribute | debug-attribute | buffer-attribute)*>"
    "<!ELEMENT channel (scan-element?, attribute*)>"
    "<!ELEMENT attribute EMPTY>"
    "<!ELEMENT scan-element EMPTY>"
    "<!ELEMENT debug-attribute EMPTY>"
    "<!ELEMENT buffer-attribute EMPTY>"
    "<!ATTLIST context name CDATA #REQUIRED version-major CDATA #REQUIRED version-minor CDATA #REQUIRED "
    "version-git CDATA #REQUIRED description CDATA #IMPLIED>"
    "<!ATTLIST context-attribute name CDATA #REQUIRED value CDATA #REQUIRED>"
    "<!ATTLIST device id CDATA #REQUIRED name CDATA #IMPLIED label CDATA #IMPLIED>"
    "<!ATTLIST channel id CDATA #REQUIRED type (input|output) #REQUIRED name CDATA #IMPLIED>"
    "<!ATTLIST scan-element index CDATA #REQUIRED format CDATA #REQUIRED scale CDATA #IMPLIED>"
    "<!ATTLIST attribute name CDATA #REQUIRED filename CDATA #IMPLIED value CDATA #IMPLIED>"
    "<!ATTLIST debug-attribute name CDATA #REQUIRED value CDATA #IMPLIED>"
    "<!ATTLIST buffer-attribute name CDATA #REQUIRED value CDATA #IMPLIED>"
    "]>"
)


def load_pluto_context(path: Path = PLUTO_XML_PATH) -> IioContext:
    """Parse the context XML (the file is served verbatim, minus comments, for PRINT)."""
    root = ET.parse(path).getroot()
    devices = []
    for dev in root.findall("device"):
        chans = []
        for ch in dev.findall("channel"):
            scan = ch.find("scan-element")
            chans.append(
                IioChannel(
                    id=ch.get("id", ""),
                    output=ch.get("type") == "output",
                    attrs=[a.get("name", "") for a in ch.findall("attribute")],
                    scan_index=None if scan is None else int(scan.get("index", "0")),
                    fmt="" if scan is None else scan.get("format", ""),
                )
            )
        for i, ch in enumerate(chans):
            ch.number = i
        devices.append(
            IioDevice(
                id=dev.get("id", ""),
                name=dev.get("name", ""),
                channels=chans,
                attrs=[a.get("name", "") for a in dev.findall("attribute")],
                debug_attrs=[a.get("name", "") for a in dev.findall("debug-attribute")],
                buffer_attrs=[a.get("name", "") for a in dev.findall("buffer-attribute")],
            )
        )
    attrs = {a.get("name", ""): a.get("value", "") for a in root.findall("context-attribute")}
    # Serve compact XML without the file's comment, exactly as parsed.
    xml = '<?xml version="1.0" encoding="utf-8"?>' + _DTD + ET.tostring(root, encoding="unicode").replace("\n", "")
    return IioContext(xml=xml, devices=devices, attrs=attrs)
