"""gRPC plumbing shared by every server: serving, auth, errors, client channels."""
