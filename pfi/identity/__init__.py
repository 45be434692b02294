"""Patient identity: INS, PID-32 identity status, identifiers per authority, merges."""
