; PDV Sync — Windows installer of the PDV agent (NSIS 3, MUI2).
;
;   makensis -DVERSION=0.1.0 -DBUNDLE_DIR=build\dist\pdvsync-agent -DOUTFILE=PDVSyncSetup-0.1.0.exe installer\pdvsync.nsi
;
; Interactive: asks (in Portuguese) for the server address, this PDV's name, its shop (optional)
;              and the API key.
; Silent:      PDVSyncSetup.exe /S /SERVER=http://192.168.1.100:3001 /MACHINEID=caixa-2 [/TENANT=loja-1]
;              /APIKEY=... [/NOAUTOSTART]
; The shop (/TENANT=, "Loja") is this PDV's shop on a server holding several; empty means the
; default shop. An upgrade keeps the previous installation's shop unless /TENANT= is given.
; The key is never written to a file or the registry in clear: it is passed to
; `pdvsync-agent-cli configure` in an environment variable, which seals it with DPAPI for
; the agent to move into the Windows Credential Manager on its first run.
; Program files go to Program Files; the local store stays in each user's AppData.

Unicode true
ManifestDPIAware true
RequestExecutionLevel admin
SetCompressor /SOLID lzma

!ifndef VERSION
  !error "pass -DVERSION=x.y.z"
!endif
!ifndef BUNDLE_DIR
  !error "pass -DBUNDLE_DIR=<PyInstaller one-folder output>"
!endif
!ifndef OUTFILE
  !define OUTFILE "PDVSyncSetup-${VERSION}.exe"
!endif
!ifndef EXE_SUFFIX
  !define EXE_SUFFIX ".exe"
!endif

!define APP "PDV Sync"
!define PUBLISHER "PDV Sync"
!define AGENT "pdvsync-agent${EXE_SUFFIX}"
!define AGENT_CLI "pdvsync-agent-cli${EXE_SUFFIX}"
!define UNINST_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\PDVSync"
!define RUN_KEY "Software\Microsoft\Windows\CurrentVersion\Run"

Name "${APP}"
OutFile "${OUTFILE}"
InstallDir "$PROGRAMFILES64\${APP}"
InstallDirRegKey HKLM "${UNINST_KEY}" "InstallLocation"
BrandingText "${APP} ${VERSION}"
VIProductVersion "${VERSION}.0"
VIAddVersionKey /LANG=1046 "ProductName" "${APP}"
VIAddVersionKey /LANG=1046 "CompanyName" "${PUBLISHER}"
VIAddVersionKey /LANG=1046 "FileVersion" "${VERSION}"
VIAddVersionKey /LANG=1046 "ProductVersion" "${VERSION}"
VIAddVersionKey /LANG=1046 "FileDescription" "Instalador do ${APP}"
VIAddVersionKey /LANG=1046 "LegalCopyright" "© ${PUBLISHER}"

!include "MUI2.nsh"
!include "nsDialogs.nsh"
!include "LogicLib.nsh"
!include "FileFunc.nsh"
!include "x64.nsh"

!define MUI_ICON "pdvsync.ico"
!define MUI_UNICON "pdvsync.ico"
!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN
!define MUI_FINISHPAGE_RUN_TEXT "Iniciar o PDV Sync agora"
!define MUI_FINISHPAGE_RUN_FUNCTION StartAgentAsUser

Var Server
Var MachineId
Var Tenant
Var ApiKey
Var AutoStart
Var RemoveData
Var ServerField
Var MachineField
Var TenantField
Var KeyField
Var AutoStartBox
Var RemoveBox
Var TrayWasRunning

!insertmacro MUI_PAGE_WELCOME
Page custom ConnectionPage ConnectionPageLeave
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH

UninstPage custom un.DataPage un.DataPageLeave
!insertmacro MUI_UNPAGE_INSTFILES

!insertmacro MUI_LANGUAGE "PortugueseBR"

; ---------------------------------------------------------------- start-up and options

