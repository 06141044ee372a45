/* A stand-in for uv.exe (and, copied by its `venv` call, for the venv's python.exe / qwen-tray.exe) when the
   Setup runs under Wine: it appends its own path, its command line and the UV_* variables to
   C:\qwen-probe\calls.txt and exits 0, so build.sh --check can show which executables Setup calls and how.
   `sid` prints the user's SID from the process token; `mutex NAME SECONDS [EVENT]` holds a named mutex (a stand-in
   daemon) until `qwen-tray.exe stop` (this probe) sets the event; `check NAME` says whether a mutex exists; `acl FILE SDDL`
   applies a DACL the way ipc/connection.py's Win32Acl does (SDDL -> GetSecurityDescriptorDacl ->
   SetNamedSecurityInfoW, protected) and prints the DACL read back. */
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>
#include <stdio.h>
#include <wchar.h>

static void log_call(void) {
    wchar_t self[MAX_PATH], value[1024];
    static const wchar_t *vars[] = {L"UV_PYTHON_INSTALL_DIR", L"UV_CACHE_DIR", L"UV_MANAGED_PYTHON", L"UV_NO_CONFIG"};
    CreateDirectoryW(L"C:\\qwen-probe", NULL);
    FILE *f = _wfopen(L"C:\\qwen-probe\\calls.txt", L"a, ccs=UTF-8");
    if (!f) return;
    GetModuleFileNameW(NULL, self, MAX_PATH);
    fwprintf(f, L"exe: %ls\ncmd: %ls\n", self, GetCommandLineW());
    for (int i = 0; i < 4; i++)
        if (GetEnvironmentVariableW(vars[i], value, 1024)) fwprintf(f, L"env: %ls=%ls\n", vars[i], value);
    fclose(f);
}

/* `uv venv ... DIR`: make DIR\Scripts with copies of this probe under the names Setup calls next. */
static void fake_venv(const wchar_t *dir) {
    static const wchar_t *names[] = {L"python.exe", L"pythonw.exe", L"qwen-tray.exe", L"qwen-tray-gui.exe"};
    wchar_t self[MAX_PATH], path[MAX_PATH];
    GetModuleFileNameW(NULL, self, MAX_PATH);
    CreateDirectoryW(dir, NULL);
    swprintf(path, MAX_PATH, L"%ls\\Scripts", dir);
    CreateDirectoryW(path, NULL);
    for (int i = 0; i < 4; i++) {
        swprintf(path, MAX_PATH, L"%ls\\Scripts\\%ls", dir, names[i]);
        CopyFileW(self, path, FALSE);
    }
}

int wmain(int argc, wchar_t **argv) {
    if (argc >= 2 && wcscmp(argv[1], L"sid") == 0) {
        HANDLE token; BYTE buf[256]; DWORD len; LPWSTR text;
        if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) return 1;
        if (!GetTokenInformation(token, TokenUser, buf, sizeof buf, &len)) return 1;
        if (!ConvertSidToStringSidW(((TOKEN_USER *)buf)->User.Sid, &text)) return 1;
        wprintf(L"%ls\n", text);
        return 0;
    }
    if (argc >= 4 && wcscmp(argv[1], L"acl") == 0) {
        PSECURITY_DESCRIPTOR sd, got; PACL dacl, now; BOOL present, defaulted; LPWSTR text;
        if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(argv[3], SDDL_REVISION_1, &sd, NULL)) return 2;
        if (!GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted)) return 3;
        DWORD err = SetNamedSecurityInfoW(argv[2], SE_FILE_OBJECT,
                                          DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                                          NULL, NULL, dacl, NULL);
        if (err) { wprintf(L"SetNamedSecurityInfoW: error %lu\n", err); return 4; }
        if (GetNamedSecurityInfoW(argv[2], SE_FILE_OBJECT, DACL_SECURITY_INFORMATION, NULL, NULL, &now, NULL, &got))
            return 5;
        if (!ConvertSecurityDescriptorToStringSecurityDescriptorW(got, SDDL_REVISION_1, DACL_SECURITY_INFORMATION,
                                                                  &text, NULL)) return 6;
        wprintf(L"%ls\n", text);
        return 0;
    }
    if (argc >= 4 && wcscmp(argv[1], L"mutex") == 0) {
        /* A stand-in daemon: holds the mutex until `qwen-tray.exe stop` (this probe again) sets the event. */
        HANDLE m = CreateMutexW(NULL, FALSE, argv[2]);
        HANDLE stop = CreateEventW(NULL, TRUE, FALSE, argc >= 5 ? argv[4] : L"qwen-probe-stop");
        wprintf(L"mutex %ls: %ls\n", argv[2], m ? L"held" : L"failed");
        fflush(stdout);
        DWORD why = WaitForSingleObject(stop, 1000 * _wtoi(argv[3]));
        wprintf(L"released (%ls)\n", why == WAIT_OBJECT_0 ? L"stopped" : L"timeout");
        return m ? 0 : 1;
    }
    if (argc >= 3 && wcscmp(argv[1], L"check") == 0) {
        HANDLE m = OpenMutexW(SYNCHRONIZE, FALSE, argv[2]);
        wprintf(L"%ls: %ls\n", argv[2], m ? L"exists" : L"absent");
        return m ? 0 : 1;
    }
    log_call();
    if (argc >= 2 && wcscmp(argv[argc - 1], L"stop") == 0) {  /* `qwen-tray stop`: end the stand-in, wait */
        HANDLE stop = OpenEventW(EVENT_MODIFY_STATE, FALSE, L"qwen-probe-stop");
        if (stop) { SetEvent(stop); Sleep(1500); }
        return 0;
    }
    for (int i = 1; i < argc; i++)
        if (wcscmp(argv[i], L"venv") == 0 && argc > i + 1) fake_venv(argv[argc - 1]);
    for (int i = 1; i < argc; i++)
        if (wcscmp(argv[i], L"--version") == 0) wprintf(L"qwen-tray (probe)\n");
    return 0;
}
