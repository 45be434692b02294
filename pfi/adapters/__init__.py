"""The edges: the only code that talks to the outside world.

mllp (HL7 in/out), dmp (IHE XDS.b over SOAP/MTOM), mssante (SMTP out, IMAP in), file.
Adapters turn bytes on a wire into domain values and back; they hold no business rules.
"""
