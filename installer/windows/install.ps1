<#
.SYNOPSIS
  Install qwen-tray for the current user, without admin rights (the route without the Setup .exe).

.DESCRIPTION
  1. finds Python 3.10 or newer (the py launcher, then python on PATH),
  2. creates a venv in %LOCALAPPDATA%\qwen-tray\venv and pip-installs qwen-tray into it,
  3. copies the tiny demo model next to it (answers are noise, but everything works before the real model is there),
  4. adds a Start-menu shortcut,
  5. pulls the model (qwen-tray model pull: download + int4 export, several GB) unless -NoModel,
  6. registers start at login (HKCU Run key, via `qwen-tray autostart on`) if -Autostart,
  7. starts the tray unless -NoStart.
  Everything with logic in it is a `qwen-tray` command, written and tested in Python; this script only strings them together.
  The Inno Setup installer (qwen-tray.iss) runs this script with -InstallDir, -Source, -NoModel and -NoStart.

.EXAMPLE
  powershell -ExecutionPolicy Bypass -File installer\windows\install.ps1 -Autostart
#>
[CmdletBinding()]
param(
    [switch]$Autostart,      # start the tray at login
    [switch]$Headless,       # with -Autostart: start the service without tray or hotkey at login
    [switch]$NoModel,        # skip `qwen-tray model pull`
    [switch]$NoStart,        # do not start the tray at the end
    [switch]$NoShortcut,     # no Start-menu shortcut (the Inno installer makes its own)
    [string]$Python = "",    # a python.exe to use instead of searching
    [string]$InstallDir = (Join-Path $env:LOCALAPPDATA "qwen-tray"),
    [string]$Source = ""     # a qwen-tray source folder or wheel; default: the source tree holding this script
)
# Not "Stop": Windows PowerShell 5.1 turns a native program's redirected stderr (pip warnings, `2>$null`)
# into terminating errors under "Stop". Exit codes are checked after every native command instead.
$ErrorActionPreference = "Continue"
Set-StrictMode -Version 3

function Say([string]$Text) { Write-Host "==> $Text" }
function Fail([string]$Text) { Write-Host "qwen-tray install: error: $Text" -ForegroundColor Red; exit 1 }

function Find-Python {
    # Each candidate is a command plus arguments; the first that reports 3.10+ wins. The Microsoft Store
    # "python" alias that only opens the Store exits non-zero, so it is skipped.
    $candidates = @()
    if ($Python) { $candidates += , @($Python) }
    if (Get-Command py.exe -ErrorAction SilentlyContinue) { $candidates += , @("py.exe", "-3") }
    foreach ($name in "python.exe", "python3.exe") {
        if (Get-Command $name -ErrorAction SilentlyContinue) { $candidates += , @($name) }
    }
    foreach ($c in $candidates) {
        $exe = $c[0]
        $rest = @($c | Select-Object -Skip 1)
        try {
            $out = & $exe @rest -c "import sys; print(int(sys.version_info >= (3, 10))); print(sys.executable)" 2>$null
        } catch { continue }
        if ($LASTEXITCODE -eq 0 -and $out -and $out[0] -eq "1") { return $out[1] }
    }
    return $null
}

$root = Split-Path -Parent (Split-Path -Parent $PSScriptRoot)
if (-not $Source) { $Source = $root }
if (-not (Test-Path (Join-Path $Source "pyproject.toml")) -and -not ($Source -like "*.whl")) {
    Fail "$Source is neither a qwen-tray source folder nor a wheel"
}

$py = Find-Python
if (-not $py) {
    Fail ("qwen-tray needs Python 3.10 or newer. Install it from python.org for your user only " +
          "(no admin needed; keep 'tcl/tk and IDLE' ticked), then run this again.")
}
Say "using Python $py"

$venv = Join-Path $InstallDir "venv"
$vpy = Join-Path $venv "Scripts\python.exe"
$vpyw = Join-Path $venv "Scripts\pythonw.exe"
if (-not (Test-Path $vpy)) {
    Say "creating a Python environment in $venv"
    & $py -m venv $venv
    if ($LASTEXITCODE -ne 0) { Fail "python -m venv failed" }
}

$spec = $Source
if (-not $NoModel) { $spec = "$Source[export]" }  # `model pull` converts with optimum-intel + torch
Say "installing qwen-tray and its dependencies (OpenVINO and friends; with the model tools several GB)"
& $vpy -m pip install --disable-pip-version-check --upgrade $spec
if ($LASTEXITCODE -ne 0) {
    Fail "pip could not install qwen-tray: are you offline? Connect and run this again (nothing else was changed)."
}

$demo = Join-Path $Source "tests\fixtures\tiny-qwen3-vl-ov"
if (Test-Path $demo) {
    # daemon.paths.bundled_model_dir() looks for demo-model beside the venv.
    $target = Join-Path $InstallDir "demo-model"
    if (Test-Path $target) { Remove-Item -Recurse -Force $target -ErrorAction Stop }
    Copy-Item -Recurse $demo $target -ErrorAction Stop
}
$uninstaller = Join-Path $InstallDir "uninstall.ps1"
if ((Join-Path $PSScriptRoot "uninstall.ps1") -ne $uninstaller) {
    Copy-Item (Join-Path $PSScriptRoot "uninstall.ps1") $uninstaller -Force -ErrorAction Stop
}

$version = & $vpy -m daemon --version
if ($LASTEXITCODE -ne 0) { Fail "the installed qwen-tray does not start ($vpy -m daemon --version failed)" }

if (-not $NoShortcut) {
    $lnk = Join-Path ([Environment]::GetFolderPath("Programs")) "qwen-tray.lnk"
    $shell = New-Object -ComObject WScript.Shell
    $s = $shell.CreateShortcut($lnk)
    $s.TargetPath = $vpyw
    $s.Arguments = "-m daemon run"
    $s.WorkingDirectory = $InstallDir
    $s.Description = "qwen-tray: ask about what is on your screen"
    $s.Save()
    Say "Start-menu shortcut: $lnk"
}

if (-not $NoModel) {
    Say "downloading and converting the model (progress below; several GB)"
    & $vpy -m daemon model pull
    if ($LASTEXITCODE -ne 0) {
        Write-Warning ("the model could not be pulled (offline?). qwen-tray answers with its tiny demo model " +
                       "until you run:  $vpy -m daemon model pull")
    }
}

if ($Autostart) {
    if ($Headless) { & $vpy -m daemon autostart on --headless } else { & $vpy -m daemon autostart on }
    if ($LASTEXITCODE -ne 0) { Write-Warning "start at login could not be registered (see above)" }
}

Say "installed $version in $InstallDir"
Write-Host "    command:   $vpy -m daemon ...   (or $(Join-Path $venv 'Scripts\qwen-tray.exe'))"
Write-Host "    logs:      $(& $vpy -m daemon logs 2>$null)"
Write-Host "    uninstall: powershell -ExecutionPolicy Bypass -File `"$(Join-Path $InstallDir 'uninstall.ps1')`""

if (-not $NoStart) {
    $runArgs = @("-m", "daemon", "run")
    if ($Headless) { $runArgs += "--headless" }
    Start-Process -FilePath $vpyw -ArgumentList $runArgs -WorkingDirectory $InstallDir
    Say "qwen-tray is starting: look for its icon in the notification area"
}
