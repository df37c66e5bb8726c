"""Recording producers to files (main process): a plain transport on loopback feeds a recorder thread
that depacketizes RTP and muxes WebM/Matroska with PyAV (see docs/architecture.md)."""
