"""Token engines: one protocol (``Engine``), three implementations."""
