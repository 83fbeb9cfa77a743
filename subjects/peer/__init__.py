"""The reference subject: a Tribler-like peer (REST API, SQLite, background sync)."""
