"""Several nodes: shared PostgreSQL, Redis sign-in sessions, camera leases, cross-node revocation."""
