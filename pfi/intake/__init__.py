"""Intake: the front door. Read, decide, store durably, then acknowledge.

Nothing is ACKed AA before the raw message and its outbox record are committed; nothing
received is dropped, accepted or not.
"""
