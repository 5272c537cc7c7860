#!powershell
# Copyright: patchctl contributors
# Apache License 2.0 (see the LICENSE file of the patchctl project)
#
# Documentation: patch_win_update_info.py. Read-only: never installs, hides or changes anything.
# NOT RUN ON A REAL WINDOWS HOST YET (none is available to the project's CI): see the README.

#AnsibleRequires -CSharpUtil Ansible.Basic

$spec = @{
    options = @{
        search = @{ type = 'bool'; default = $true }
        server_selection = @{ type = 'str'; choices = 'default', 'managed_server', 'windows_update'; default = 'default' }
        history_count = @{ type = 'int'; default = 200 }
        applications = @{ type = 'bool'; default = $true }
    }
    supports_check_mode = $true
}
$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$module.Result.changed = $false

$info = [Ordered]@{
    schema = 1
    os = @{}
    reboot_pending = $false
    reboot_pending_sources = @()
    chocolatey = @{ present = $false; path = $null }
    updates = @{}
    installed = @()
    applications = @()
}

# --- the operating system --------------------------------------------------------------------
try {
    $os = Get-CimInstance -ClassName Win32_OperatingSystem -ErrorAction Stop
    $info.os = @{
        family = 'Windows'
        distribution = $os.Caption.Trim()
        version = $os.Version
        build = $os.BuildNumber
        product_type = switch ($os.ProductType) { 1 { 'client' } 2 { 'domain_controller' } 3 { 'server' } default { 'unknown' } }
    }
}
catch {
    $module.Warn("Cannot read Win32_OperatingSystem: $($_.Exception.Message)")
    $info.os = @{ family = 'Windows' }
}

# --- pending reboot: Windows Update, component servicing, file renames ------------------------
$sources = [System.Collections.Generic.List[String]]@()
if (Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired') {
    $sources.Add('windows_update')
}
if (Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending') {
    $sources.Add('component_based_servicing')
}
$renames = Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager' `
    -Name PendingFileRenameOperations -ErrorAction SilentlyContinue
if ($renames -and $renames.PendingFileRenameOperations) {
    $sources.Add('pending_file_rename')
}
$info.reboot_pending = $sources.Count -gt 0
$info.reboot_pending_sources = @($sources)

# --- Chocolatey --------------------------------------------------------------------------------
$choco = Get-Command -Name choco.exe -CommandType Application -ErrorAction SilentlyContinue -TotalCount 1
if (-not $choco) {
    $chocoDir = if ($env:ChocolateyInstall) { $env:ChocolateyInstall } else { "$env:SYSTEMDRIVE\ProgramData\Chocolatey" }
    $choco = Get-Command -Name "$chocoDir\bin\choco.exe" -CommandType Application -ErrorAction SilentlyContinue
}
if ($choco) {
    $info.chocolatey = @{ present = $true; path = $choco.Path }
}

# --- applications from the Uninstall registry keys ---------------------------------------------
# HKLM's 64-bit view, its 32-bit view (WOW6432Node: absent on 32-bit Windows) and HKCU (the
# account the module runs as). Every key with a DisplayName; patchctl matches them to its catalog.
Function Get-RegistryValue {
    # A value of Get-ItemProperty's result, $null when the key has none: modules run under
    # Set-StrictMode, where reading a property the object lacks throws.
    param($Properties, [String]$Name)
    $property = $Properties.PSObject.Properties[$Name]
    if ($property) {
        $property.Value
    }
    else {
        $null
    }
}

