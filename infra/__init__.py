"""Segue's infrastructure, shared by the web app and the workers: settings, database and tables, frame store
(bytes and paths, never HTTP responses), event bus, render queue and worker heartbeats. No web code."""
