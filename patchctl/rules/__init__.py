"""The domain rules, pure: no I/O, no click, no Ansible runner, no store."""
