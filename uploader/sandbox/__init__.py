"""A local stand-in for Entra ID's token endpoint and the Purview HR connector ingestion API.

Runs on loopback TLS with its own CA (`python -m uploader sandbox`). Modules, one job each:
`tls` (CA and server certificate), `state` (registrations, tokens, faults, counters),
`entra` (OpenID configuration and the token endpoint), `ingestion` (`POST /api/signals`),
`control` (`/_sandbox/...` test API), `server` (HTTP routing), `cli` (the subcommand),
`client` (start a sandbox process and drive its control API from tests and the demo).
"""
