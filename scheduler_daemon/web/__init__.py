"""The web console: server-rendered pages over the same verbs as the CLI and the API."""
