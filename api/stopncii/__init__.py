"""The StopNCII-compatible routes and the wire format they speak."""
