"""Segue web side: pages, JSON API and event streams. Never imports torch or diffusers."""
