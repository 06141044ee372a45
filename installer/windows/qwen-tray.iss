; qwen-tray: per-user Windows installer (Inno Setup 6). No admin rights, nothing outside the user's profile.
;
; Build on Windows from this folder:  iscc qwen-tray.iss   (output: ..\..\dist\qwen-tray-setup-<version>.exe)
;
; What it does: copies the app source, the tiny demo model and the two PowerShell scripts into
; %LOCALAPPDATA%\Programs\qwen-tray, then runs install.ps1 there, which creates {app}\venv with the user's
; Python 3.10+ and pip-installs qwen-tray (and, if ticked, pulls the model and turns on start at login with
; `qwen-tray autostart on`, the same code as the CLI and the tray menu). Python itself is not bundled: the
; embeddable Python has no tkinter, and python.org's per-user install needs no admin rights either.
;
; AppMutex: the daemon holds the named mutex Local\qwen-tray (daemon/instance.py) while it runs, so Setup
; and Uninstall ask the user to quit it first. Inno checks each name with OpenMutex as written; "Local\" is
; the login session's namespace, the one both the daemon and this per-user Setup run in.

#define AppName "qwen-tray"
#define AppVersion "0.1.0"
#define Src "..\.."

[Setup]
AppId={{8F3A6C2E-5B1D-4E7A-9C0F-2D6B4A1E7F35}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=qwen-tray
AppComments=A local screen assistant: Qwen3-VL on OpenVINO (NPU, GPU or CPU)
DefaultDirName={localappdata}\Programs\qwen-tray
DisableDirPage=yes
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
AppMutex=Local\qwen-tray
SetupMutex=qwen-tray-setup
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#Src}\dist
OutputBaseFilename=qwen-tray-setup-{#AppVersion}
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
UninstallDisplayName={#AppName}

[Tasks]
Name: "autostart"; Description: "Start qwen-tray when I log in"; Flags: unchecked
Name: "pullmodel"; Description: "Download Qwen3-VL-4B now and convert it for the NPU (several GB; needs internet)"

[Files]
Source: "{#Src}\daemon\*"; DestDir: "{app}\app\daemon"; Excludes: "__pycache__,*.pyc"; Flags: recursesubdirs ignoreversion
Source: "{#Src}\ipc\*"; DestDir: "{app}\app\ipc"; Excludes: "__pycache__,*.pyc"; Flags: recursesubdirs ignoreversion
Source: "{#Src}\pyproject.toml"; DestDir: "{app}\app"; Flags: ignoreversion
Source: "{#Src}\README.md"; DestDir: "{app}\app"; Flags: ignoreversion skipifsourcedoesntexist
; daemon.paths.bundled_model_dir() looks for demo-model beside the venv ({app}\venv -> {app}\demo-model).
Source: "{#Src}\tests\fixtures\tiny-qwen3-vl-ov\*"; DestDir: "{app}\demo-model"; Flags: recursesubdirs ignoreversion
Source: "install.ps1"; DestDir: "{app}"; Flags: ignoreversion
Source: "uninstall.ps1"; DestDir: "{app}"; Flags: ignoreversion

[Icons]
Name: "{autoprograms}\qwen-tray"; Filename: "{app}\venv\Scripts\pythonw.exe"; Parameters: "-m daemon run"; WorkingDir: "{app}"; Comment: "Ask about what is on your screen"

[Run]
Filename: "{app}\venv\Scripts\pythonw.exe"; Parameters: "-m daemon run"; WorkingDir: "{app}"; Description: "Start qwen-tray now"; Flags: postinstall nowait skipifsilent; Check: EnvReady

[UninstallRun]
; The same code as `qwen-tray autostart off`; [Code] below also deletes the value in case the venv is broken.
Filename: "{app}\venv\Scripts\python.exe"; Parameters: "-m daemon autostart off"; Flags: runhidden waituntilterminated skipifdoesntexist; RunOnceId: "AutostartOff"

[UninstallDelete]
; Made by install.ps1 / pip and by the program, not by Setup: remove them too.
Type: filesandordirs; Name: "{app}\venv"
Type: filesandordirs; Name: "{app}\app"
Type: filesandordirs; Name: "{localappdata}\qwen-tray\Cache"
Type: filesandordirs; Name: "{localappdata}\qwen-tray\Logs"
Type: filesandordirs; Name: "{localappdata}\Temp\qwen-tray"
Type: dirifempty; Name: "{app}"

[Code]
const
  RunKey = 'Software\Microsoft\Windows\CurrentVersion\Run';
  ApprovedKey = 'Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run';
  RunValue = 'qwen-tray';

var
  EnvOk: Boolean;

function EnvReady: Boolean;
begin
  Result := EnvOk;
end;

function PythonWorks(const Exe, Args: String): Boolean;
var
  ResultCode: Integer;
begin
  Result := Exec(Exe, Args + ' -c "import sys; sys.exit(sys.version_info < (3, 10))"', '', SW_HIDE,
    ewWaitUntilTerminated, ResultCode) and (ResultCode = 0);
end;

function InitializeSetup: Boolean;
begin
  Result := PythonWorks('py.exe', '-3') or PythonWorks('python.exe', '');
  if not Result then
    SuppressibleMsgBox('qwen-tray needs Python 3.10 or newer.' + #13#10 + #13#10 +
      'Install it from python.org for your user only (no admin rights needed; keep "tcl/tk and IDLE" ticked), ' +
      'then run this setup again.', mbError, MB_OK, IDOK);
end;

procedure CurStepChanged(CurStep: TSetupStep);
var
  Params: String;
  ResultCode: Integer;
begin
  if CurStep <> ssPostInstall then
    exit;
  Params := '-NoProfile -ExecutionPolicy Bypass -File "' + ExpandConstant('{app}\install.ps1') + '"' +
    ' -InstallDir "' + ExpandConstant('{app}') + '" -Source "' + ExpandConstant('{app}\app') + '" -NoStart -NoShortcut';
  if not WizardIsTaskSelected('pullmodel') then
    Params := Params + ' -NoModel';
  if WizardIsTaskSelected('autostart') then
    Params := Params + ' -Autostart';
  WizardForm.StatusLabel.Caption := 'Installing the Python packages (a few minutes; see the console window)...';
  EnvOk := Exec(ExpandConstant('{sys}\WindowsPowerShell\v1.0\powershell.exe'), Params, ExpandConstant('{app}'),
    SW_SHOW, ewWaitUntilTerminated, ResultCode) and (ResultCode = 0);
  if not EnvOk then
    SuppressibleMsgBox('Setting up the Python environment failed (exit code ' + IntToStr(ResultCode) + '). ' +
      'If you are offline, connect and run this again:' + #13#10 + #13#10 +
      'powershell -ExecutionPolicy Bypass -File "' + ExpandConstant('{app}\install.ps1') + '" -InstallDir "' +
      ExpandConstant('{app}') + '" -Source "' + ExpandConstant('{app}\app') + '"', mbError, MB_OK, IDOK);
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  DataDir: String;
begin
  if CurUninstallStep = usUninstall then
  begin
    RegDeleteValue(HKEY_CURRENT_USER, RunKey, RunValue);
    RegDeleteValue(HKEY_CURRENT_USER, ApprovedKey, RunValue);
  end;
  if CurUninstallStep = usPostUninstall then
  begin
    { platformdirs' per-user folder on Windows: models\, config.toml (Cache and Logs are gone already). }
    DataDir := ExpandConstant('{localappdata}\qwen-tray');
    if DirExists(DataDir) and not UninstallSilent then
    begin
      if MsgBox('Also delete your qwen-tray models and settings?' + #13#10 + #13#10 + DataDir + #13#10 + #13#10 +
        'Choose No to keep them for a later install.', mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES then
        DelTree(DataDir, True, True, True);
    end;
  end;
end;
