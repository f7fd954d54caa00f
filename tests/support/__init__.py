"""Helpers the tests share: item factories (items.py), runs through the loopback server and
simulated finished runs (runs.py), the `rmb run` command line (commands.py), and the
OpenAI/Anthropic test server (loopback_server.py)."""
