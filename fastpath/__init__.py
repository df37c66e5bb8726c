"""The packet path in Cython, one module per stage (socket, demux, SRTP, RTP, route, rewrite, RTCP, estimate).

Only packet-path code lives here; the objects that control it are in `media`.
"""
