"""Bounds both halves of the media engine, and the layers above them, check the same way."""

# bits/s a publisher is told it may send on one transport unless configured otherwise
DEFAULT_MAX_INCOMING_BITRATE = 10_000_000
# the worker keeps a transport's incoming ceiling in 32 bits
MAX_INCOMING_BITRATE = 4_000_000_000
