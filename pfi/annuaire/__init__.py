"""The MSSanté annuaire in the store: importing the ANS extract, looking professionals up.

Routing resolves a built report's prescriber and copies (RPPS) to their mailboxes here;
see docs/MSSANTE.md ("Annuaire").
"""

from pfi.annuaire.importer import ImportReport, import_annuaire
from pfi.annuaire.lookup import AnnuaireMailboxRow, ProfessionalRow, find_professional

__all__ = [
    "AnnuaireMailboxRow",
    "ImportReport",
    "ProfessionalRow",
    "find_professional",
    "import_annuaire",
]
