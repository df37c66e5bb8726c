"""The packet path in Cython, one module per stage.

socket, demux, SRTP, RTP, rewrite, RTCP, codecs and estimate are the building blocks; the Forwarder
that uses them is one object built up stage by stage as a chain of classes, one module each, base
to top: state < fanout < feedback < receive < layers < route (see route.pyx).

Only packet-path code lives here; the objects that control it are in `media`.
"""
