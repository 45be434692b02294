"""Delivery: the ledger's pending rows leave for their destinations (DMP, MSSanté).

`sender` is the contract between the delivery stage (retries, backoff, circuit breaker,
dead letters, metrics) and each destination's adapter, which only does its I/O.
`mss_readback` brings the MSSanté reports (DSN, MDN, oppositions) back into the ledger.
"""
