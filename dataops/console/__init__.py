"""The operations console: server-rendered pages for people, on the same services as /v1."""
