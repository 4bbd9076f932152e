"""World-scale runs: a shard plan, its shards built one `build` each, the pyramid above, and the
workers."""
