<#
.SYNOPSIS
  Remove qwen-tray installed by install.ps1: start at login, the Start-menu shortcut, the venv and the demo model.
  Asks before deleting models and settings (in the same folder); -Purge deletes them without asking,
  -KeepData keeps them without asking. Without a console to ask in, they are kept and the folder is named.

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File "$env:LOCALAPPDATA\qwen-tray\uninstall.ps1"
#>
[CmdletBinding()]
param(
    [switch]$Purge,
    [switch]$KeepData,
    [string]$InstallDir = (Join-Path $env:LOCALAPPDATA "qwen-tray")
)
# Not "Stop": Windows PowerShell 5.1 turns a native program's redirected stderr (pip warnings, `2>$null`)
# into terminating errors under "Stop". Exit codes are checked after every native command instead.
$ErrorActionPreference = "Continue"
Set-StrictMode -Version 3

function Say([string]$Text) { Write-Host "==> $Text" }

$vpy = Join-Path $InstallDir "venv\Scripts\python.exe"
if (Test-Path $vpy) {
    Say "stopping qwen-tray if it runs"
    & $vpy -m daemon stop 2>$null | Out-Null
    Say "removing start at login"
    & $vpy -m daemon autostart off | Out-Null
}
# The same value `qwen-tray autostart` writes (daemon/autostart/windows.py), removed directly in case Python is gone.
Remove-ItemProperty -Path "HKCU:\Software\Microsoft\Windows\CurrentVersion\Run" -Name "qwen-tray" -ErrorAction SilentlyContinue
Remove-ItemProperty -Path "HKCU:\Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run" `
    -Name "qwen-tray" -ErrorAction SilentlyContinue

$lnk = Join-Path ([Environment]::GetFolderPath("Programs")) "qwen-tray.lnk"
if (Test-Path $lnk) { Remove-Item -Force $lnk }

Say "removing the program from $InstallDir"
foreach ($part in "venv", "demo-model", "Cache", "Logs", "uninstall.ps1") {
    # Cache and Logs: platformdirs' compile cache and log folders on Windows; worth nothing without the program.
    $p = Join-Path $InstallDir $part
    if (Test-Path $p) { Remove-Item -Recurse -Force $p }
}
$runtime = Join-Path $env:LOCALAPPDATA "Temp\qwen-tray"  # platformdirs user_runtime_dir
if (Test-Path $runtime) { Remove-Item -Recurse -Force $runtime -ErrorAction SilentlyContinue }

# What is left in the folder is yours: models\ and config.toml.
$left = @(Get-ChildItem -Force $InstallDir -ErrorAction SilentlyContinue)
if ($left.Count -eq 0) {
    if (Test-Path $InstallDir) { Remove-Item -Force $InstallDir }
    Say "qwen-tray is uninstalled"
    exit 0
}
$delete = $Purge
if (-not $Purge -and -not $KeepData -and [Environment]::UserInteractive -and -not [Console]::IsInputRedirected) {
    Write-Host "Your models and settings are in $InstallDir :"
    $left | ForEach-Object { Write-Host "    $($_.Name)" }
    $answer = Read-Host "Delete them too? [y/N]"
    $delete = $answer -match '^[yY]'
}
if ($delete) {
    Remove-Item -Recurse -Force $InstallDir
    Say "qwen-tray is uninstalled, models and settings deleted"
} else {
    Say "qwen-tray is uninstalled"
    Write-Host "Kept your models and settings in $InstallDir (run this again with -Purge to delete them)"
}
