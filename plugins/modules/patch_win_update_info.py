#!/usr/bin/python
# Copyright: patchctl contributors
# Apache License 2.0 (see the LICENSE file of the patchctl project)
#
# Documentation only: the module is patch_win_update_info.ps1, run on Windows hosts.

DOCUMENTATION = r"""
---
module: patch_win_update_info
short_description: What ansible.windows.win_updates does not say about missing Windows updates
description:
  - Read-only companion of M(ansible.windows.win_updates) in the C(patch_scan_windows) role.
  - Asks the Windows Update Agent, for every update that is not installed, the revision number,
    C(MsrcSeverity), CVE ids, security bulletin ids, reboot behaviour and
    C(LastDeploymentChangeTime) (the release date), none of which win_updates returns.
  - Also reports the operating system, whether a reboot is pending (Windows Update,
    component based servicing, pending file renames), whether Chocolatey is installed, and the
    updates the WUA history shows as installed (so a rescan can tell installed from gone).
  - Lists the applications of the Uninstall registry keys (HKLM's 64-bit and 32-bit views, and
    HKCU, the hive of the account the module runs as) with their C(DisplayName), C(DisplayVersion),
    C(Publisher) and C(InstallLocation); patchctl matches them to its application catalog.
  - Never installs, hides or changes anything; C(changed) is always false.
  - Not yet run against a real Windows host by the patchctl project (none is available to its
    CI); its result shape is covered by contract tests only.
version_added: "0.1.0"
author:
  - patchctl contributors
options:
  search:
    description:
      - Query the Windows Update Agent for the update details. Without it only the OS, reboot
        and Chocolatey facts are returned (fast).
    type: bool
    default: true
  server_selection:
    description: The update source, as in M(ansible.windows.win_updates).
    type: str
    choices: [default, managed_server, windows_update]
    default: default
  history_count:
    description: How many of the newest WUA history entries to read for C(installed).
    type: int
    default: 200
  applications:
    description: Read the Uninstall registry keys for C(applications).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
  platform:
    platforms: windows
notes:
  - A Windows Update search over WinRM or PSRP can fail with access denied on some hosts; run
    the task with C(become) (C(runas), C(SYSTEM)) then.
  - When the search fails, the module fails with C(msg) naming the HRESULT (C(0x) and eight hex
    digits), the Windows Update Agent's message and this hint.
"""

EXAMPLES = r"""
- name: Update details for the policy
  patch_win_update_info:
  register: __info

- name: Only OS, pending reboot and Chocolatey presence
  patch_win_update_info:
    search: false
"""

RETURN = r"""
patchctl_win_info:
  description: What the module found.
  returned: success
  type: dict
  contains:
    schema:
      description: Version of this result shape.
      type: int
      sample: 1
    os:
      description: From C(Win32_OperatingSystem).
      type: dict
      sample: {family: Windows, distribution: Microsoft Windows Server 2019 Standard,
               version: 10.0.17763, build: "17763", product_type: server}
    reboot_pending:
      description: Whether any pending-reboot marker is set.
      type: bool
    reboot_pending_sources:
      description: Which markers are set.
      type: list
      elements: str
      sample: [windows_update, pending_file_rename]
    chocolatey:
      description: Whether C(choco.exe) was found, and where.
      type: dict
      sample: {present: true, path: C:\ProgramData\chocolatey\bin\choco.exe}
    updates:
      description: Not-installed updates by update id (empty when O(search=false)).
      type: dict
      sample:
        74819184-828b-4f97-bb4b-089a0c58e366:
          id: 74819184-828b-4f97-bb4b-089a0c58e366
          revision: 1
          title: 2021-05 Cumulative Update for Windows Server 2019 (1809) for x64-based Systems (KB5003171)
          msrc_severity: Critical
          last_deployment_change_time: "2021-05-11T00:00:00.0000000Z"
          cve_ids: [CVE-2021-31166]
          security_bulletin_ids: []
          kb: [KB5003171]
          reboot_behavior: CanRequestReboot
          browse_only: false
          is_hidden: false
    applications:
      description:
        - Every Uninstall registry key with a C(DisplayName) (empty when O(applications=false)).
        - C(hive) is C(HKLM) with C(view) C(64) or C(32), or C(HKCU) with C(view) C(user);
          C(key) is the key's name (often the MSI product code).
      type: list
      elements: dict
      sample:
        - display_name: Google Chrome
          display_version: 120.0.6099.130
          publisher: Google LLC
          install_location: 'C:\Program Files\Google\Chrome\Application'
          hive: HKLM
          view: "64"
          key: Google Chrome
    installed:
      description: Successful installations in the WUA history (newest O(history_count) entries).
      type: list
      elements: dict
      sample: [{id: 5dae3a9d-4f41-445c-83f6-15fb4534e936, revision: 200,
                title: Security Intelligence Update for Microsoft Defender Antivirus - KB2267602 (Version 1.341.8.0),
                date: "2021-05-20T10:00:00.0000000Z"}]
"""