!define StrFilterLower "!insertmacro StrFilterLowerBody"
!macro StrFilterLowerBody VAR
  Push ${VAR}
  System::Call 'user32::CharLowerW(t s) t .s'
  Pop ${VAR}
!macroend

Function .onInit
  ${IfNot} ${RunningX64}
    MessageBox MB_ICONSTOP "O ${APP} requer o Windows de 64 bits." /SD IDOK
    Abort
  ${EndIf}
  SetRegView 64
  ; Defaults: what a previous installation used, else the computer's name.
  ReadRegStr $Server HKLM "${UNINST_KEY}" "Server"
  ${If} $Server == ""
    StrCpy $Server "http://192.168.1.100:3001"
  ${EndIf}
  ReadRegStr $MachineId HKLM "${UNINST_KEY}" "MachineId"
  ${If} $MachineId == ""
    ReadEnvStr $MachineId "COMPUTERNAME"
    ${StrFilterLower} $MachineId
  ${EndIf}
  ReadRegStr $Tenant HKLM "${UNINST_KEY}" "Tenant"
  StrCpy $ApiKey ""
  StrCpy $AutoStart "1"
  ${GetParameters} $0
  ClearErrors
  ${GetOptions} $0 "/SERVER=" $1
  ${IfNot} ${Errors}
    StrCpy $Server $1
  ${EndIf}
  ClearErrors
  ${GetOptions} $0 "/MACHINEID=" $1
  ${IfNot} ${Errors}
    StrCpy $MachineId $1
  ${EndIf}
  ClearErrors
  ${GetOptions} $0 "/TENANT=" $1
  ${IfNot} ${Errors}
    StrCpy $Tenant $1
  ${EndIf}
  ClearErrors
  ${GetOptions} $0 "/APIKEY=" $1
  ${IfNot} ${Errors}
    StrCpy $ApiKey $1
  ${EndIf}
  ClearErrors
  ${GetOptions} $0 "/NOAUTOSTART" $1
  ${IfNot} ${Errors}
    StrCpy $AutoStart "0"
  ${EndIf}
FunctionEnd

; ---------------------------------------------------------------- the connection page

Function ConnectionPage
  !insertmacro MUI_HEADER_TEXT "Conexão com o servidor" "Informe onde está o servidor de sincronização da loja."
  nsDialogs::Create 1018
  Pop $0
  ${NSD_CreateLabel} 0 0 100% 10u "Endereço do servidor (ex.: http://192.168.1.100:3001):"
  ${NSD_CreateText} 0 11u 100% 12u "$Server"
  Pop $ServerField
  ${NSD_CreateLabel} 0 28u 100% 10u "Nome deste PDV (ex.: caixa-1):"
  ${NSD_CreateText} 0 39u 100% 12u "$MachineId"
  Pop $MachineField
  ${NSD_CreateLabel} 0 56u 100% 10u "Loja (opcional; em branco = loja padrão do servidor):"
  ${NSD_CreateText} 0 67u 100% 12u "$Tenant"
  Pop $TenantField
  ${NSD_CreateLabel} 0 84u 100% 10u "Chave de API (deixe em branco para manter a atual):"
  ${NSD_CreatePassword} 0 95u 100% 12u ""
  Pop $KeyField
  ${NSD_CreateCheckbox} 0 114u 100% 12u "Iniciar o PDV Sync ao entrar no Windows"
  Pop $AutoStartBox
  ${If} $AutoStart == "1"
    ${NSD_Check} $AutoStartBox
  ${EndIf}
  nsDialogs::Show
FunctionEnd

