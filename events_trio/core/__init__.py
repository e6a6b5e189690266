"""The dependency-free core: wire types, the broadcast channel, the buffer, waiting."""
