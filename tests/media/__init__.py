"""Camera ingest and video to viewers: a real gst-rtsp-server, the ONVIF simulator, aiortc peers, coturn."""
