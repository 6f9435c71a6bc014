"""Request bodies, one module per dialect; shared field types in ``common``."""
