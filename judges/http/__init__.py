"""The HTTP side every hosted or served judge shares: how a failure is read (status), how a
request travels (transport), and the judge loop over them (judge)."""
