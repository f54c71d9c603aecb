"""The REST API face: ``serve`` wires ``app.create_app`` over the same verbs as the CLI."""
