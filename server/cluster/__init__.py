"""Redis plumbing that makes several cores one mesh (`--cluster-url redis://host:port/db`).

`presence` keeps each core's attached nodes in Redis with expiry; `bus` carries envelopes
between cores (one pub/sub channel per core, one for broadcasts, one for node changes);
`hub_link` ties both to a Hub so routing, capabilities and Invoke span every core.
"""
