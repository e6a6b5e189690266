"""events-trio: pipeline notifications from many project servers to one chat channel."""
