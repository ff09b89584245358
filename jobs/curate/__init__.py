"""Curation: bronze events normalized into one schema and sessionized into silver calls."""
