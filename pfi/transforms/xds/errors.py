"""Errors raised while building or reading XDS metadata.

Every error names the XDS attribute at fault and, for a value-set failure, the code and the
value set, so that an ops person reading the dead-letter reason knows what to fix where.
"""

from __future__ import annotations


class XdsError(ValueError):
    """Base of the XDS errors: something in the input cannot become valid XDS."""


class XdsMetadataError(XdsError):
    """A metadata attribute cannot be derived from the CDA or the submission context."""

    def __init__(self, attribute: str, problem: str) -> None:
        self.attribute = attribute
        self.problem = problem
        super().__init__(f"{attribute}: {problem}")


class XdsValueSetError(XdsMetadataError):
    """A code is not in the value set the CI-SIS binds to that attribute."""

    def __init__(self, attribute: str, code: str, code_system: str, value_set: str) -> None:
        self.code = code
        self.code_system = code_system
        self.value_set = value_set
        super().__init__(
            attribute,
            f"code {code!r} (codeSystem {code_system or '?'}) is not in value set {value_set}",
        )


class MtomError(XdsError):
    """A multipart/related (MTOM/XOP) message is malformed."""


class SoapError(XdsError):
    """A SOAP envelope is malformed or lacks a required header/body element."""
