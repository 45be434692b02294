"""Strict stand-ins for the DMP and MSSanté, for demos (`make run`) and tests.

Strict means they refuse what the real services would refuse, with the same kind of
error, so that a green test says something about production.
"""
