"""The domain alone (emergency/): no servers, no sockets, no sleeping; the fast loop (`scripts/test -m domain`)."""