Function ConnectionPageLeave
  ${NSD_GetText} $ServerField $Server
  ${NSD_GetText} $MachineField $MachineId
  ${NSD_GetText} $TenantField $Tenant
  ${NSD_GetText} $KeyField $ApiKey
  ${NSD_GetState} $AutoStartBox $AutoStart
  ${If} $AutoStart == ${BST_CHECKED}
    StrCpy $AutoStart "1"
  ${Else}
    StrCpy $AutoStart "0"
  ${EndIf}
  StrCpy $0 $Server 7
  StrCpy $1 $Server 8
  ${If} $0 != "http://"
  ${AndIf} $1 != "https://"
    MessageBox MB_ICONEXCLAMATION "Endereço inválido: use http://IP:PORTA, por exemplo http://192.168.1.100:3001"
    Abort
  ${EndIf}
  ${If} $MachineId == ""
    MessageBox MB_ICONEXCLAMATION "Informe o nome deste PDV."
    Abort
  ${EndIf}
FunctionEnd

; ---------------------------------------------------------------- install

!macro StopAgent
  ; Ask a running tray to finish its push and quit; then make sure nothing holds the files.
  ; Not `IfFileExists ... 0 +3`: a plug-in call is several instructions (DLL extraction,
  ; argument pushes), so a relative jump over it would land in its middle.
  StrCpy $TrayWasRunning "0"
  ${If} ${FileExists} "$INSTDIR\${AGENT_CLI}"
    nsExec::Exec '"$INSTDIR\${AGENT_CLI}" quit'
    Pop $0
    ${If} $0 == "0"
      ; It answered, so it runs in this desktop session: started again after an upgrade.
      StrCpy $TrayWasRunning "1"
    ${EndIf}
  ${EndIf}
  Sleep 1500
  nsExec::Exec 'taskkill /IM "${AGENT}" /F'
  Pop $0
!macroend

Section "PDV Sync" SecMain
  SectionIn RO
  SetRegView 64
  SetShellVarContext all
  !insertmacro StopAgent
  SetOutPath "$INSTDIR"
  File /r "${BUNDLE_DIR}\*.*"
  File "pdvsync.ico"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  ; Machine-wide settings and the sealed key, through the agent (one place validates).
  ${If} $ApiKey != ""
    System::Call 'kernel32::SetEnvironmentVariable(t "PDVSYNC_INSTALL_KEY", t "$ApiKey")'
    StrCpy $ApiKey ""
  ${EndIf}
  nsExec::ExecToLog '"$INSTDIR\${AGENT_CLI}" configure --server "$Server" --machine-id "$MachineId" --tenant "$Tenant" --start-with-os $AutoStart --api-key-env PDVSYNC_INSTALL_KEY'
  Pop $0
  System::Call 'kernel32::SetEnvironmentVariable(t "PDVSYNC_INSTALL_KEY", p 0)'
  ${If} $0 != "0"
    MessageBox MB_ICONSTOP "Configuração recusada (código $0). Verifique o endereço do servidor, o nome do PDV e a loja." /SD IDOK
    Abort
  ${EndIf}

  CreateDirectory "$SMPROGRAMS\${APP}"
  CreateShortcut "$SMPROGRAMS\${APP}\${APP}.lnk" "$INSTDIR\${AGENT}" "" "$INSTDIR\pdvsync.ico"
  CreateShortcut "$SMPROGRAMS\${APP}\Desinstalar ${APP}.lnk" "$INSTDIR\uninstall.exe"
  ${If} $AutoStart == "1"
    WriteRegStr HKLM "${RUN_KEY}" "PDVSync" '"$INSTDIR\${AGENT}"'
  ${Else}
    DeleteRegValue HKLM "${RUN_KEY}" "PDVSync"
  ${EndIf}

  WriteRegStr HKLM "${UNINST_KEY}" "DisplayName" "${APP}"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINST_KEY}" "Publisher" "${PUBLISHER}"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayIcon" "$INSTDIR\pdvsync.ico"
  WriteRegStr HKLM "${UNINST_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINST_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINST_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegStr HKLM "${UNINST_KEY}" "Server" "$Server"
  WriteRegStr HKLM "${UNINST_KEY}" "MachineId" "$MachineId"
  WriteRegStr HKLM "${UNINST_KEY}" "Tenant" "$Tenant"
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  WriteRegDWORD HKLM "${UNINST_KEY}" "EstimatedSize" $0
SectionEnd

