"""The HTTP contract both processes speak, without a web framework."""
