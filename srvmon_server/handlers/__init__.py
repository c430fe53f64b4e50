"""Tornado request handlers, one module per resource. They translate HTTP to calls on the
storage gateway, the alerting service and the SSE hub, and write what pure functions return.
"""
