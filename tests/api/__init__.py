"""The HTTP service and the CLI end to end on one node: routes, guards, sign-in, records, exports."""