; The installer runs elevated; the tray must run as the signed-in cashier (their Credential
; Manager, their AppData), never as the administrator. Explorer already runs as that user, so
; asking it to open the program starts the tray un-elevated.
Function StartAgentAsUser
  Exec '"$WINDIR\explorer.exe" "$INSTDIR\${AGENT}"'
FunctionEnd

Function .onInstSuccess
  ; Silent mode has no finish page, yet must give what the interactive install gives: the
  ; tray running for the signed-in cashier (the POS writes to it), not only after the next
  ; logon. Started when it was running before this upgrade, or when it starts at logon
  ; anyway; never from a deployment tool running as SYSTEM, which has no desktop user.
  ${IfNot} ${Silent}
    Return
  ${EndIf}
  UserInfo::GetName
  Pop $0
  ${If} $0 == "SYSTEM"
    Return
  ${EndIf}
  ${If} $TrayWasRunning == "1"
  ${OrIf} $AutoStart == "1"
    Call StartAgentAsUser
  ${EndIf}
FunctionEnd

; ---------------------------------------------------------------- uninstall

Function un.onInit
  SetRegView 64
  StrCpy $RemoveData "0"
  ${GetParameters} $0
  ClearErrors
  ${GetOptions} $0 "/REMOVEDATA" $1
  ${IfNot} ${Errors}
    StrCpy $RemoveData "1"
  ${EndIf}
FunctionEnd

Function un.DataPage
  !insertmacro MUI_HEADER_TEXT "Dados locais" "O banco local deste PDV pode ter vendas ainda não enviadas ao servidor."
  nsDialogs::Create 1018
  Pop $0
  SetShellVarContext current
  nsExec::ExecToStack '"$INSTDIR\${AGENT_CLI}" pending --data-dir "$LOCALAPPDATA\pdvsync"'
  Pop $1
  Pop $2
  ${If} $1 != "0"
    ; Could not tell (damaged store, or the command failed): never claim there is nothing.
    ${NSD_CreateLabel} 0 0 100% 24u "ATENÇÃO: não foi possível verificar se há vendas ainda não sincronizadas. Na dúvida, mantenha os dados locais."
  ${ElseIf} $2 == "0$\r$\n"
  ${OrIf} $2 == "0$\n"
  ${OrIf} $2 == "0"
    ${NSD_CreateLabel} 0 0 100% 24u "Não há alterações pendentes neste PDV."
  ${Else}
    ${NSD_CreateLabel} 0 0 100% 24u "ATENÇÃO: há alterações deste PDV ainda não sincronizadas ($2). Se remover os dados locais, elas serão perdidas."
  ${EndIf}
  ${NSD_CreateCheckbox} 0 32u 100% 12u "Remover também os dados locais deste PDV"
  Pop $RemoveBox
  nsDialogs::Show
FunctionEnd

Function un.DataPageLeave
  ${NSD_GetState} $RemoveBox $0
  ${If} $0 == ${BST_CHECKED}
    StrCpy $RemoveData "1"
  ${EndIf}
FunctionEnd

Section "Uninstall"
  SetRegView 64
  !insertmacro StopAgent
  SetShellVarContext all
  Delete "$SMPROGRAMS\${APP}\${APP}.lnk"
  Delete "$SMPROGRAMS\${APP}\Desinstalar ${APP}.lnk"
  RMDir "$SMPROGRAMS\${APP}"
  DeleteRegValue HKLM "${RUN_KEY}" "PDVSync"
  ; ProgramData\pdvsync holds only what the installer wrote (machine settings, a sealed key
  ; not yet taken, a set-aside unreadable settings file): never the PDV's sales.
  RMDir /r "$APPDATA\pdvsync"
  RMDir /r "$INSTDIR"
  ${If} $RemoveData == "1"
    SetShellVarContext current
    RMDir /r "$LOCALAPPDATA\pdvsync"
  ${EndIf}
  DeleteRegKey HKLM "${UNINST_KEY}"
SectionEnd
