"""Local stand-ins for Klaviyo and the helpdesks: the ground the tests, the demo and the benchmarks stand on.

Each sandbox is a small Flask app with its own factory that behaves like the real API
(status codes, error bodies, rate limits), plus `/sandbox/...` control routes to seed data,
inject faults and read back what it received.
"""
