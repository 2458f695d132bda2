"""Vendors, annotators, queues, guidelines and append-only label versions."""
