"""Sending one file to one connector job: sign-in (auth), the HTTPS session (https), the ingestion client with its
retries (ingestion), checkpoints (checkpoint), the per-file step both `upload` and `run` use (upload), and the
sign-in settings shared by the commands that sign in (settings)."""
