"""The adapter to Ansible: the only package that starts it (runner, nodes, inventory, the fleet split)."""
