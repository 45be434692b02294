"""PFI: hospital integration engine for the French Ségur "plateforme d'intermédiation".

HL7 v2 comes in over MLLP, CI-SIS CDA documents go out to the DMP and MSSanté; every
stage is a Kafka consumer group and the SQL store is the system of record.
"""

__version__ = "0.1.0"
