"""HL7 v2 data types as XDS metadata spells them (CX, XCN, XON, DTM in UTC).

XDS carries identifiers and people in HL7 v2 syntax inside ebRIM slots (ITI TF-3 §4.2.3.1.7);
the DMP reads them with the INS and RPPS conventions of the CI-SIS. Component separators in
values are escaped so that a name containing '^' or '&' cannot shift the components.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))


def esc(value: str) -> str:
    """Escape HL7 delimiters in one component value."""
    for char, seq in _ESCAPES:
        value = value.replace(char, seq)
    return value


def unesc(value: str) -> str:
    for char, seq in reversed(_ESCAPES):
        value = value.replace(seq, char)
    return value


def cx(id_value: str, authority_oid: str, id_type: str = "") -> str:
    """CX: `id^^^&OID&ISO^type` (patientId, sourcePatientId)."""
    out = f"{esc(id_value)}^^^&{authority_oid}&ISO"
    return f"{out}^{id_type}" if id_type else out


def parse_cx(value: str) -> tuple[str, str, str]:
    """(id, authority OID, id type) from a CX, or ValueError naming what is missing."""
    comps = value.split("^")
    if len(comps) < 4 or not comps[0]:
        raise ValueError(f"not a CX identifier 'id^^^&OID&ISO': {value!r}")
    sub = comps[3].split("&")
    if len(sub) < 3 or not sub[1] or sub[2] != "ISO":
        raise ValueError(f"CX assigning authority must be '&OID&ISO': {value!r}")
    return unesc(comps[0]), sub[1], comps[4] if len(comps) > 4 else ""


def xcn(
    id_value: str,
    authority_oid: str,
    family: str = "",
    given: str = "",
    prefix: str = "",
    id_type: str = "IDNPS",
) -> str:
    """XCN: `id^family^given^^^prefix^^^&OID&ISO^D^^^type` (author, legalAuthenticator)."""
    comps = [""] * 13
    comps[0] = esc(id_value)
    comps[1] = esc(family)
    comps[2] = esc(given)
    comps[5] = esc(prefix)
    if id_value:
        comps[8] = f"&{authority_oid}&ISO"
        comps[9] = "D"
        comps[12] = id_type
    return "^".join(comps).rstrip("^")


def xon(name: str, id_value: str = "", authority_oid: str = "", id_type: str = "IDNST") -> str:
    """XON: `name^^^^^&OID&ISO^type^^^id` (authorInstitution)."""
    if not id_value:
        return esc(name)
    return f"{esc(name)}^^^^^&{authority_oid}&ISO^{id_type}^^^{esc(id_value)}"


_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$")


def hl7_ts_to_utc(value: str) -> str:
    """An HL7 v3 TS (`YYYYMMDDHHMMSS+ZZZZ`, any precision) as XDS DTM in UTC.

    XDS requires UTC (ITI TF-3 §4.2.3.1.7 DTM); a CDA time with an offset is shifted, one
    without offset is taken as already UTC. The precision of the input is kept: a date stays
    a date, and then no shift applies.
    """
    m = _TS.match(value.strip())
    if not m:
        raise ValueError(f"not an HL7 timestamp: {value!r}")
    year, month, day, hour, minute, second, offset = m.groups()
    if hour is None or offset is None:
        return "".join(p for p in (year, month, day, hour, minute, second) if p)
    sign = 1 if offset[0] == "+" else -1
    tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    local = datetime(
        int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0), tzinfo=tz
    )
    utc = local.astimezone(UTC)
    fmt = "%Y%m%d%H%M%S" if second else ("%Y%m%d%H%M" if minute else "%Y%m%d%H")
    return utc.strftime(fmt)


def utc_dtm(moment: datetime) -> str:
    """A timezone-aware datetime as XDS DTM (`YYYYMMDDHHMMSS`, UTC)."""
    if moment.tzinfo is None:
        raise ValueError("XDS times need a timezone-aware datetime")
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")
