"""TURN for clients behind strict firewalls (RFC 8656): settings, per-peer credentials, coturn.

Switchyard does not relay TURN itself: `switchyard serve` starts and supervises coturn when
`SWITCHYARD_TURN=coturn` (or hands out the URLs of a TURN server run elsewhere with
`SWITCHYARD_TURN=external`), and mints short-lived credentials for each peer with the shared secret
(the TURN REST API convention, which coturn's `use-auth-secret` checks). docs/architecture.md says why.
"""
