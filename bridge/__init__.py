"""The Gateway bridge: WebSocket clients (browsers, Electron) to the gRPC mesh."""
