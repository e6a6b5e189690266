"""Where events come from: the pipeline watcher, ingest decoding, the emit client."""
