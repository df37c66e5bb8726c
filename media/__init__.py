"""The media engine, in mediasoup's two halves.

- `media.api`: the objects the main process holds (Worker > Router > Transport >
  Producer/Consumer). They keep no packet state and talk to a worker only through
  `media.channel`.
- `media.engine`: the worker process that answers them and owns the Cython packet
  path (`fastpath`).
- `media.ortc`: mediasoup's ORTC rules (capabilities, codec matching, consumer
  parameters), used by both halves.
"""
