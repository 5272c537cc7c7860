"""The local lab: real Debian hosts on this machine for tests and the demo."""