if ($module.Params.applications) {
    $uninstallKeys = @(
        @{ hive = 'HKLM'; view = '64'; path = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall' },
        @{ hive = 'HKLM'; view = '32'; path = 'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall' },
        @{ hive = 'HKCU'; view = 'user'; path = 'HKCU:\Software\Microsoft\Windows\CurrentVersion\Uninstall' }
    )
    $applications = [System.Collections.Generic.List[Hashtable]]@()
    foreach ($location in $uninstallKeys) {
        if (-not (Test-Path -LiteralPath $location.path)) {
            continue
        }
        foreach ($key in (Get-ChildItem -LiteralPath $location.path -ErrorAction SilentlyContinue)) {
            $props = Get-ItemProperty -LiteralPath $key.PSPath -ErrorAction SilentlyContinue
            if (-not $props) {
                continue
            }
            $displayName = Get-RegistryValue -Properties $props -Name 'DisplayName'
            if (-not $displayName) {
                continue
            }
            $displayVersion = Get-RegistryValue -Properties $props -Name 'DisplayVersion'
            $publisher = Get-RegistryValue -Properties $props -Name 'Publisher'
            $installLocation = Get-RegistryValue -Properties $props -Name 'InstallLocation'
            $applications.Add(@{
                    display_name = [String]$displayName
                    display_version = $displayVersion
                    publisher = $publisher
                    install_location = $installLocation
                    hive = $location.hive
                    view = $location.view
                    key = $key.PSChildName
                })
        }
    }
    $info.applications = @($applications)
}

# --- Windows Update Agent: what win_updates does not return ----------------------------------
if ($module.Params.search) {
    try {
        $session = New-Object -ComObject Microsoft.Update.Session
        $session.ClientApplicationID = 'patchctl'
        $searcher = $session.CreateUpdateSearcher()
        $searcher.ServerSelection = switch ($module.Params.server_selection) {
            'managed_server' { 1 }
            'windows_update' { 2 }
            default { 0 }
        }
        $found = $searcher.Search('IsInstalled = 0')
        foreach ($update in $found.Updates) {
            $behavior = switch ($update.InstallationBehavior.RebootBehavior) {
                0 { 'NeverReboots' }
                1 { 'AlwaysRequiresReboot' }
                2 { 'CanRequestReboot' }
                default { "Unknown $($update.InstallationBehavior.RebootBehavior)" }
            }
            $changed = $null
            if ($update.LastDeploymentChangeTime) {
                $changed = ([DateTime]$update.LastDeploymentChangeTime).ToUniversalTime().ToString('o')
            }
            $info.updates[$update.Identity.UpdateID] = @{
                id = $update.Identity.UpdateID
                revision = [int]$update.Identity.RevisionNumber
                title = $update.Title
                msrc_severity = $update.MsrcSeverity
                last_deployment_change_time = $changed
                cve_ids = @($update.CveIDs | ForEach-Object { [String]$_ })
                security_bulletin_ids = @($update.SecurityBulletinIDs | ForEach-Object { [String]$_ })
                kb = @($update.KBArticleIDs | ForEach-Object { "KB$_" })
                reboot_behavior = $behavior
                browse_only = [bool]$update.BrowseOnly
                is_hidden = [bool]$update.IsHidden
            }
        }

        $count = $searcher.GetTotalHistoryCount()
        $take = [Math]::Min($count, $module.Params.history_count)
        if ($take -gt 0) {
            $history = $searcher.QueryHistory(0, $take)
            $installed = [System.Collections.Generic.List[Hashtable]]@()
            foreach ($entry in $history) {
                # Operation 1 = installation, ResultCode 2 = succeeded (3 = succeeded with errors)
                if ($entry.Operation -eq 1 -and $entry.ResultCode -in @(2, 3)) {
                    $installed.Add(@{
                            id = $entry.UpdateIdentity.UpdateID
                            revision = [int]$entry.UpdateIdentity.RevisionNumber
                            title = $entry.Title
                            date = ([DateTime]$entry.Date).ToUniversalTime().ToString('o')
                        })
                }
            }
            $info.installed = @($installed)
        }
    }
    catch {
        $hresult = $_.Exception.HResult
        # Formatted on its own: inside FailJson's parentheses a comma would separate arguments.
        $message = ("Windows Update Agent search failed (HRESULT 0x{0:X8}): {1}. Over WinRM/PSRP a " +
            "search may need become (runas SYSTEM)") -f $hresult, $_.Exception.Message
        $module.FailJson($message, $_)
    }
}

$module.Result.patchctl_win_info = $info
$module.ExitJson()
