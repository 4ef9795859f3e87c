"""shardkit's command line (import name ``shardkit_cli``): parse, call one library function, print."""
