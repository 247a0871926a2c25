"""Small shared helpers: atomic file writes, seeding."""
from gssf.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text, atomic_path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text"]
