"""The hub: where every node of the mesh meets (HubService, hosted in the core)."""
