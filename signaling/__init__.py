"""Socket.IO signaling: the contract of PROTOCOL.md §3 over python-socketio, driving the media engine."""
