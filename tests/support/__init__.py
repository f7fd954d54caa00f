"""Helpers the tests share: item factories (items.py), runs through the loopback server and
simulated finished runs (runs.py), the `rmb run` command line (commands.py), the
OpenAI/Anthropic test server (loopback_server.py), and several crashable servers of one model
for the multi-server judge (server_fleet.py)."""
