; qwen-tray: per-user Windows installer (Inno Setup 6). No admin rights, nothing installed first, no PowerShell.
;
; Build: `bash installer/windows/build.sh` (Linux, ISCC.exe under Wine) stages uv.exe and the qwen-tray wheel in
; installer\windows\build\ and writes dist\qwen-tray-setup-<version>.exe. On Windows, with the same two files in
; build\: `iscc installer\windows\qwen-tray.iss`.
;
; What Setup does (every step is an executable it calls itself, logged to Setup's /LOG):
;   1. copies uv.exe (Astral's uv, from PyPI's win_amd64 wheel), the qwen-tray wheel and the tiny demo model to
;      %LOCALAPPDATA%\Programs\qwen-tray;
;   2. uv.exe python install: a standalone CPython 3.12 with Tk (python-build-standalone) into {app}\python
;      (not on PATH, not in the registry);
;   3. uv.exe venv {app}\venv with that Python, then uv.exe pip install the wheel (no torch, also when the
;      model is to be pulled);
;   4. {app}\venv\Scripts\qwen-tray.exe --version, model pull (task), autostart on (task).
; Upgrade in place: same AppId and folder; Setup first stops a running qwen-tray (`qwen-tray stop`, which waits
; for the daemon to exit), recreates the venv and reinstalls the wheel. The version comes from pyproject.toml.

#define AppName "qwen-tray"
#define Repo AddBackslash(SourcePath) + "..\.."
; pyproject.toml's `version = "X"` read as an INI value (GetPrivateProfileString drops the quotes).
#define AppVersion ReadIni(Repo + "\pyproject.toml", "project", "version", "")
#if AppVersion == ""
  #error cannot read [project] version from pyproject.toml
#endif
#ifndef Stage
  #define Stage AddBackslash(SourcePath) + "build"
#endif
#define Wheel "qwen_tray-" + AppVersion + "-py3-none-any.whl"
#ifndef OutDir
  #define OutDir Repo + "\dist"
#endif

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
; The daemon's single-instance mutex, Global\qwen-tray-<user SID> (daemon/instance.py), built by DaemonMutex below.
AppMutex={code:DaemonMutex}
SetupMutex=qwen-tray-setup
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#OutDir}
OutputBaseFilename=qwen-tray-setup-{#AppVersion}
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
UninstallDisplayName={#AppName}

[Tasks]
Name: "autostart"; Description: "Start qwen-tray when I log in"; Flags: unchecked
Name: "pullmodel"; Description: "Download Qwen3-VL-4B now and compress it for the NPU (several GB; needs internet)"

[Files]
Source: "{#Stage}\uv.exe"; DestDir: "{app}\bin"; Flags: ignoreversion
Source: "{#Stage}\{#Wheel}"; DestDir: "{app}\wheels"; Flags: ignoreversion
; qwen_tray.paths.bundled_model_dir() looks for demo-model beside the venv ({app}\venv -> {app}\demo-model).
Source: "{#Repo}\tests\fixtures\demo-qwen3-vl-ov\*"; DestDir: "{app}\demo-model"; Flags: recursesubdirs ignoreversion

[Icons]
; qwen-tray-gui.exe: the gui-scripts launcher (pythonw): no console window.
Name: "{autoprograms}\qwen-tray"; Filename: "{app}\venv\Scripts\qwen-tray-gui.exe"; Parameters: "run"; WorkingDir: "{app}"; Comment: "Ask about what is on your screen"

[Run]
Filename: "{app}\venv\Scripts\qwen-tray-gui.exe"; Parameters: "run"; WorkingDir: "{app}"; Description: "Start qwen-tray now"; Flags: postinstall nowait skipifsilent; Check: EnvReady

[UninstallRun]
; The same code as `qwen-tray autostart off`; [Code] below also deletes the value in case the venv is broken.
Filename: "{app}\venv\Scripts\qwen-tray.exe"; Parameters: "autostart off"; Flags: runhidden waituntilterminated skipifdoesntexist; RunOnceId: "AutostartOff"

[UninstallDelete]
; Made by uv and by the program, not by Setup: remove them too.
Type: filesandordirs; Name: "{app}\venv"
Type: filesandordirs; Name: "{app}\python"
Type: filesandordirs; Name: "{app}\uv-cache"
Type: filesandordirs; Name: "{localappdata}\qwen-tray\Cache"
Type: filesandordirs; Name: "{localappdata}\qwen-tray\Logs"
Type: filesandordirs; Name: "{localappdata}\qwen-tray\run"
Type: dirifempty; Name: "{app}"

[Code]
const
  RunKey = 'Software\Microsoft\Windows\CurrentVersion\Run';
  ApprovedKey = 'Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run';
  RunValue = 'qwen-tray';
  MutexPrefix = 'Global\qwen-tray-';
  TOKEN_QUERY = $0008;
  TokenUserClass = 1;

var
  EnvOk: Boolean;
  StopTried: Boolean;

function GetCurrentProcess: THandle; external 'GetCurrentProcess@kernel32.dll stdcall';
function CloseHandle(Handle: THandle): BOOL; external 'CloseHandle@kernel32.dll stdcall';
function OpenProcessToken(Process: THandle; Access: DWORD; var Token: THandle): BOOL;
  external 'OpenProcessToken@advapi32.dll stdcall';
function GetTokenInformation(Token: THandle; InfoClass: Integer; Info: AnsiString; InfoLength: DWORD;
  var ReturnLength: DWORD): BOOL; external 'GetTokenInformation@advapi32.dll stdcall';
function SetEnvironmentVariable(Name, Value: String): BOOL; external 'SetEnvironmentVariableW@kernel32.dll stdcall';

function EnvReady: Boolean;
begin
  Result := EnvOk;
end;

{ Byte I (0-based) of a binary buffer, as a number. }
function ByteAt(const Buf: AnsiString; I: Integer): Int64;
begin
  Result := Ord(Buf[I + 1]);
end;

// The SID of this process's user as text (S-1-5-21-...), from the token: what daemon/instance.py puts in the
// mutex name. TOKEN_USER is (PSID Sid; DWORD Attributes) followed by the SID itself (8 bytes in this 32-bit
// process, 16 in a 64-bit one: the SID's revision byte, 1, tells which).
function UserSid: String;
var
  Token: THandle;
  Buf: AnsiString;
  Len: DWORD;
  Off, Count, I: Integer;
  Value: Int64;
begin
  Result := '';
  if not OpenProcessToken(GetCurrentProcess, TOKEN_QUERY, Token) then
    exit;
  try
    SetLength(Buf, 256);
    Len := 0;
    if not GetTokenInformation(Token, TokenUserClass, Buf, 256, Len) then
      exit;
    Off := 8;
    if (ByteAt(Buf, Off) <> 1) and (ByteAt(Buf, 16) = 1) then
      Off := 16;
    if ByteAt(Buf, Off) <> 1 then
      exit;
    Count := ByteAt(Buf, Off + 1);
    Value := 0;
    for I := 2 to 7 do
      Value := Value * 256 + ByteAt(Buf, Off + I);  { identifier authority: 48 bits, big-endian }
    Result := 'S-1-' + IntToStr(Value);
    for I := 0 to Count - 1 do
    begin
      Value := ByteAt(Buf, Off + 8 + 4 * I) + ByteAt(Buf, Off + 9 + 4 * I) * 256 +
        ByteAt(Buf, Off + 10 + 4 * I) * 65536 + ByteAt(Buf, Off + 11 + 4 * I) * 16777216;
      Result := Result + '-' + IntToStr(Value);  { sub-authorities: unsigned 32-bit, little-endian }
    end;
  finally
    CloseHandle(Token);
  end;
end;

function InstalledExe(const Name: String): String;
begin
  if IsUninstaller then
    Result := ExpandConstant('{app}\venv\Scripts\' + Name)
  else
    Result := ExpandConstant('{localappdata}\Programs\qwen-tray\venv\Scripts\' + Name);
end;

{ Run one executable hidden, wait, log its command line and exit code. }
function RunLogged(const Exe, Params: String; Show: Integer): Boolean;
var
  Code: Integer;
begin
  Log(Format('run: "%s" %s', [Exe, Params]));
  Result := Exec(Exe, Params, ExpandConstant('{app}'), Show, ewWaitUntilTerminated, Code) and (Code = 0);
  if not Result then
    Log(Format('failed (exit code %d): "%s" %s', [Code, Exe, Params]));
end;

{ Ask a running daemon to stop (once): `qwen-tray stop` returns once it has exited. }
procedure StopDaemon;
var
  Code: Integer;
begin
  if StopTried or not FileExists(InstalledExe('qwen-tray.exe')) then
    exit;
  StopTried := True;
  Log(Format('run: "%s" stop', [InstalledExe('qwen-tray.exe')]));
  Exec(InstalledExe('qwen-tray.exe'), 'stop', '', SW_HIDE, ewWaitUntilTerminated, Code);
  Log(Format('qwen-tray stop: exit code %d', [Code]));
end;

{ AppMutex: the daemon's mutex. An upgrade first stops a running daemon, so the check that follows finds it gone. }
function DaemonMutex(Param: String): String;
begin
  Result := MutexPrefix + UserSid;
  StopDaemon;
  Log('daemon mutex: ' + Result);
end;

{ Uninstall: stop the daemon and wait for its mutex to go before anything is deleted (the uninstaller's own
  AppMutex check uses the name stored at install time and runs no code). }
function InitializeUninstall: Boolean;
var
  Name: String;
  Tries: Integer;
begin
  Name := MutexPrefix + UserSid;
  StopDaemon;
  Tries := 0;
  while CheckForMutexes(Name) and (Tries < 40) do
  begin
    Sleep(250);
    Tries := Tries + 1;
  end;
  Result := not CheckForMutexes(Name);
  if Result then
    Log('daemon mutex ' + Name + ': gone')
  else
  begin
    Log('daemon mutex ' + Name + ': still held');
    SuppressibleMsgBox('qwen-tray is still running: quit it from its tray menu, then uninstall again.', mbError,
      MB_OK, IDOK);
  end;
end;

procedure SetUvEnvironment;
begin
  // Everything uv makes stays under the app folder: the Python, its cache; no user uv.toml changes what it does.
  SetEnvironmentVariable('UV_PYTHON_INSTALL_DIR', ExpandConstant('{app}\python'));
  SetEnvironmentVariable('UV_CACHE_DIR', ExpandConstant('{app}\uv-cache'));
  SetEnvironmentVariable('UV_MANAGED_PYTHON', '1');
  SetEnvironmentVariable('UV_NO_CONFIG', '1');
  SetEnvironmentVariable('UV_PYTHON_DOWNLOADS', 'automatic');
end;

function MakeEnvironment: Boolean;
var
  Uv, Py, Spec: String;
begin
  Uv := ExpandConstant('{app}\bin\uv.exe');
  Py := ExpandConstant('{app}\venv\Scripts\python.exe');
  Spec := ExpandConstant('{app}\wheels\{#Wheel}');
  { no extra for `model pull`: it compresses a published OpenVINO IR with NNCF, without torch (issue 14) }
  SetUvEnvironment;
  WizardForm.StatusLabel.Caption := 'Getting Python 3.12 (a standalone build with Tk)...';
  Result := RunLogged(Uv, 'python install --no-bin --no-registry 3.12', SW_HIDE);
  if Result then
  begin
    WizardForm.StatusLabel.Caption := 'Creating the Python environment...';
    Result := RunLogged(Uv, 'venv --clear --python 3.12 "' + ExpandConstant('{app}\venv') + '"', SW_HIDE);
  end;
  if Result then
  begin
    WizardForm.StatusLabel.Caption := 'Installing qwen-tray and OpenVINO (a few minutes)...';
    Result := RunLogged(Uv, 'pip install --python "' + Py + '" --reinstall-package qwen-tray "' + Spec + '"', SW_HIDE);
  end;
  if Result then
    Result := RunLogged(InstalledExe('qwen-tray.exe'), '--version', SW_HIDE);
end;

procedure CurStepChanged(CurStep: TSetupStep);
begin
  if CurStep <> ssPostInstall then
    exit;
  EnvOk := MakeEnvironment;
  if not EnvOk then
  begin
    SuppressibleMsgBox('Setting up qwen-tray''s Python environment failed. If you are offline, connect and run ' +
      'this Setup again (it repeats only what is missing). Details are in Setup''s log (/LOG).', mbError, MB_OK, IDOK);
    exit;
  end;
  if WizardIsTaskSelected('pullmodel') then
  begin
    WizardForm.StatusLabel.Caption := 'Downloading and converting Qwen3-VL-4B (several GB; see the console window)...';
    if not RunLogged(InstalledExe('qwen-tray.exe'), 'model pull', SW_SHOW) then
      SuppressibleMsgBox('The model could not be pulled (offline?). qwen-tray answers with its tiny demo model ' +
        'until you run:' + #13#10 + InstalledExe('qwen-tray.exe') + ' model pull', mbInformation, MB_OK, IDOK);
  end;
  if WizardIsTaskSelected('autostart') then
    RunLogged(InstalledExe('qwen-tray.exe'), 'autostart on --force', SW_HIDE);  // asked for: replaces a headless one
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
    // platformdirs' per-user folder on Windows: models\, config.toml (Cache, Logs and run are gone already).
    DataDir := ExpandConstant('{localappdata}\qwen-tray');
    if DirExists(DataDir) and not UninstallSilent then
    begin
      if MsgBox('Also delete your qwen-tray models and settings?' + #13#10 + #13#10 + DataDir + #13#10 + #13#10 +
        'Choose No to keep them for a later install.', mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES then
        DelTree(DataDir, True, True, True);
    end;
  end;
end;
