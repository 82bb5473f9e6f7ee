"""Video to viewers: WHEP/aiortc peer sessions, their registry, ICE servers, camera ownership leases."""
