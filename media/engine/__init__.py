"""The worker process's side of the media engine: the objects that own packet state.

The main process holds API objects (media.api.router, .transport, .producer,
.consumer) that only send requests; the objects here answer them and drive
the Cython Forwarder, as mediasoup's C++ worker does for its Node API.
"""
