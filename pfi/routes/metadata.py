"""The sender's MetaDMPMSS OBX (CI-SIS volet "Transmission de document(s) CDA en HL7 v2").

The volet lists, in OBX-3.1 of the MetaDMPMSS coding system, the restriction and
destination metadata a sending system sets when the biologist / radiologist validates:

- MASQUE_PS: masked to health professionals in the DMP; such a document "ne doit pas
  faire l'objet d'un échange entre PS au travers de la MSSanté".
- INVISIBLE_PATIENT: not visible to the patient; "ne doit pas être envoyé au patient par
  MSSanté".
- INVISIBLE_REP_LEGAUX: not visible to the patient's legal representatives (the DMP code
  is INVISIBLE_REPRESENTANTS_LEGAUX, JDV_J08, system 1.2.250.1.213.1.1.4.13).
- CONNEXION_SECRETE: the DMP transaction uses "connexion secrète" (VIHF attribute).
- MODIF_CONF_CODE: the message updates the confidentiality (masking) of a document
  already shared, rather than sending new content.
- DESTDMP, DESTMSSANTEPS, DESTMSSANTEPAT: send to the DMP / to professionals (PRT RCT
  addresses) / to the patient.
- ACK_RECEPTION (optional): DMP and MSSanté delivery acknowledgements wanted (ZAM).
- ACK_LECTURE_MSS (optional): MSSanté read acknowledgements wanted.
- CORPSMAIL_PS, CORPSMAIL_PATIENT (optional, ED): the mail body for professionals / for
  the patient; without them the GESTIONNAIRE supplies a default body for a replacement or
  a deletion.

All Y/N values are HL7 table 0136. The first eight are required by the volet; the
documents stage rejects a message missing them, so routing sees either all of them or a
message without MetaDMPMSS at all (way b: PFI built the CDA from a plain lab ORU).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pfi.transforms.cda.transmission import TEXT_METADATA as TEXT
from pfi.transforms.cda.transmission import YES_NO_METADATA as YES_NO

KNOWN = frozenset(YES_NO + TEXT)

#: HL7 MetaDMPMSS name -> DMP (JDV_J08) confidentialityCode for the masking flags.
MASKING_HL7_TO_XDS = {
    "MASQUE_PS": "MASQUE_PS",
    "INVISIBLE_PATIENT": "INVISIBLE_PATIENT",
    "INVISIBLE_REP_LEGAUX": "INVISIBLE_REPRESENTANTS_LEGAUX",
}


@dataclass(frozen=True, slots=True)
class SenderMetadata:
    """MetaDMPMSS values as the sender set them: Y/N flags as booleans, texts as sent.

    A flag the message did not carry is absent from `flags` (None from `flag()`), so that
    "the sender said N" and "the sender said nothing" stay different.
    """

    flags: Mapping[str, bool]
    texts: Mapping[str, str]
    unknown: tuple[str, ...] = ()

    @classmethod
    def parse(cls, values: Mapping[str, str]) -> SenderMetadata:
        """From OBX-3.1 -> OBX-5 strings; `ValueError` names a flag that is not Y or N."""
        flags: dict[str, bool] = {}
        texts: dict[str, str] = {}
        unknown: list[str] = []
        for raw_name, raw_value in values.items():
            name = raw_name.strip().upper()
            if name in YES_NO:
                value = raw_value.strip().upper()
                if value not in ("Y", "N"):
                    raise ValueError(
                        f"MetaDMPMSS {name}: expected Y or N (HL7 table 0136), got {raw_value!r}"
                    )
                flags[name] = value == "Y"
            elif name in TEXT:
                texts[name] = raw_value
            else:
                unknown.append(raw_name)
        return cls(flags, texts, tuple(sorted(unknown)))

    def flag(self, name: str) -> bool | None:
        return self.flags.get(name)

    def says_yes(self, name: str) -> bool:
        return self.flags.get(name) is True

    def says_no(self, name: str) -> bool:
        return self.flags.get(name) is False

    def text(self, name: str) -> str | None:
        value = self.texts.get(name)
        return value if value is not None and value.strip() else None
