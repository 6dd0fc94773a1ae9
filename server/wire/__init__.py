"""What both sides of the mesh's edge share: the Gateway envelope builders and the hub attachment.

Plumbing, not a domain: the hub (which routes envelopes) and the bridge (a client of the mesh
that speaks the Gateway protocol over WebSocket) both build envelopes and attach nodes, and
neither may import the other's internals. Only the stubs (peromesh.*) and grpc below this.
"""
