"""Documents received by MSSanté: kept, matched to a patient, handed to the DPI.

`service.InboundIntegrator` polls the application mailbox and integrates; `worklist`
holds the operator's acts on what could not be integrated (the KO worklist);
`runner.InboundRunner` polls periodically in the engine.
"""
