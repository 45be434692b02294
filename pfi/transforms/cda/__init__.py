"""CI-SIS CDA R2 documents: building them and checking them against the official kit."""
