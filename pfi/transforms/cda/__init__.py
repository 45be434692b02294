"""CI-SIS CDA R2 documents: building (CR-BIO, CR-IMG), reading (transmission volet), PDF,
and checking them against the official validation kit."""
