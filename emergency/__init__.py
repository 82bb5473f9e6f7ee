"""Sightline's domain: emergencies, the grants they produce, and the audit log.

Plain Python with an injectable clock; nothing here knows about HTTP or WebRTC.
"""
