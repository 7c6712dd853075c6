"""Small shared helpers (atomic file output, logging set-up)."""
