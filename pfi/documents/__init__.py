"""Documents: CDA documents received (transmission volet) or built (CR-BIO), versioned,
validated and published for routing. The stage is `pfi.documents.stage.DocumentsStage`."""
