"""Sightline's pages (admin panel, police viewer, auditor console): templates and static
files only, served by the gateway. Nothing here touches storage."""
