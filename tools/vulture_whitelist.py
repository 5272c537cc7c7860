"""Names vulture (``make lint``) cannot see used, each with the reason it is not dead code.

Click commands, SQLAlchemy event listeners and pytest fixtures are found by their decorators
(``[tool.vulture] ignore_decorators`` in pyproject.toml) and Alembic's revision variables by name
(``ignore_names``); what is left is here. A name used by a framework through a protocol goes here,
never a name nothing uses: delete that instead.
"""

# ruff: noqa: B018, F821 - bare names, defined nowhere here, are what vulture reads as uses

# http.server and socketserver call these by name (the lab's supervisor).
log_message  # BaseHTTPRequestHandler.log_message, silenced
daemon_threads  # ThreadingMixIn: handler threads end with the supervisor

# SQLAlchemy TypeDecorator protocol (store/schema.py: UTCDateTime, JSON text types).
impl
cache_ok
process_result_value

# DBAPI connection attributes set for SQLite (store/engine.py, store/fastread.py).
isolation_level
row_factory

# PEP 562 module __getattr__ (patchctl/store/__init__.py: lazy names).
__getattr__

# Dataclass fields read through dataclasses.asdict() into --json documents.
repository  # lab/publish.py PublishResult
help  # config.py _Key: the text of each key, kept beside its definition (module docstring lists it)

# Value sets that name a field's possible values where the field is declared ("one of ...").
SOURCES  # rules/model.py: Update.source
RECORDED_STATES  # rules/waves.py: WaveRecord.state
POLICY_STATES  # rules/policy.py: Evaluation.state
HOST_UPDATE_STATES  # store/schema.py: host_updates.status
CHOCO_ACTIONS  # rules/normalize_windows.py: the module names of a Chocolatey install result

# SQL views declared in the schema's metadata (store/schema.py) for docs/schema.md and the
# schema tests; the views themselves are created by the migrations.
v_update_decisions
v_wave_progress
v_host_exposure  # read with plain SQL by store/reports.py exposures() (the fast report path has no SQLAlchemy)

# Ansible's ActionBase reads these of the connection it is given and calls the override
# (tests/contract/replay.py: the real win_updates action plugin on recorded module output).
tmpdir
transport
_execute_module

# io.RawIOBase protocol: io.BufferedReader calls these (ansible/streaming.py: SpoolStream).
readable
readinto
